"""pulse: run Social Pulse's pipeline steps from the command line, without a scheduler."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from tasks.settings import get_settings

log = logging.getLogger("pulse")

NOISY_LOGGERS = ("great_expectations", "alembic", "py.warnings", "httpx", "urllib3",
                 "matplotlib", "mlflow.utils", "mlflow.store", "filelock", "git")


def configure_logging(verbose: bool = False) -> None:
    """Log to standard error, quieting libraries that narrate every step."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # The message starts with an ANSI colour code, hence the leading wildcard.
    warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: use YYYY-MM-DD") from error


def _label_list(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if len(labels) < 2:
        raise argparse.ArgumentTypeError(f"invalid label set {text!r}: give two or more, comma-separated")
    return labels


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a whole number of 1 or more")
    return value


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run every DAG for one date through Airflow")
    demo.add_argument("--date", type=_date, default=_yesterday(), help="partition date (default: yesterday, UTC)")
    demo.add_argument("--labels", type=Path, help="labels file (JSONL/CSV with text,label, or a Label Studio export) to import instead of the demo annotator")
    demo.add_argument("--posts", type=Path, help="JSONL/CSV file or folder to collect instead of the built-in sample (needs --labels, unless labels were imported before)")

    collect = commands.add_parser("collect", help="collect, validate and clean one date")
    collect.add_argument("--source", default=None, help="comma-separated sources: 'sample', a file or folder, s3://bucket/prefix, or an API spec (default: collect.source, which is 'sample' unless configured)")
    collect.add_argument("--date", type=_date, default=_yesterday(), help="partition date (default: yesterday, UTC)")

    train = commands.add_parser("train", help="train, evaluate and register a model")
    train.add_argument("task", help="'entities' (IOB2 tagging), 'retrieval' (bi-encoder), "
                       "'sentiment', or any classification task name (e.g. emotion)")
    train.add_argument("--labels", type=_label_list, help="comma-separated label set (default: "
                       "from the settings for known tasks, else the labels found in --train)")
    train.add_argument("--train", type=Path, required=True, help="JSONL/CSV with text and label "
                       "(a 'labels' list with --multi-label); "
                       "CoNLL or Label Studio JSON for entities; JSONL with text and a group field for retrieval")
    train.add_argument("--validation", type=Path, help="same format as --train (required except for retrieval, which splits by group)")
    train.add_argument("--group-field", default="event", help="retrieval: field that groups related posts")
    train.add_argument("--multi-label", action="store_true", help="classification: each post "
                       "carries a list of zero or more labels (the 'labels' field) instead of "
                       "one. Listing the task in multi_label_tasks has the same effect")

    predict = commands.add_parser("predict", help="label posts from a file with a registered model")
    predict.add_argument("task", help="'entities', 'sentiment', or a classification task trained before")
    predict.add_argument("--input", type=Path, required=True, help="JSONL or CSV with a 'text' field and an optional 'id'; for entities also CoNLL")
    predict.add_argument("--output", type=Path, required=True, help="file to write: JSON lines, "
                         "or for a CoNLL input the same lines with the predicted tag appended")
    predict.add_argument("--model", help="model URI (default: models:/<name>@champion)")

    search = commands.add_parser("search", help="find posts by meaning in a day's embedding index")
    search.add_argument("query", help="text to search for")
    search.add_argument("--date", type=_date, help="partition date (default: the latest indexed day)")
    search.add_argument("--k", type=_positive, default=10, help="number of posts to return")

    index = commands.add_parser("index", help="build the embedding index of a day's clean posts")
    index.add_argument("--date", type=_date, default=_yesterday(), help="partition date (default: yesterday, UTC)")

    promote = commands.add_parser("promote", help="run the promotion gate on the newest version")
    promote.add_argument("task", help="'sentiment', 'entities' (span F1), 'retrieval' "
                         "(recall@10), or a classification task trained before (macro-F1)")

    rollback = commands.add_parser("rollback", help="return the champion alias to the version "
                                   "it replaced, recording why")
    rollback.add_argument("task", help="'sentiment', 'entities', 'retrieval' or a classification task")
    rollback.add_argument("--reason", required=True, help="why: written onto both model versions")

    report = commands.add_parser("report", help="build one date's HTML report with plots and "
                                 "drift checks, store it and log it to MLflow")
    report.add_argument("--date", type=_date, default=_yesterday(), help="partition date (default: yesterday, UTC)")

    _add_annotate_parser(commands)

    for tool in ("airflow", "mlflow"):
        wrapper = commands.add_parser(tool, help=f"run the {tool} CLI against this project's settings")
        wrapper.add_argument("arguments", nargs=argparse.REMAINDER, help=f"arguments for {tool}")
    return parser


def _add_annotate_parser(commands: argparse._SubParsersAction) -> None:
    annotate = commands.add_parser("annotate", help="export annotation tasks, or import "
                                   "finished labels, for one date")
    steps = annotate.add_subparsers(dest="step", required=True)
    export = steps.add_parser("export", help="write a sample of the day's clean posts as "
                              "annotation tasks, pre-annotated by the champion models")
    export.add_argument("--date", type=_date, default=_yesterday(), help="partition date (default: yesterday, UTC)")
    export.add_argument("--format", dest="formats", action="append", help="'label_studio', "
                        "'doccano' or 'conll'; repeat for several (default: annotation.export_formats)")
    load = steps.add_parser("import", help="import finished label files as the day's batch: "
                            "majority labels, ties for review, agreement report")
    load.add_argument("--date", type=_date, default=_yesterday(), help="partition date (default: yesterday, UTC)")
    load.add_argument("--file", dest="files", type=Path, action="append", help="finished export "
                      "(Label Studio .json, doccano .jsonl or .zip, .csv, .conll) to import instead "
                      "of the inbox's new files; repeat for several")


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    configure_logging(arguments.verbose)
    handler = {
        "demo": command_demo, "collect": command_collect, "train": command_train,
        "predict": command_predict, "promote": command_promote, "rollback": command_rollback,
        "search": command_search, "index": command_index, "annotate": command_annotate,
        "report": command_report,
        "airflow": command_airflow, "mlflow": command_mlflow,
    }[arguments.command]
    try:
        return handler(arguments)
    except (FileNotFoundError, IsADirectoryError, ValueError, LookupError) as error:
        log.error("%s", error)
        return 2
    except RuntimeError as error:  # a failed DAG run or data-quality check, already logged
        log.error("failed: %s", error)
        return 1


def command_demo(arguments: argparse.Namespace) -> int:
    import contextlib

    from tasks.demo import format_summary, run_demo

    # Airflow and the Trainer print progress to stdout; keep stdout for the summary only.
    with contextlib.redirect_stdout(sys.stderr):
        summary = run_demo(arguments.date, labels=arguments.labels, posts=arguments.posts)
    print(format_summary(summary))
    return 0


def command_collect(arguments: argparse.Namespace) -> int:
    from tasks import jobs

    manifest = jobs.collect_day(arguments.date, arguments.source)
    print(json.dumps(manifest))
    return 0


def command_train(arguments: argparse.Namespace) -> int:
    from tasks import commands

    if arguments.task in ("retrieval", "entities"):
        for flag, value in (("--multi-label", arguments.multi_label),
                            ("--labels", arguments.labels)):
            if value:
                source = "the tags in the data" if arguments.task == "entities" else "the groups"
                raise ValueError(f"{flag} applies to classification tasks, not "
                                 f"{arguments.task}: its labels come from {source}")
    if arguments.task == "retrieval":
        from tasks.retrieve.commands import train_retrieval_from_file

        print(train_retrieval_from_file(arguments.train, get_settings(), arguments.group_field))
        return 0
    if arguments.validation is None:
        raise ValueError(f"--validation is required to train {arguments.task}")
    if arguments.task == "entities":
        from tasks.extract.commands import train_entities_from_files

        uri = train_entities_from_files(arguments.train, arguments.validation, get_settings())
        if uri:  # empty on the non-main ranks of a torchrun launch
            print(uri)
        return 0
    uri = commands.train_from_files(arguments.train, arguments.validation, get_settings(),
                                    task=arguments.task, labels=arguments.labels,
                                    multi_label=arguments.multi_label)
    if uri:  # empty on the non-main ranks of a torchrun launch
        print(uri)
    return 0


def command_predict(arguments: argparse.Namespace) -> int:
    from tasks import commands

    if arguments.task == "entities":
        from tasks.extract.commands import predict_entities_file

        lines, errors = predict_entities_file(arguments.input, arguments.output, arguments.model,
                                              get_settings())
        print(f"wrote {lines} lines to {arguments.output}: {lines - errors} tagged, {errors} errors")
        return 0
    lines, errors = commands.predict_file(arguments.input, arguments.output, arguments.model,
                                          get_settings(), task=arguments.task)
    print(f"wrote {lines} lines to {arguments.output}: {lines - errors} predictions, {errors} errors")
    return 0


def command_search(arguments: argparse.Namespace) -> int:
    from tasks.retrieve.commands import search_posts

    for post_id, score, text in search_posts(arguments.query, arguments.date, arguments.k,
                                             get_settings()):
        print(json.dumps({"id": post_id, "score": round(float(score), 4), "text": text},
                         ensure_ascii=False))
    return 0


def command_index(arguments: argparse.Namespace) -> int:
    from tasks.retrieve.commands import build_index

    print(json.dumps(build_index(arguments.date, get_settings()), default=str))
    return 0


def command_promote(arguments: argparse.Namespace) -> int:
    from tasks import jobs

    print(json.dumps(jobs.promote(arguments.task), indent=2))
    return 0


def command_rollback(arguments: argparse.Namespace) -> int:
    from tasks import jobs

    print(json.dumps(jobs.rollback(arguments.task, arguments.reason), indent=2))
    return 0


def command_report(arguments: argparse.Namespace) -> int:
    from tasks import jobs

    print(jobs.daily_report(arguments.date)["report"])
    return 0


def command_annotate(arguments: argparse.Namespace) -> int:
    from tasks import jobs

    if arguments.step == "export":
        summary = jobs.export_annotations(arguments.date, formats=arguments.formats)
    else:
        summary = jobs.import_labels(arguments.date, files=arguments.files)
    print(json.dumps(summary, default=str))
    return 0


def command_airflow(arguments: argparse.Namespace) -> int:
    from tasks.airflow_env import airflow_environment

    environment = {**os.environ, **airflow_environment(get_settings())}
    Path(environment["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    executable = Path(sys.executable).with_name("airflow")
    database = environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if database.startswith("sqlite:///") and not Path(database.removeprefix("sqlite:///")).exists():
        # A new embedded database: create it and store the DAGs, so `dags list` shows them.
        log.info("creating the Airflow database at %s", database)
        for setup in (["db", "migrate"], ["dags", "reserialize"]):
            subprocess.run([str(executable), *setup], env=environment, check=True,
                           stdout=subprocess.DEVNULL)
    os.execve(executable, [str(executable), *arguments.arguments], environment)


def command_mlflow(arguments: argparse.Namespace) -> int:
    settings = get_settings()
    executable = Path(sys.executable).with_name("mlflow")
    extra = list(arguments.arguments)
    if extra[:1] in (["ui"], ["server"]) and "--backend-store-uri" not in extra:
        extra += ["--backend-store-uri", settings.tracking_uri]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    os.execve(executable, [str(executable), *extra], environment)


if __name__ == "__main__":
    sys.exit(main())

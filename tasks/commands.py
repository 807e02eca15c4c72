"""File-based training and prediction behind ``pulse train`` and ``pulse predict``."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.annotate.labels import read_label_file
from tasks.clean.text import normalize_text
from tasks.settings import Settings
from tasks.train.multilabel import InvalidLabelRow, check_label_row
from tasks.train.pipeline import train_and_register
from tasks.validate.suites import validate_frame

log = logging.getLogger(__name__)

LINE = "_line"  # input line number; a name no input field is expected to use


def read_labeled_file(path: Path, labels: list[str]) -> pd.DataFrame:
    """Read text and label from ``path``; invalid rows are logged with their line and skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"labeled file {path} not found")
    frame = read_label_file(path)
    report = validate_frame(frame, "labels", {"label_set": labels})
    failures = report.failures_by_row()
    for row, fails in sorted(failures.items()):
        record = frame.iloc[row]
        reasons = "; ".join(f.meta.get("reason", f.expectation) for f in fails)
        detail = record["parse_error"] if isinstance(record["parse_error"], str) else \
            f"label {record['label']!r}"
        log.warning("%s line %s skipped: %s (%s)", path.name, record["line"], reasons, detail)
    valid = frame.drop(index=list(failures)).drop(columns=["parse_error"])
    if valid.empty:
        raise ValueError(f"{path} has no valid rows with 'text' and a label in {labels}")
    return valid.assign(text=valid["text"].map(normalize_text)).reset_index(drop=True)


def read_multi_labeled_file(path: Path, labels: list[str] | None) -> pd.DataFrame:
    """Read text and a label list per row into the columns text, labels and line.

    Each row of a JSONL or CSV file gives its labels in ``labels`` (else ``label``) as a
    JSON list, or as one string separated by ',' or '|'. [] or an empty string means no
    label applies. Invalid rows, and rows with a label outside ``labels`` (when given),
    are logged with their line and skipped.
    """
    if path.suffix.lower() == ".json":
        raise ValueError(f"{path}: multi-label training reads JSONL or CSV, not Label Studio "
                         f"JSON; export the tasks as JSONL with 'text' and a 'labels' list")
    rows = []
    for record in read_posts_file(path):
        try:
            if "error" in record:
                raise InvalidLabelRow(record["error"], "write one JSON object per line")
            text, row_labels = check_label_row(record["fields"], labels)
        except InvalidLabelRow as problem:
            log.warning("%s line %s skipped: %s; fix: %s", path.name, record[LINE], problem,
                        problem.fix)
            continue
        rows.append({"text": normalize_text(text), "labels": row_labels, "line": record[LINE]})
    if not rows:
        raise ValueError(f"{path} has no valid rows with 'text' and a list of labels"
                         + (f" from {labels}" if labels else ""))
    return pd.DataFrame(rows, columns=["text", "labels", "line"])


def model_name(task: str, settings: Settings) -> str:
    """Return the registered model name of ``task``: sentiment, retrieval or the prefix + task."""
    if task == "sentiment":
        return settings.registry.sentiment_model
    if task == "retrieval":
        return settings.retrieval.model_name
    return f"{settings.registry.model_prefix}{task}"


def resolve_labels(task: str, labels: list[str] | None, train_path: Path,
                   settings: Settings, multi_label: bool = False) -> list[str]:
    """Return the label set: given, from the settings for ``task``, or sorted from the data."""
    if labels:
        return labels
    if task in settings.classification_tasks:
        return list(settings.classification_tasks[task])
    if multi_label:
        rows = read_multi_labeled_file(train_path, None)["labels"]
        found = sorted({label for row in rows for label in row})
    else:
        found = sorted({str(label) for label in read_label_file(train_path)["label"].dropna()})
    if len(found) < 2:
        raise ValueError(f"{train_path} has fewer than two labels ({found}): pass --labels")
    log.info("label set of %s taken from %s: %s", task, train_path.name, found)
    return found


def train_from_files(train_path: Path, validation_path: Path, settings: Settings,
                     task: str = "sentiment", labels: list[str] | None = None,
                     multi_label: bool = False) -> str:
    """Train on ``train_path``, evaluate on ``validation_path``, register; return the model URI.

    Returns an empty string on the non-main ranks of a torchrun launch.

    The task is multi-label when ``multi_label`` is set or ``task`` is listed in
    ``settings.multi_label_tasks``.
    """
    if not train_path.is_file():
        raise FileNotFoundError(f"labeled file {train_path} not found")
    if not validation_path.is_file():
        raise FileNotFoundError(f"labeled file {validation_path} not found")
    multi_label = multi_label or task in settings.multi_label_tasks
    labels = resolve_labels(task, labels, train_path, settings, multi_label)
    read = read_multi_labeled_file if multi_label else read_labeled_file
    train, validation = read(train_path, labels), read(validation_path, labels)
    tags = {"data.train_file": str(train_path.resolve()),
            "data.validation_file": str(validation_path.resolve()),
            "data.train_size": str(len(train)), "data.validation_size": str(len(validation))}
    registered = train_and_register(train, validation, labels, settings,
                                    model_name(task, settings), tags, multi_label=multi_label)
    if registered is None:
        return ""  # a non-main rank of a distributed launch: rank 0 registered the model
    metrics = registered.metrics
    if multi_label:
        log.info("validation: macro-F1 %.4f, micro-F1 %.4f, samples-F1 %.4f",
                 metrics["macro_f1"], metrics["micro_f1"], metrics["samples_f1"])
    else:
        log.info("validation: macro-recall %.4f, macro-F1 %.4f, accuracy %.4f",
                 metrics["macro_recall"], metrics["macro_f1"], metrics["accuracy"])
    return registered.uri


def read_posts_file(path: Path) -> list[dict[str, Any]]:
    """Read JSONL or CSV posts as {"fields", LINE}; unparseable lines get ``error`` instead."""
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not valid UTF-8 (byte {error.start}): re-encode it as "
                         f"UTF-8") from error
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        records, start = [], 2
        for row in reader:
            records.append({"fields": row, LINE: start})
            start = reader.line_num + 1
        return records
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            records.append({"fields": value, LINE: number} if isinstance(value, dict)
                           else {LINE: number, "error": "not a JSON object"})
        except json.JSONDecodeError as error:
            records.append({LINE: number, "error": f"invalid JSON: {error.msg}"})
    return records


def predict_file(input_path: Path, output_path: Path, model_uri: str | None,
                 settings: Settings, task: str = "sentiment") -> tuple[int, int]:
    """Write one JSON line per input post with its label and class probabilities.

    A multi-label model writes ``labels``, the list of labels that apply, instead of
    ``label`` and ``confidence``.

    Returns the number of lines written and how many of them are errors.
    """
    if output_path.is_dir():
        raise IsADirectoryError(f"--output {output_path} is a folder: give a file path")
    from tasks.registry.tracking import champion_version, configure_mlflow

    client = configure_mlflow(settings)
    name, alias = model_name(task, settings), settings.registry.champion_alias
    if model_uri is None and champion_version(client, name, alias) is None:
        raise LookupError(
            f"registered model {name!r} has no '{alias}' version: run `pulse promote {task}` "
            f"after training, or pass --model models:/{name}/<version>"
        )
    uri = model_uri or f"models:/{name}@{alias}"
    records = read_posts_file(input_path)
    for record in records:
        if "error" not in record and not str(record["fields"].get("text") or "").strip():
            record["error"] = "missing or empty 'text' field"
    usable = [r for r in records if "error" not in r]
    model = _load_model(uri)
    texts = pd.DataFrame({"text": [normalize_text(str(r["fields"]["text"])) for r in usable]})
    predictions = model.predict(texts).to_dict("records") if usable else []
    by_line = {r[LINE]: p for r, p in zip(usable, predictions)}

    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(_output_row(record, by_line.get(record[LINE]), uri),
                                    ensure_ascii=False) + "\n")
    log.info("predicted %d of %d posts with %s", len(usable), len(records), uri)
    return len(records), len(records) - len(usable)


def _load_model(uri: str) -> Any:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(uri)
    except MlflowException as error:
        raise LookupError(f"model {uri} could not be loaded: {error.message}") from error


def _output_row(record: dict[str, Any], prediction: dict[str, Any] | None, uri: str) -> dict[str, Any]:
    fields = record.get("fields", {})
    post_id = fields.get("id")
    row: dict[str, Any] = {"id": record[LINE] if post_id in (None, "") else post_id}
    if prediction is None:
        row["error"] = f"line {record[LINE]}: {record['error']}"
        log.warning("%s", row["error"])
        return row
    if "labels" in prediction:  # a multi-label model outputs a JSON array and no single label
        row["labels"] = json.loads(prediction["labels"])
    else:
        row["label"] = prediction["label"]
        row["confidence"] = round(float(prediction["confidence"]), 6)
    row["probabilities"] = {k.removeprefix("prob_"): round(float(v), 6)
                            for k, v in prediction.items() if k.startswith("prob_")}
    row["model"] = uri
    extra = {k: v for k, v in fields.items() if k not in ("id", "text")}
    if extra:
        row["input_fields"] = extra
    return row

"""File-based entity training and prediction, for the command line.

Training reads CoNLL files (token TAB tag) or Label Studio JSON exports with span
annotations. Prediction reads JSONL or CSV posts and writes JSON lines with spans, or
reads CoNLL and writes it back with the predicted tag as a new last column.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.commands import LINE, read_posts_file
from tasks.extract.conll import (
    ConllRow,
    TaggedPost,
    append_conll_column,
    check_tag,
    iter_conll_posts,
    read_conll,
    read_conll_lines,
    repair_iob2,
)
from tasks.extract.metrics import span_metrics
from tasks.extract.spans import label_studio_posts
from tasks.extract.train import train_and_register_entities
from tasks.settings import Settings

log = logging.getLogger(__name__)

ENTITY_TASK = "entities"
LABEL_STUDIO_SUFFIX = ".json"
POST_SUFFIXES = {".jsonl", ".json", ".csv"}


def entity_model_name(settings: Settings) -> str:
    """Return the registered model name of the entity tagger: the model prefix + "entities"."""
    return f"{settings.registry.model_prefix}{ENTITY_TASK}"


def read_entity_file(path: Path) -> list[TaggedPost]:
    """Read tagged posts from a Label Studio JSON export (``.json``) or a CoNLL file (others)."""
    if not path.is_file():
        raise FileNotFoundError(f"entity file {path} not found")
    if path.suffix.lower() != LABEL_STUDIO_SUFFIX:
        return read_conll(path)
    tasks = json.loads(path.read_bytes().decode("utf-8-sig"))
    if not isinstance(tasks, list):
        # ValueError, not TypeError: the file content is invalid, and the CLI reports it.
        raise ValueError(  # noqa: TRY004
            f"{path} is not a Label Studio JSON export: expected a list of tasks")
    return label_studio_posts(tasks)


def train_entities_from_files(train_path: Path, validation_path: Path, settings: Settings,
                              model_name: str | None = None, stride: int | None = None,
                              learning_rate: float | None = None) -> str:
    """Train on ``train_path``, evaluate on ``validation_path`` and return the registered model URI.

    ``model_name`` defaults to ``entity_model_name(settings)``, ``stride`` to
    ``settings.train.entity_stride`` and ``learning_rate`` to
    ``settings.train.entity_learning_rate``.
    """
    train = read_entity_file(train_path)
    validation = read_entity_file(validation_path)
    tags = {"data.train_file": str(train_path.resolve()),
            "data.validation_file": str(validation_path.resolve()),
            "data.train_size": str(len(train)), "data.validation_size": str(len(validation))}
    registered = train_and_register_entities(train, validation, settings,
                                             model_name or entity_model_name(settings), tags,
                                             stride, learning_rate)
    if registered is None:
        return ""  # a non-main rank of a torchrun launch: rank 0 registered the model
    log.info("validation span F1: micro %.4f, macro %.4f (precision %.4f, recall %.4f)",
             registered.metrics["micro_f1"], registered.metrics["macro_f1"],
             registered.metrics["micro_precision"], registered.metrics["micro_recall"])
    return registered.uri


def resolve_model_uri(model_uri: str | None, settings: Settings, model_name: str) -> str:
    """Point MLflow at the configured registry and return the URI of the model to load.

    That is ``model_uri``, or the champion alias URI of ``model_name`` when it is set.
    Raises LookupError when no URI is given and ``model_name`` has no champion.
    """
    from tasks.registry.tracking import champion_version, configure_mlflow

    client = configure_mlflow(settings)
    if model_uri:
        return model_uri
    alias = settings.registry.champion_alias
    if champion_version(client, model_name, alias) is None:
        raise LookupError(
            f"registered model {model_name!r} has no '{alias}' version: pass "
            f"--model models:/{model_name}/<version>, or set the alias in MLflow"
        )
    return f"models:/{model_name}@{alias}"


def predict_entities_file(input_path: Path, output_path: Path, model_uri: str | None,
                          settings: Settings, model_name: str | None = None) -> tuple[int, int]:
    """Tag the posts in ``input_path`` and write them to ``output_path``.

    ``.jsonl``, ``.json`` (JSON lines) and ``.csv`` inputs need a ``text`` field and may
    have an ``id``. They give one JSON line per post with ``spans`` whose offsets index
    the input text as given, not normalized. Any other file is read as CoNLL, and its token
    lines are written back with the predicted tag appended. Returns the number of posts
    written and how many of them are errors. ``model_name`` (default
    ``entity_model_name(settings)``) gives the champion to use when ``model_uri`` is None.
    """
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} not found")
    if output_path.is_dir():
        raise IsADirectoryError(f"--output {output_path} is a folder: give a file path")
    uri = resolve_model_uri(model_uri, settings, model_name or entity_model_name(settings))
    model = _load_model(uri)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    if input_path.suffix.lower() in POST_SUFFIXES:
        written, errors = _predict_posts(model, input_path, output_path, uri)
    else:
        written, errors = _predict_conll(model, input_path, output_path), 0
    log.info("tagged %d of %d posts from %s with %s", written - errors, written, input_path, uri)
    return written, errors


def _load_model(uri: str) -> Any:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(uri)
    except MlflowException as error:
        raise LookupError(f"model {uri} could not be loaded: {error.message}") from error


def _predict_posts(model: Any, input_path: Path, output_path: Path, uri: str) -> tuple[int, int]:
    records = read_posts_file(input_path)
    for record in records:
        if "error" not in record and not str(record["fields"].get("text") or "").strip():
            record["error"] = "missing or empty 'text' field"
    usable = [record for record in records if "error" not in record]
    texts = pd.DataFrame({"text": [str(record["fields"]["text"]) for record in usable]})
    spans = list(model.predict(texts)["spans"]) if usable else []
    by_line = {record[LINE]: json.loads(found) for record, found in zip(usable, spans)}
    with output_path.open("w", encoding="utf-8") as handle:
        for record in records:
            row = _output_row(record, by_line.get(record[LINE]), uri)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(records), len(records) - len(usable)


def _output_row(record: dict[str, Any], spans: list[dict[str, Any]] | None,
                uri: str) -> dict[str, Any]:
    fields = record.get("fields", {})
    post_id = fields.get("id")
    row: dict[str, Any] = {"id": record[LINE] if post_id in (None, "") else post_id}
    if spans is None:
        row["error"] = f"line {record[LINE]}: {record['error']}"
        log.warning("%s", row["error"])
        return row
    row["spans"] = spans
    row["model"] = uri
    extra = {k: v for k, v in fields.items() if k not in ("id", "text")}
    if extra:
        row["input_fields"] = extra
    return row


def _predict_conll(model: Any, input_path: Path, output_path: Path) -> int:
    from tasks.extract.pyfunc import EntityTaggerModel

    tagger = model.unwrap_python_model()
    if not isinstance(tagger, EntityTaggerModel):
        raise ValueError(  # noqa: TRY004
            f"model {type(tagger).__name__} is not an entity tagger: pass the URI of a "
            "model registered by entity training")
    lines = read_conll_lines(input_path)
    posts = list(iter_conll_posts(lines))
    word_tags = tagger.predict_tags([[row.fields[0] for row in rows] for rows in posts])
    predicted = [[tag for tag, _ in tags] for tags in word_tags]
    values = {row.line: tag for rows, tags in zip(posts, predicted)
              for row, tag in zip(rows, tags)}
    output_path.write_text("".join(line + "\n" for line in append_conll_column(lines, values)),
                           encoding="utf-8")
    _log_gold_f1(posts, predicted, input_path)
    return len(posts)


def _log_gold_f1(posts: Sequence[list[ConllRow]], predicted: list[list[str]], path: Path) -> None:
    """Log span F1 against the input's last column when every token line has a valid tag there."""
    rows = [row for post in posts for row in post]
    if not rows or not all(len(row.fields) >= 2 and check_tag(row.fields[-1]) for row in rows):
        return
    gold = [repair_iob2([row.fields[-1] for row in post])[0] for post in posts]
    metrics = span_metrics(gold, predicted)
    log.info("%s: span F1 against its tag column: micro %.4f, macro %.4f", path.name,
             metrics["micro_f1"], metrics["macro_f1"])

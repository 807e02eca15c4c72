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
from tasks.train.pipeline import train_and_register
from tasks.validate.suites import validate_frame

log = logging.getLogger(__name__)


def read_labeled_file(path: Path, labels: list[str]) -> pd.DataFrame:
    """Read text and label from ``path``; invalid rows are logged with their line and skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"labeled file {path} not found")
    frame = read_label_file(path)
    report = validate_frame(frame, "labels", {"label_set": labels})
    failures = report.failures_by_row()
    for row, fails in sorted(failures.items()):
        reasons = "; ".join(f.meta.get("reason", f.expectation) for f in fails)
        log.warning("%s line %s skipped: %s", path.name, frame.iloc[row]["line"], reasons)
    valid = frame.drop(index=list(failures))
    if valid.empty:
        raise ValueError(f"{path} has no valid rows with 'text' and a label in {labels}")
    return valid.assign(text=valid["text"].map(normalize_text)).reset_index(drop=True)


def model_name(task: str, settings: Settings) -> str:
    """Return the registered model name of classification ``task``."""
    if task == "sentiment":
        return settings.registry.sentiment_model
    return f"{settings.registry.model_prefix}{task}"


def resolve_labels(task: str, labels: list[str] | None, train_path: Path,
                   settings: Settings) -> list[str]:
    """Return the label set: given, from the settings for ``task``, or sorted from the data."""
    if labels:
        return labels
    if task in settings.classification_tasks:
        return list(settings.classification_tasks[task])
    found = sorted({str(label) for label in read_label_file(train_path)["label"].dropna()})
    if len(found) < 2:
        raise ValueError(f"{train_path} has fewer than two labels ({found}): pass --labels")
    log.info("label set of %s taken from %s: %s", task, train_path.name, found)
    return found


def train_from_files(train_path: Path, validation_path: Path, settings: Settings,
                     task: str = "sentiment", labels: list[str] | None = None) -> str:
    """Train on ``train_path``, evaluate on ``validation_path``, register; return the model URI."""
    if not train_path.is_file():
        raise FileNotFoundError(f"labeled file {train_path} not found")
    labels = resolve_labels(task, labels, train_path, settings)
    train = read_labeled_file(train_path, labels)
    validation = read_labeled_file(validation_path, labels)
    tags = {"data.train_file": str(train_path.resolve()),
            "data.validation_file": str(validation_path.resolve()),
            "data.train_size": str(len(train)), "data.validation_size": str(len(validation))}
    registered = train_and_register(train, validation, labels, settings,
                                    model_name(task, settings), tags)
    log.info("validation: macro-recall %.4f, macro-F1 %.4f, accuracy %.4f",
             registered.metrics["macro_recall"], registered.metrics["macro_f1"],
             registered.metrics["accuracy"])
    return registered.uri


def read_posts_file(path: Path) -> list[dict[str, Any]]:
    """Read JSONL or CSV posts as dicts with ``line`` added; unparseable lines get ``error``."""
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} not found")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        return [{**row, "line": number} for number, row in enumerate(reader, start=2)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            records.append({**value, "line": number} if isinstance(value, dict)
                           else {"line": number, "error": "not a JSON object"})
        except json.JSONDecodeError as error:
            records.append({"line": number, "error": f"invalid JSON: {error.msg}"})
    return records


def predict_file(input_path: Path, output_path: Path, model_uri: str | None,
                 settings: Settings, task: str = "sentiment") -> int:
    """Write one JSON line per input post with its label and class probabilities."""
    import mlflow

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
        if "error" not in record and not str(record.get("text") or "").strip():
            record["error"] = "missing or empty 'text' field"
    usable = [r for r in records if "error" not in r]
    model = mlflow.pyfunc.load_model(uri)
    texts = pd.DataFrame({"text": [normalize_text(str(r["text"])) for r in usable]})
    predictions = model.predict(texts).to_dict("records") if usable else []
    by_line = {r["line"]: p for r, p in zip(usable, predictions)}

    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(_output_row(record, by_line.get(record["line"]), uri),
                                    ensure_ascii=False) + "\n")
    log.info("predicted %d of %d posts with %s", len(usable), len(records), uri)
    return len(records)


def _output_row(record: dict[str, Any], prediction: dict[str, Any] | None, uri: str) -> dict[str, Any]:
    row: dict[str, Any] = {"id": record.get("id", record["line"])}
    if prediction is None:
        row["error"] = f"line {record['line']}: {record['error']}"
        log.warning("%s", row["error"])
        return row
    row["label"] = prediction["label"]
    row["confidence"] = round(float(prediction["confidence"]), 6)
    row["probabilities"] = {k.removeprefix("prob_"): round(float(v), 6)
                            for k, v in prediction.items() if k.startswith("prob_")}
    row["model"] = uri
    extra = {k: v for k, v in record.items() if k not in ("id", "text", "line")}
    if extra:
        row["input_fields"] = extra
    return row

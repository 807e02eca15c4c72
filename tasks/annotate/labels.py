"""Import finished labels: Label Studio JSON exports, or JSONL/CSV with text and label.

Imported labels are validated with the labels suite. Rows that fail a critical
expectation go to the labels quarantine with the file, line and field, like posts do.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks import storage
from tasks.clean.text import normalize_text
from tasks.validate.suites import save_validation, validate_frame

log = logging.getLogger(__name__)

LABELS = "labels"
LABELS_QUARANTINE = "labels_quarantine"
LEDGER_KEY = "label_imports/ledger.json"
QUARANTINE_COLUMNS = ["source_file", "line", "field", "reason", "fix", "text", "label"]
LABEL_COLUMNS = ["text", "label", "post_id", "annotator", "annotated_at", "source_file", "line"]
LABEL_FILE_SUFFIXES = {".json", ".jsonl", ".csv"}  # compared in lower case


def read_label_file(path: Path) -> pd.DataFrame:
    """Read one finished export into rows with the columns of LABEL_COLUMNS.

    A ``.json`` file is a Label Studio export (a list of tasks with annotations), while
    ``.jsonl`` and ``.csv`` have one labeled text per line or row.
    """
    suffix = path.suffix.lower()
    text = _decode_labels(path)
    if suffix == ".json":
        try:
            rows = _label_studio_rows(json.loads(text))
        except (json.JSONDecodeError, AttributeError, TypeError) as error:
            raise ValueError(f"{path} is not a Label Studio JSON export (a list of tasks): "
                             f"{error}") from error
    elif suffix == ".csv":
        rows = _csv_rows(text)
    else:
        rows = [_jsonl_row(line, number)
                for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    frame = pd.DataFrame(rows, columns=[*LABEL_COLUMNS, "parse_error"])
    return frame.assign(source_file=path.name)


def _decode_labels(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not valid UTF-8 (byte {error.start}): re-encode it as "
                         f"UTF-8") from error


def _jsonl_row(line: str, number: int) -> dict[str, Any]:
    """Return the row of one JSONL line; an unparseable line keeps its number and error."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return {"line": number, "parse_error": f"invalid JSON: {error.msg}"}
    if not isinstance(record, dict):
        return {"line": number, "parse_error": f"expected a JSON object, got {type(record).__name__}"}
    return _plain_row(record, number)


def _csv_rows(text: str) -> list[dict[str, Any]]:
    """Rows of a CSV label file, each numbered by the line it starts on."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[dict[str, Any]] = []
    if reader.fieldnames is None:
        return rows
    start = reader.line_num + 1
    for record in reader:
        rows.append(_plain_row(record, start))
        start = reader.line_num + 1
    return rows


def _plain_row(record: dict[str, Any], line: int) -> dict[str, Any]:
    return {"text": record.get("text"), "label": record.get("label"),
            "post_id": record.get("id") or record.get("post_id"),
            "annotator": record.get("annotator"), "annotated_at": record.get("annotated_at"),
            "line": line}


def _label_studio_rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one row per task, from its latest annotation that was not cancelled."""
    rows = []
    for index, task in enumerate(tasks, start=1):
        data = task.get("data", {})
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        latest = max(annotations, key=lambda a: a.get("updated_at") or "", default=None)
        choice = _first_choice(latest["result"]) if latest else None
        rows.append({
            "text": data.get("text"), "label": choice, "post_id": data.get("post_id"),
            "annotator": _annotator(latest), "annotated_at": (latest or {}).get("updated_at"),
            "line": index,
        })
    return rows


def _first_choice(results: list[dict[str, Any]]) -> str | None:
    for result in results:
        choices = result.get("value", {}).get("choices")
        if result.get("type") == "choices" and choices:
            return choices[0]
    return None


def _annotator(annotation: dict[str, Any] | None) -> str | None:
    if not annotation:
        return None
    person = annotation.get("completed_by")
    if isinstance(person, dict):
        person = person.get("email") or person.get("id")
    return None if person is None else str(person)


def files_to_import(store: storage.Store, inbox: Path, day: dt.date) -> list[Path]:
    """Return inbox files that are new or were imported for ``day`` before (for reruns).

    A ledger in the store maps each file's content hash to the date it was imported for,
    so a file is imported once, and rerunning that date imports it again into the same
    partition instead of losing it.
    """
    ledger = _read_ledger(store)
    chosen = []
    for path in sorted(inbox.glob("*")) if inbox.is_dir() else []:
        if path.suffix.lower() not in LABEL_FILE_SUFFIXES or not path.is_file():
            continue
        owner = ledger.get(_digest(path))
        if owner is None or owner == day.isoformat():
            chosen.append(path)
    return chosen


def import_labels(
    store: storage.Store, day: dt.date, files: Sequence[Path], labels: Sequence[str]
) -> dict[str, int]:
    """Read ``files``, validate with the labels suite and write the day's labels partition."""
    frames = [read_label_file(path) for path in files]
    imported = (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame(columns=[*LABEL_COLUMNS, "parse_error"]))
    report = validate_frame(imported, "labels", {"label_set": list(labels)})
    save_validation(store, day, report)
    failures = report.failures_by_row()
    quarantine = [_quarantine_row(imported.iloc[row], fails) for row, fails in sorted(failures.items())]
    accepted = imported.drop(index=list(failures)).drop(columns=["parse_error"])
    accepted = accepted.assign(text=accepted["text"].map(normalize_text))

    storage.write_frame(store, LABELS, day, accepted)
    storage.write_frame(store, LABELS_QUARANTINE, day,
                        pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS))
    _record_imports(store, files, day)
    log.info("imported %d labels for %s from %d files, %d quarantined",
             len(accepted), day, len(files), len(quarantine))
    return {"files": len(files), "labels": len(accepted), "quarantined": len(quarantine)}


def _quarantine_row(row: pd.Series, failures: list[Any]) -> dict[str, Any]:
    field = failures[0].meta.get("field", failures[0].column)
    reasons = "; ".join(f.meta.get("reason", f.expectation) for f in failures)
    value = row.get("parse_error") if isinstance(row.get("parse_error"), str) else row.get(field)
    return {"source_file": row["source_file"], "line": int(row["line"]), "field": field,
            "reason": f"{row['source_file']} item {row['line']}, field '{field}': {reasons} "
                      f"(value {str(value)[:80]!r})",
            "fix": failures[0].meta.get("fix", ""), "text": row["text"], "label": row["label"]}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_ledger(store: storage.Store) -> dict[str, str]:
    return storage.read_json(store, LEDGER_KEY) if store.exists(LEDGER_KEY) else {}


def _record_imports(store: storage.Store, files: Sequence[Path], day: dt.date) -> None:
    ledger = _read_ledger(store)
    ledger.update({_digest(path): day.isoformat() for path in files})
    storage.write_json(store, LEDGER_KEY, ledger)


def load_all_labels(store: storage.Store, until: dt.date | None = None) -> pd.DataFrame:
    """Return every imported label up to ``until``; for a repeated text the latest wins."""
    frame = storage.read_all_frames(store, LABELS, until)
    if frame.empty:
        return frame
    frame = frame.sort_values(["partition", "annotated_at"], na_position="first", kind="stable")
    return frame.drop_duplicates(subset="text", keep="last").reset_index(drop=True)

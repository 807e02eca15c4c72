"""Import finished labels from Label Studio, doccano, CoNLL and plain JSONL/CSV files.

Each import run is one batch. Sentiment rows are validated with the labels suite and
entity rows against their text and the entity types. Rows that fail go to the labels
quarantine with the file, line and field, like posts do. Several annotators may label
the same post: the majority label is imported, ties wait in ``labels_review``, and the
batch's agreement report is stored beside its labels.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks import storage
from tasks.annotate import export, history, resolve
from tasks.annotate.annotations import (
    ANNOTATION_SUFFIXES,
    csv_rows,
    decode_label_file,
    plain_row,
    read_annotation_file,
)
from tasks.annotate.formats import ANNOTATION_COLUMNS, ENTITIES, SENTIMENT
from tasks.annotate.formats.label_studio import annotator_name, first_choice
from tasks.clean.text import mask_personal_data, normalize_text
from tasks.validate.suites import save_validation, validate_frame

log = logging.getLogger(__name__)

LABELS = "labels"
ENTITY_LABELS = "entity_labels"
LABEL_ANNOTATIONS = "label_annotations"
LABELS_REVIEW = "labels_review"
LABELS_QUARANTINE = "labels_quarantine"
AGREEMENT_FILE = "agreement.json"
LEDGER_KEY = "label_imports/ledger.json"
QUARANTINE_COLUMNS = ["source_file", "line", "field", "reason", "fix", "text", "label", "task"]
LABEL_COLUMNS = ["text", "label", "post_id", "annotator", "annotated_at", "source_file", "line"]
LABEL_FILE_SUFFIXES = ANNOTATION_SUFFIXES


def read_label_file(path: Path) -> pd.DataFrame:
    """Read one finished export into rows with the columns of LABEL_COLUMNS.

    A ``.json`` file is a Label Studio export (a list of tasks with annotations), while
    ``.jsonl`` and ``.csv`` have one labeled text per line or row.
    """
    suffix = path.suffix.lower()
    text = decode_label_file(path.read_bytes(), str(path))
    if suffix == ".json":
        try:
            rows = _label_studio_rows(json.loads(text))
        except (json.JSONDecodeError, AttributeError, TypeError) as error:
            raise ValueError(f"{path} is not a Label Studio JSON export (a list of tasks): "
                             f"{error}") from error
    elif suffix == ".csv":
        rows = csv_rows(text)
    else:
        rows = [_jsonl_row(line, number)
                for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    frame = pd.DataFrame(rows, columns=[*LABEL_COLUMNS, "parse_error"])
    return frame.assign(source_file=path.name)


def _jsonl_row(line: str, number: int) -> dict[str, Any]:
    """Return the row of one JSONL line; an unparseable line keeps its number and error."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return {"line": number, "parse_error": f"invalid JSON: {error.msg}"}
    if not isinstance(record, dict):
        return {"line": number, "parse_error": f"expected a JSON object, got {type(record).__name__}"}
    return plain_row(record, number)


def _label_studio_rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one row per task, from its latest annotation that was not cancelled."""
    rows = []
    for index, task in enumerate(tasks, start=1):
        data = task.get("data", {})
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        latest = max(annotations, key=lambda a: a.get("updated_at") or "", default=None)
        choice = first_choice(latest["result"]) if latest else None
        rows.append({
            "text": data.get("text"), "label": choice, "post_id": data.get("post_id"),
            "annotator": annotator_name(latest), "annotated_at": (latest or {}).get("updated_at"),
            "line": index,
        })
    return rows


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
    store: storage.Store, day: dt.date, files: Sequence[Path], labels: Sequence[str],
    entity_types: Sequence[str] = (), post_texts: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Import ``files`` as the batch of ``day``: validate, vote, measure agreement, store.

    Sentiment rows are validated with the labels suite and entity rows against the text
    and ``entity_types`` (any type when empty). Failing rows go to the labels quarantine.
    Every valid annotation is kept in ``label_annotations``; the majority label of each
    post goes to ``labels`` (sentiment) or ``entity_labels``, and ties go to
    ``labels_review``. The agreement report is stored beside the day's labels.
    ``post_texts`` (default: every exported post) places the tags of CoNLL files.
    Rerunning a day replaces all of these.
    """
    if post_texts is None:
        post_texts = export.exported_texts(store)
    imported = _read_files(files, post_texts)
    is_entity = imported["task"] == ENTITIES
    sentiment, entities = imported[~is_entity], imported[is_entity]
    valid_sentiment, sentiment_quarantine = _validate_sentiment(store, day, sentiment, labels)
    valid_entities, entity_quarantine = validate_entity_rows(entities, entity_types)
    quarantine = pd.DataFrame([*sentiment_quarantine, *entity_quarantine],
                              columns=QUARANTINE_COLUMNS)

    annotations = _with_label_ids(pd.concat([valid_sentiment, valid_entities], ignore_index=True))
    batch = resolve.resolve_batch(annotations, day.isoformat())
    _write_batch(store, day, annotations, batch, quarantine, files)
    _record_imports(store, files, day)

    counts = {"files": len(files), "annotations": len(annotations),
              "labels": len(batch.labels), "entity_labels": len(batch.entity_labels),
              "review": len(batch.review), "quarantined": len(quarantine)}
    log.info("imported batch %s from %d files: %s", day, len(files), counts)
    return counts


def _read_files(files: Sequence[Path], post_texts: Mapping[str, str]) -> pd.DataFrame:
    frames = [read_annotation_file(path, post_texts) for path in files]
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=ANNOTATION_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _validate_sentiment(store: storage.Store, day: dt.date, rows: pd.DataFrame,
                        labels: Sequence[str]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Run the labels suite on ``rows`` and return the valid rows, masked, and quarantine rows."""
    rows = rows.reset_index(drop=True).assign(task=SENTIMENT)
    report = validate_frame(rows, "labels", {"label_set": list(labels)})
    save_validation(store, day, report)
    failures = report.failures_by_row()
    quarantine = [_quarantine_row(rows.iloc[row], fails) for row, fails in sorted(failures.items())]
    accepted = rows.drop(index=list(failures))
    return accepted.assign(text=accepted["text"].map(normalize_text)), quarantine


def validate_entity_rows(rows: pd.DataFrame, types: Sequence[str]
                         ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Split entity rows into valid ones and quarantine rows, checking text and spans.

    The text is not normalized, because that would move the spans. A text that masking
    would still change contains a handle, e-mail address or phone number, and it is rejected.
    """
    valid, quarantine = [], []
    for index, row in rows.iterrows():
        problem = _entity_problem(row, types)
        if problem is None:
            valid.append(index)
            continue
        field, reason, fix = problem
        quarantine.append({
            "source_file": row["source_file"], "line": int(row["line"]), "field": field,
            "reason": f"{row['source_file']} item {row['line']}, field '{field}': {reason}",
            "fix": fix, "text": row["text"], "label": json.dumps(row["spans"]), "task": ENTITIES})
    return rows.loc[valid], quarantine


def _entity_problem(row: pd.Series, types: Sequence[str]) -> tuple[str, str, str] | None:
    """Return (field, reason, fix) for an invalid entity row, or None."""
    text, spans = row["text"], row["spans"]
    if isinstance(row["parse_error"], str):
        return "record", row["parse_error"], "export the file again from the annotation tool"
    if not isinstance(text, str) or not text.strip():
        return "text", "text is missing or empty", "export the task data with its 'text' field"
    if mask_personal_data(text) != text:
        return "text", "text contains a handle, e-mail address or phone number", \
            "label the masked text that the export wrote"
    if spans is None:
        return "spans", "annotation is missing", "finish the annotation or drop the post"
    for start, end, kind in spans:
        if not 0 <= start < end <= len(text):
            return "spans", f"span {start}-{end} is outside the text ({len(text)} characters)", \
                "mark spans inside the exported text"
        if types and kind not in types:
            return "spans", f"entity type {kind!r} is not in the entity types {list(types)}", \
                "use one of annotation.entity_types, or add the type there"
    return None


def _with_label_ids(annotations: pd.DataFrame) -> pd.DataFrame:
    post_ids = [None if post is None or pd.isna(post) or not str(post).strip() else str(post)
                for post in annotations["post_id"]]
    ids = [history.label_id(post, text) for post, text in zip(post_ids, annotations["text"])]
    return annotations.assign(post_id=post_ids, label_id=ids).drop(columns="parse_error")


def _write_batch(store: storage.Store, day: dt.date, annotations: pd.DataFrame,
                 batch: resolve.BatchResult, quarantine: pd.DataFrame,
                 files: Sequence[Path]) -> None:
    stored = annotations.assign(
        spans=[None if spans is None else json.dumps(spans, ensure_ascii=False)
               for spans in annotations["spans"]],
        batch=day.isoformat())
    storage.write_frame(store, LABEL_ANNOTATIONS, day, stored)
    storage.write_frame(store, LABELS, day, batch.labels)
    storage.write_frame(store, ENTITY_LABELS, day, batch.entity_labels)
    storage.write_frame(store, LABELS_REVIEW, day, batch.review)
    storage.write_frame(store, LABELS_QUARANTINE, day, quarantine)
    report = {**batch.report, "files": [path.name for path in files],
              "imported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    storage.write_json(store, agreement_key(day), report)


def agreement_key(day: dt.date) -> str:
    """Return the key of the agreement report of the batch imported for ``day``."""
    return storage.partition_key(LABELS, day, AGREEMENT_FILE)


def _quarantine_row(row: pd.Series, failures: list[Any]) -> dict[str, Any]:
    field = failures[0].meta.get("field", failures[0].column)
    reasons = "; ".join(f.meta.get("reason", f.expectation) for f in failures)
    value = row.get("parse_error") if isinstance(row.get("parse_error"), str) else row.get(field)
    return {"source_file": row["source_file"], "line": int(row["line"]), "field": field,
            "reason": f"{row['source_file']} item {row['line']}, field '{field}': {reasons} "
                      f"(value {str(value)[:80]!r})",
            "fix": failures[0].meta.get("fix", ""), "text": row["text"], "label": row["label"],
            "task": SENTIMENT}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_ledger(store: storage.Store) -> dict[str, str]:
    return storage.read_json(store, LEDGER_KEY) if store.exists(LEDGER_KEY) else {}


def _record_imports(store: storage.Store, files: Sequence[Path], day: dt.date) -> None:
    ledger = _read_ledger(store)
    ledger.update({_digest(path): day.isoformat() for path in files})
    storage.write_json(store, LEDGER_KEY, ledger)


def load_all_labels(store: storage.Store, until: dt.date | None = None) -> pd.DataFrame:
    """Return the sentiment training view up to ``until``: the newest version of each label.

    A correction (the same post id imported later) replaces the earlier label here, while
    both stay in the history (:func:`tasks.annotate.history.label_history`).
    """
    return history.training_view(store, LABELS, until)


def load_entity_labels(store: storage.Store, until: dt.date | None = None) -> pd.DataFrame:
    """Return the entity training view up to ``until``, with spans as JSON text.

    ``spans`` contains a JSON list of [start, end, type] per post.
    """
    return history.training_view(store, ENTITY_LABELS, until)

"""doccano: JSONL tasks with pre-annotations, and reading JSONL exports.

A line contains ``text`` and ``label``: a list of label names for text classification and a
list of [start, end, type] spans for sequence labeling. doccano keeps the other fields
(``post_id``, ``task``, ``partition``) as metadata and writes them back on export. A project
without collaborative annotation exports one file per user, named after the user, and
lists every example in each file, with an empty ``label`` where that user gave none.

The same reader takes plain JSONL label files, where ``label`` is a single string.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from tasks.annotate.formats import ENTITIES, SENTIMENT, Prediction, annotation_row, task_data

log = logging.getLogger(__name__)


def build_lines(posts: Sequence[dict[str, Any]], task: str,
                predictions: Sequence[Prediction | None] | None = None) -> str:
    """Return the JSONL import file for ``posts``, pre-labeled where a prediction exists.

    doccano has no field for a model version or score, so they are written as metadata.
    """
    predictions = predictions or [None] * len(posts)
    lines = []
    for post, predicted in zip(posts, predictions, strict=True):
        record: dict[str, Any] = {**task_data(post, task), "label": []}
        if predicted is not None:
            record["label"] = _label_value(task, predicted)
            record["model_version"] = predicted.model_version
            record["score"] = predicted.score
        lines.append(json.dumps(record, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def _label_value(task: str, predicted: Prediction) -> list[Any]:
    if task == ENTITIES:
        return [[span["start"], span["end"], span["type"]] for span in predicted.spans or []]
    return [predicted.label]


def read_lines(text: str, default_annotator: str) -> list[dict[str, Any]]:
    """Return the annotation rows of a doccano (or plain) JSONL export.

    Lines end only at LF, because JSON strings may contain U+2028, which ``str.splitlines``
    would split at. A classification line with an empty label list is an example the
    user did not label, and it is skipped. For entities an empty list means no entities.
    NOTE: a per-user export also lists the examples a user never opened, so in an entity
    project they count as "no entities". Export approved (confirmed) examples only there.
    """
    rows, skipped = [], 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = read_line(line, number, default_annotator)
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    if skipped:
        log.info("skipped %d lines with an empty label list (not labeled by that user)", skipped)
    return rows


def read_line(line: str, number: int, default_annotator: str) -> dict[str, Any] | None:
    """Return the annotation row of one JSONL line, or None for an unlabeled example."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return annotation_row(number, parse_error=f"invalid JSON: {error.msg}")
    if not isinstance(record, dict):
        return annotation_row(number, parse_error=f"expected a JSON object, got "
                                                  f"{type(record).__name__}")

    base = {"text": record.get("text"),
            "post_id": _post_id(record),
            "annotator": str(record.get("annotator") or default_annotator),
            "annotated_at": record.get("annotated_at")}
    declared = record.get("task")
    if isinstance(record.get("entities"), list):
        return _entity_row(number, base, [_offsets_from_dict(span) for span in record["entities"]])
    value = record["label"] if "label" in record else record.get("labels")
    if not isinstance(value, list):
        return annotation_row(number, task=SENTIMENT, label=value, **base)
    if declared == ENTITIES or any(isinstance(item, list) for item in value):
        return _entity_row(number, base, value)
    return _choice_row(number, base, value)


def _post_id(record: dict[str, Any]) -> Any:
    # doccano writes its own example id as "id", so the exported "post_id" comes first.
    return record.get("post_id") if record.get("post_id") is not None else record.get("id")


def _choice_row(number: int, base: dict[str, Any], value: list[Any]) -> dict[str, Any] | None:
    if not value:
        return None
    if len(value) > 1:
        return annotation_row(number, task=SENTIMENT, **base,
                              parse_error=f"{len(value)} labels {value!r} for a single-label task")
    return annotation_row(number, task=SENTIMENT, label=value[0], **base)


def _entity_row(number: int, base: dict[str, Any], value: list[Any]) -> dict[str, Any]:
    spans = []
    for item in value:
        if not (isinstance(item, list | tuple) and len(item) == 3
                and all(isinstance(offset, int) for offset in item[:2])):
            return annotation_row(number, task=ENTITIES, **base,
                                  parse_error=f"span {item!r} is not [start, end, type]")
        spans.append([item[0], item[1], str(item[2])])
    # NOTE: offsets are read as code points. doccano 1.x computed them in the browser as
    # UTF-16 code units (reported in 2019); if a release still does, spans after an emoji shift.
    return annotation_row(number, task=ENTITIES, spans=spans, **base)


def _offsets_from_dict(span: Any) -> Any:
    """Turn a relation-project entity ({start_offset, end_offset, label}) into a triple."""
    if not isinstance(span, dict):
        return span
    return [span.get("start_offset"), span.get("end_offset"), span.get("label")]

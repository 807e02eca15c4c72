"""Task files for annotation tools, and the finished exports those tools return.

Each module builds the tasks for one tool and reads that tool's export back into
annotation rows: one row per annotator and post, with the keys of ANNOTATION_COLUMNS.
``label`` contains a classification label and ``spans`` a list of [start, end, type]
entities with end-exclusive offsets into ``text`` (Python string indices).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SENTIMENT = "sentiment"
ENTITIES = "entities"
ANNOTATION_COLUMNS = ["task", "post_id", "text", "label", "spans", "annotator", "annotated_at",
                      "source_file", "line", "parse_error"]


def annotation_row(line: int, **values: Any) -> dict[str, Any]:
    """Return an annotation row for item ``line`` with every column, missing ones None."""
    row: dict[str, Any] = dict.fromkeys(ANNOTATION_COLUMNS)
    row.update(line=line, **values)
    return row


def task_data(post: dict[str, Any], task: str) -> dict[str, Any]:
    """Return the fields every exported task carries: masked text, post id, language, date."""
    return {"text": post["text"], "post_id": post["id"], "lang": post.get("lang"),
            "partition": post.get("partition"), "task": task}


@dataclass(frozen=True)
class Prediction:
    """A champion model's pre-annotation of one post.

    ``label`` is set for classification and ``spans`` for entities, as dicts with start,
    end, type and score. ``score`` is the model's confidence in the whole post, or None
    when it has none (entity predictions without spans).
    """

    model_version: str
    label: str | None = None
    spans: list[dict[str, Any]] | None = None
    score: float | None = None

"""A stand-in annotator for the demo: completes exported tasks with known labels."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any


def complete_label_studio_tasks(
    tasks: list[dict[str, Any]], gold: dict[str, str], annotator: str = "demo-annotator"
) -> list[dict[str, Any]]:
    """Return a Label Studio export for ``tasks``, each completed with its ``gold`` label.

    Tasks whose post id has no gold label are left without an annotation, as an annotator
    would skip them.
    """
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    exported = []
    for number, task in enumerate(tasks, start=1):
        label = gold.get(task["data"].get("post_id"))
        annotations = [] if label is None else [{
            "id": number, "completed_by": {"email": annotator}, "was_cancelled": False,
            "updated_at": now,
            "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                        "value": {"choices": [label]}}],
        }]
        exported.append({"id": number, "data": task["data"], "annotations": annotations})
    return exported


def write_export(exported: list[dict[str, Any]], inbox: Path, day: dt.date) -> Path:
    """Write a Label Studio export into the label inbox and return its path."""
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / f"label-studio-export-{day.isoformat()}.json"
    path.write_text(json.dumps(exported, ensure_ascii=False, indent=1))
    return path

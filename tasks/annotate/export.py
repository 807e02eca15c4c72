"""Export clean posts as a Label Studio import file with a matching labeling config."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

import pandas as pd

from tasks import storage

log = logging.getLogger(__name__)

ANNOTATION_TASKS = "annotation_tasks"


def labeling_config(labels: Sequence[str], name: str = "sentiment") -> str:
    """Return a Label Studio labeling config: one text and a single choice among ``labels``."""
    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    return (
        "<View>\n"
        '  <Text name="text" value="$text"/>\n'
        f'  <Choices name="{name}" toName="text" choice="single" showInLine="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def build_label_studio_tasks(posts: pd.DataFrame, day: dt.date) -> list[dict[str, Any]]:
    """Turn posts into Label Studio tasks; ``data`` carries the masked text and the post id."""
    return [
        {"data": {"text": row["text"], "post_id": row["id"], "lang": row["lang"],
                  "partition": day.isoformat()}}
        for row in posts.to_dict("records")
    ]


def export_for_labeling(
    store: storage.Store, day: dt.date, clean: pd.DataFrame, size: int,
    labels: Sequence[str], seed: int = 0,
) -> dict[str, str]:
    """Write a sample of ``clean`` as a Label Studio import file and its labeling config.

    The sample is seeded by ``seed`` and the date, so a rerun exports the same posts.
    """
    chosen = clean.sample(n=min(size, len(clean)), random_state=seed + day.toordinal())
    tasks = build_label_studio_tasks(chosen.sort_values("id"), day)
    tasks_key = storage.partition_key(ANNOTATION_TASKS, day, "label_studio_tasks.json")
    config_key = storage.partition_key(ANNOTATION_TASKS, day, "label_studio_config.xml")
    store.write_bytes(tasks_key, json.dumps(tasks, ensure_ascii=False, indent=1).encode())
    store.write_bytes(config_key, labeling_config(labels).encode())
    log.info("exported %d of %d clean posts for labeling to %s", len(tasks), len(clean),
             store.uri(tasks_key))
    return {"tasks": store.uri(tasks_key), "config": store.uri(config_key), "count": str(len(tasks))}

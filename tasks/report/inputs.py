"""Read what the daily report shows from the store: manifests, clean posts, scores, validations.

Every reader returns None or an empty frame for a missing partition, so that a report can
be built for a day whose later stages have not run.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from tasks import storage
from tasks.collect.stage import CLEAN, MANIFESTS, QUARANTINE
from tasks.score.batch import SCORES
from tasks.validate.suites import VALIDATIONS

MANIFEST_FILE = "collect.json"
VOLUME_COLUMNS = ["collected", "clean", "duplicates", "quarantined"]


def read_partition(store: storage.Store, dataset: str, day: dt.date,
                   columns: Sequence[str] | None = None) -> pd.DataFrame | None:
    """Read the day's partition of ``dataset``, or None when it does not exist.

    With ``columns``, only those of them that the partition has are read.
    """
    try:
        data = store.read_bytes(storage.partition_key(dataset, day))
    except FileNotFoundError:
        return None
    parquet = pq.ParquetFile(io.BytesIO(data))
    if columns is not None:
        columns = [name for name in columns if name in parquet.schema_arrow.names]
    return parquet.read(columns=columns).to_pandas()


def read_manifest(store: storage.Store, day: dt.date) -> dict[str, Any] | None:
    """Return the day's collection manifest, or None when the day was not collected."""
    key = storage.partition_key(MANIFESTS, day, MANIFEST_FILE)
    try:
        return storage.read_json(store, key)
    except FileNotFoundError:
        return None


def history_days(store: storage.Store, day: dt.date, days: int) -> list[dt.date]:
    """Return the dates of the ``days``-day window that ends on ``day``, oldest first.

    The window starts no earlier than the first day with clean posts or a manifest, so a
    new store does not show empty days before its first collection.
    """
    start = day - dt.timedelta(days=days - 1)
    stored = set(storage.list_partitions(store, CLEAN)) | set(
        storage.list_partitions(store, MANIFESTS))
    first = min((d for d in stored if start <= d <= day), default=day)
    return [first + dt.timedelta(days=offset) for offset in range((day - first).days + 1)]


def load_volume(store: storage.Store, days: Sequence[dt.date]) -> pd.DataFrame:
    """Return one row per day with the manifest counts.

    A day without a manifest takes its clean count from its clean_posts partition and has
    no other counts. A day with neither has no counts at all.
    """
    rows = []
    for day in days:
        manifest = read_manifest(store, day)
        row: dict[str, Any] = {"date": day.isoformat()}
        if manifest is not None:
            row.update({name: manifest.get(name) for name in VOLUME_COLUMNS})
        else:
            clean = read_partition(store, CLEAN, day, ["id"])
            row["clean"] = None if clean is None else len(clean)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["date", *VOLUME_COLUMNS])
    return frame.astype({name: "Int64" for name in VOLUME_COLUMNS})


def load_sentiment_shares(store: storage.Store, days: Sequence[dt.date],
                          labels: Sequence[str]) -> pd.DataFrame:
    """Return one row per day with sentiment scores: ``scored`` and the share of each label.

    Days without a scores partition, or whose scores have no ``label`` column, are left out.
    """
    rows = []
    for day in days:
        scores = read_partition(store, SCORES, day, ["label"])
        if scores is None or "label" not in scores:
            continue
        counts = scores["label"].value_counts()
        scored = int(counts.sum())
        rows.append({"date": day.isoformat(), "scored": scored,
                     **{label: counts.get(label, 0) / scored if scored else 0.0
                        for label in labels}})
    return pd.DataFrame(rows, columns=["date", "scored", *labels])


def load_quarantine_reasons(store: storage.Store, day: dt.date) -> pd.DataFrame | None:
    """Return the day's quarantined records counted by field and failed expectation.

    Each row carries the first record's reason as an example. None when the day has no
    quarantine partition.
    """
    quarantine = read_partition(store, QUARANTINE, day)
    if quarantine is None:
        return None
    grouped = quarantine.groupby(["field", "expectation"], sort=False, dropna=False)
    reasons = grouped.agg(count=("reason", "size"), example=("reason", "first")).reset_index()
    return reasons.sort_values(["count", "field"], ascending=[False, True], ignore_index=True)


def load_validation_results(store: storage.Store, day: dt.date) -> pd.DataFrame:
    """Return each suite stored for the day with its success and failed expectations."""
    rows = []
    for key in store.list_keys(f"{VALIDATIONS}/date={day.isoformat()}/"):
        if not key.endswith(".json"):
            continue
        summary = json.loads(store.read_bytes(key))
        failed = [_describe_expectation(item) for item in summary.get("expectations", [])
                  if not item.get("success")]
        rows.append({"suite": key.rsplit("/", 1)[-1].removesuffix(".json"),
                     "success": bool(summary.get("success")),
                     "failed": ", ".join(failed)})
    return pd.DataFrame(rows, columns=["suite", "success", "failed"])


def _describe_expectation(item: dict[str, Any]) -> str:
    column = item.get("kwargs", {}).get("column")
    name = item.get("expectation_type", "unknown expectation")
    return f"{name}({column})" if column else name


def count_entities(scores: pd.DataFrame) -> pd.DataFrame:
    """Count the entity spans in the ``entities`` column by type and text, most frequent first."""
    rows = []
    for spans in scores["entities"].dropna():
        for span in json.loads(spans) if isinstance(spans, str) else spans:
            text = str(span.get("text", "")).strip()
            if text:
                rows.append((str(span.get("type", "")), text))
    frame = pd.DataFrame(rows, columns=["type", "text"])
    counts = frame.value_counts().rename("count").reset_index()
    return counts.sort_values(["count", "type", "text"], ascending=[False, True, True],
                              ignore_index=True)


def count_model_versions(scores: pd.DataFrame) -> pd.DataFrame:
    """Return each (task, version) in the ``model_versions`` column with its post count."""
    rows = []
    for versions, posts in scores["model_versions"].value_counts().items():
        for task, version in sorted(json.loads(versions).items()):
            rows.append({"task": task, "version": str(version), "posts": int(posts)})
    frame = pd.DataFrame(rows, columns=["task", "version", "posts"])
    return frame.groupby(["task", "version"], as_index=False)["posts"].sum()


def representative_posts(scores: pd.DataFrame, posts: pd.DataFrame, label: str,
                         count: int) -> pd.DataFrame:
    """Return the ``count`` posts predicted as ``label`` with the highest confidence.

    Ties go to the smaller post id, so the choice is stable across runs.
    """
    chosen = scores.loc[scores["label"] == label, ["id", "confidence"]]
    chosen = chosen.sort_values(["confidence", "id"], ascending=[False, True]).head(count)
    texts = dict(zip(posts["id"].astype(str), posts["text"])) if "text" in posts else {}
    return chosen.assign(text=[texts.get(str(post_id), "") for post_id in chosen["id"]])

"""The collection stage: raw partition, validation with quarantine, cleaning, manifest.

Each step reads the previous step's partition from the store and writes its own, so a
step can be rerun alone and a rerun replaces that date's output. The manifest proves that
every collected record is accounted for: collected = clean + duplicates + quarantined.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
import pandas as pd

from tasks import storage
from tasks.clean.dedup import DuplicateIndex
from tasks.clean.text import identify_language, normalize_text
from tasks.collect.records import RAW_COLUMNS, parse_posts, split_records
from tasks.collect.sources import Source
from tasks.settings import Settings
from tasks.validate.suites import (
    VALIDATIONS,
    ExpectationFailure,
    save_validation,
    validate_frame,
)

log = logging.getLogger(__name__)

RAW = "raw_posts"
VALID = "valid_posts"
CLEAN = "clean_posts"
DUPLICATES = "duplicates"
QUARANTINE = "quarantine"
MANIFESTS = "manifests"
QUARANTINE_COLUMNS = ["source", "line", "id", "field", "reason", "fix", "expectation", "raw"]
CLEAN_COLUMNS = [
    "id", "text", "lang", "created_at", "author", "source", "line", "extra", "minhash",
]


class CountMismatchError(RuntimeError):
    """The manifest's counts do not add up, so a record was lost or counted twice."""


def collect_raw(sources: list[Source], store: storage.Store, day: dt.date) -> int:
    """Fetch the day's files from every source and write them as the raw partition.

    With several sources, each record's ``source`` is prefixed by its source's name. Sources
    that keep an ingest ledger commit it only after the raw partition is stored.
    """
    records = []
    for source in sources:
        log.info("collecting %s for %s from source %s", RAW, day, source.name)
        for raw_file in source.fetch(day):
            for record in split_records(raw_file):
                if len(sources) > 1:
                    record["source"] = f"{source.name}/{record['source']}"
                records.append(record)
    storage.write_frame(store, RAW, day, pd.DataFrame(records, columns=RAW_COLUMNS))
    for source in sources:
        commit = getattr(source, "commit", None)
        if commit is not None:
            commit(day)
    log.info("collected %d records for %s from %d sources", len(records), day, len(sources))
    return len(records)


def validate_raw(store: storage.Store, day: dt.date, settings: Settings) -> dict[str, int]:
    """Parse the raw partition, run the raw_posts suite and split valid from quarantined."""
    raw = storage.read_frame(store, RAW, day)
    posts = parse_posts(raw, day)
    report = validate_frame(
        posts.drop(columns=["extra"]), "raw_posts",
        {"max_post_chars": settings.collect.max_post_chars},
    )
    save_validation(store, day, report)
    report.raise_for_critical_table_checks()

    failures = report.failures_by_row()
    quarantined = [_quarantine_entry(posts.iloc[row], raw.iloc[row], fails, settings)
                   for row, fails in sorted(failures.items())]
    for entry in quarantined:
        log.warning("quarantined: %s", entry["reason"])
    valid = posts.drop(index=list(failures)).drop(columns=["parse_error"])
    storage.write_frame(store, VALID, day, valid)
    storage.write_frame(store, QUARANTINE, day, pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS))
    return {"valid": len(valid), "quarantined": len(quarantined)}


def _quarantine_entry(
    post: pd.Series, raw: pd.Series, failures: list[ExpectationFailure], settings: Settings
) -> dict[str, Any]:
    parse_failures = [f for f in failures if f.column == "parse_error"]
    failures = parse_failures or failures  # an unparsed record has no fields to blame
    first = failures[0]
    field = first.meta.get("field", first.column or "record")
    detail = _failure_detail(post, field, settings)
    reasons = "; ".join(f.meta.get("reason", f.expectation) for f in failures)
    reason = f"{post['source']} line {post['line']}, field '{field}': {reasons}{detail}"
    return {
        "source": post["source"], "line": int(post["line"]), "id": post["id"],
        "field": field, "reason": reason, "fix": first.meta.get("fix", ""),
        "expectation": ",".join(f.expectation for f in failures), "raw": raw["raw"],
    }


def _failure_detail(post: pd.Series, field: str, settings: Settings) -> str:
    if field == "record" and post["parse_error"]:
        return f" ({post['parse_error']})"
    if field == "text" and isinstance(post["text"], str) and post["text"].strip():
        return f" ({len(post['text'])} characters, limit {settings.collect.max_post_chars})"
    if field == "created_at":
        return f" (value {post['created_at']!r})"
    return ""


def clean_posts(store: storage.Store, day: dt.date, settings: Settings) -> dict[str, int]:
    """Normalise and mask valid posts, then move duplicates aside and write clean posts.

    Duplicates are searched within the day and in the clean posts of the previous
    ``collect.dedup_days`` days.
    """
    valid = storage.read_frame(store, VALID, day)
    cleaned = valid.assign(text=valid["text"].map(normalize_text))
    cleaned["lang"] = [lang if isinstance(lang, str) and lang else identify_language(text)
                       for lang, text in zip(cleaned["lang"], cleaned["text"])]
    cleaned["author"] = cleaned["author"].map(_pseudonymize)
    cleaned = cleaned.sort_values(["created_at", "source", "line"], kind="stable")

    index = DuplicateIndex(threshold=settings.collect.near_duplicate_threshold)
    history = load_history(store, day, settings.collect.dedup_days, index)
    duplicates, clean = split_duplicates(cleaned, index)
    clean = clean[CLEAN_COLUMNS]
    log.info("%s: %d clean, %d duplicates (checked against %d earlier posts)",
             day, len(clean), len(duplicates), history)

    report = validate_frame(clean.drop(columns=["minhash"]), "clean_posts")
    save_validation(store, day, report)
    report.raise_for_critical()
    storage.write_frame(store, DUPLICATES, day, duplicates)
    storage.write_frame(store, CLEAN, day, clean)
    return {"clean": len(clean), "duplicates": len(duplicates)}


def load_history(store: storage.Store, day: dt.date, days: int, index: DuplicateIndex) -> int:
    """Add the clean posts of the ``days`` days before ``day`` to ``index``; return the count."""
    count = 0
    for earlier in storage.list_partitions(store, CLEAN):
        if not day - dt.timedelta(days=days) <= earlier < day:
            continue
        frame = storage.read_frame(store, CLEAN, earlier)
        if "minhash" in frame:
            signatures = frame["minhash"].map(lambda values: np.asarray(values, dtype=np.uint32))
        else:
            signatures = frame["text"].map(index.sketch)
        for post_id, text, signature in zip(frame["id"], frame["text"], signatures):
            index.add(post_id, text, signature)
        count += len(frame)
    return count


def split_duplicates(
    posts: pd.DataFrame, index: DuplicateIndex | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``posts`` (sorted, first occurrence wins) into duplicates and originals.

    A post is a duplicate when its id was seen earlier that day, or when ``index`` finds an
    earlier post with the same text (retweet prefix, case and white space ignored) or a
    near-identical one. Duplicates get ``duplicate_of`` and ``duplicate_reason``; originals
    get their ``minhash`` signature and are added to the index.
    """
    index = index or DuplicateIndex()
    seen_ids: set[str] = set()
    duplicate_of, reasons, signatures = [], [], []
    for post_id, text in zip(posts["id"], posts["text"]):
        signature = None
        if post_id in seen_ids:
            match = (post_id, "id already used by an earlier post")
        else:
            match = index.find_exact(text)
            if match is None:
                signature = index.sketch(text)
                match = index.find(text, signature)
        if match is None:
            index.add(post_id, text, signature)
            seen_ids.add(post_id)
            match = ("", "")
        duplicate_of.append(match[0])
        reasons.append(match[1])
        signatures.append(signature)

    marked = posts.assign(duplicate_of=duplicate_of, duplicate_reason=reasons, minhash=signatures)
    is_duplicate = marked["duplicate_of"] != ""
    return marked[is_duplicate].drop(columns=["minhash"]), marked[~is_duplicate]


def _pseudonymize(author: Any) -> str | None:
    """Replace an author name with a stable pseudonym, so no handle is stored past raw."""
    if author is None or pd.isna(author):
        return None
    import hashlib

    return "author-" + hashlib.sha256(str(author).encode()).hexdigest()[:12]


def write_manifest(store: storage.Store, day: dt.date, source_name: str) -> dict[str, Any]:
    """Count every dataset of the day, check that the counts add up and store the manifest."""
    counts = {
        "collected": len(storage.read_frame(store, RAW, day)),
        "clean": len(storage.read_frame(store, CLEAN, day)),
        "duplicates": len(storage.read_frame(store, DUPLICATES, day)),
        "quarantined": len(storage.read_frame(store, QUARANTINE, day)),
    }
    manifest = {"date": day.isoformat(), "source": source_name, **counts,
                "failed_expectations": failed_expectations(store, day, ("raw_posts", "clean_posts")),
                "partitions": {name: store.uri(storage.partition_key(name, day))
                               for name in (RAW, CLEAN, DUPLICATES, QUARANTINE)}}
    storage.write_json(store, storage.partition_key(MANIFESTS, day, "collect.json"), manifest)
    total = counts["clean"] + counts["duplicates"] + counts["quarantined"]
    if total != counts["collected"]:
        raise CountMismatchError(
            f"{day}: collected {counts['collected']} records but clean + duplicates + "
            f"quarantined = {total}; inspect the partitions listed in the manifest"
        )
    log.info("manifest for %s: %s", day, counts)
    return manifest


def failed_expectations(store: storage.Store, day: dt.date, suites: tuple[str, ...]) -> dict[str, list[str]]:
    """Return, per suite, the expectations that failed on the day's data (any severity).

    Row-level failures in raw_posts are the quarantined records; failures in clean_posts
    can only be warnings, because a critical one stops the run.
    """
    failed: dict[str, list[str]] = {}
    for suite in suites:
        key = storage.partition_key(VALIDATIONS, day, f"{suite}.json")
        if not store.exists(key):
            continue
        summary = storage.read_json(store, key)
        failed[suite] = [
            f"{item['expectation_type']}({item['kwargs'].get('column', '')}): "
            f"{item['result'].get('unexpected_count', 0)} rows"
            for item in summary.get("expectations", []) if not item.get("success")
        ]
    return failed

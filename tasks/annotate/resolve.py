"""Turn one batch of annotations into labels: agreement, majority votes and ties.

A batch is one import run, that is every file imported for one day. When an annotator
labeled a post more than once in a batch, their latest annotation counts. Posts whose
vote ends in a tie go to review and get no label from this batch.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.annotate.agreement import Resolution, batch_agreement, resolve_by_majority, resolve_spans
from tasks.annotate.formats import ENTITIES, SENTIMENT
from tasks.extract.conll import OUTSIDE
from tasks.extract.spans import tokenize_text

log = logging.getLogger(__name__)

RESOLVED_COLUMNS = ["label_id", "post_id", "text", "label", "status", "votes", "annotator",
                 "annotated_at", "batch", "source_file", "line"]
ENTITY_COLUMNS = [column if column != "label" else "spans" for column in RESOLVED_COLUMNS]
REVIEW_COLUMNS = ["task", "label_id", "post_id", "text", "votes", "annotator", "annotated_at",
                  "batch", "source_file", "line"]


@dataclass
class BatchResult:
    """The resolved labels, entity labels and ties of a batch, with its agreement report."""

    labels: pd.DataFrame
    entity_labels: pd.DataFrame
    review: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def resolve_batch(annotations: pd.DataFrame, batch: str) -> BatchResult:
    """Resolve the valid ``annotations`` of ``batch`` by majority and measure agreement.

    ``annotations`` has one row per annotation, with ``label_id``, ``task``, ``annotator``,
    ``label`` (sentiment) or ``spans`` (entities, lists of [start, end, type]).
    """
    latest = _latest_per_annotator(annotations)
    labels, review_sentiment, sentiment = _resolve_task(latest, SENTIMENT, batch)
    entity_labels, review_entities, entities = _resolve_task(latest, ENTITIES, batch)
    review = pd.DataFrame([*review_sentiment, *review_entities], columns=REVIEW_COLUMNS)
    report = {"batch": batch, "tasks": {SENTIMENT: sentiment, ENTITIES: entities}}
    return BatchResult(pd.DataFrame(labels, columns=RESOLVED_COLUMNS),
                       pd.DataFrame(entity_labels, columns=ENTITY_COLUMNS), review, report)


def _latest_per_annotator(annotations: pd.DataFrame) -> pd.DataFrame:
    if annotations.empty:
        return annotations
    ordered = annotations.assign(_order=range(len(annotations)))
    ordered = ordered.sort_values(["annotated_at", "_order"], na_position="first", kind="stable")
    latest = ordered.drop_duplicates(subset=["task", "label_id", "annotator"], keep="last")
    return latest.sort_values("_order").drop(columns="_order")


def _resolve_task(latest: pd.DataFrame, task: str,
                  batch: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    rows = latest[latest["task"] == task] if not latest.empty else latest
    resolved, review, statuses = [], [], Counter()
    for _, item in (rows.groupby("label_id", sort=False) if not rows.empty else []):
        outcome = _vote(item, task)
        statuses[outcome.status] += 1
        record = _item_record(item, outcome, batch)
        if outcome.status == "tie":
            review.append({"task": task, **record})
            continue
        value_column = "spans" if task == ENTITIES else "label"
        resolved.append({**record, value_column: _stored_value(outcome.value, task),
                         "status": outcome.status})

    report = batch_agreement(_ratings(rows, task))
    report.update(items=int(sum(statuses.values())), labels=len(resolved), ties=len(review),
                  statuses=dict(sorted(statuses.items())))
    if len(rows):
        agreement = "one annotator per item, no agreement measured" \
            if report["kappa"] is None else f"{report['statistic']} {report['kappa']:.3f}"
        log.info("batch %s, %s: %d items, %d labels, %d ties, %s", batch, task,
                 report["items"], len(resolved), len(review), agreement)
    return resolved, review, report


def _vote(item: pd.DataFrame, task: str) -> Resolution:
    if task == ENTITIES:
        return resolve_spans({annotator: [tuple(span) for span in spans]
                              for annotator, spans in zip(item["annotator"], item["spans"])})
    return resolve_by_majority(dict(zip(item["annotator"], item["label"])))


def _item_record(item: pd.DataFrame, outcome: Resolution, batch: str) -> dict[str, Any]:
    first = item.iloc[0]
    times = [time for time in item["annotated_at"] if isinstance(time, str)]
    return {"label_id": first["label_id"], "post_id": first["post_id"], "text": first["text"],
            "votes": json.dumps(outcome.votes, ensure_ascii=False, sort_keys=True),
            "annotator": ",".join(sorted(item["annotator"])),
            "annotated_at": max(times) if times else None, "batch": batch,
            "source_file": ",".join(dict.fromkeys(item["source_file"])),
            "line": int(first["line"])}


def _stored_value(value: Any, task: str) -> Any:
    return json.dumps(value, ensure_ascii=False) if task == ENTITIES else value


def _ratings(rows: pd.DataFrame, task: str) -> pd.DataFrame:
    """Return (unit, annotator, value) ratings: posts for sentiment, tokens for entities."""
    if rows.empty:
        return pd.DataFrame(columns=["unit", "annotator", "value"])
    if task != ENTITIES:
        return pd.DataFrame({"unit": rows["label_id"], "annotator": rows["annotator"],
                             "value": rows["label"]})
    records = []
    for label, item in rows.groupby("label_id", sort=False):
        if item["annotator"].nunique() < 2:
            continue
        for annotator, tags in token_tags(item["text"].iloc[0], item["spans"],
                                          item["annotator"]).items():
            records.extend({"unit": f"{label}#{index}", "annotator": annotator, "value": tag}
                           for index, tag in enumerate(tags))
    return pd.DataFrame(records, columns=["unit", "annotator", "value"])


def token_tags(text: str, spans_by_annotator: Sequence[Sequence[Sequence[Any]]],
               annotators: Sequence[str]) -> dict[str, list[str]]:
    """Tag the same tokens of ``text`` with each annotator's spans, for token-level agreement.

    The tokens are cut at every annotator's span boundaries, so all annotators are
    compared on one token sequence.
    NOTE: tokens outside every span count as agreement on O, which raises kappa for
    posts with few entities.
    """
    cuts = [offset for spans in spans_by_annotator for span in spans for offset in span[:2]]
    tokens = tokenize_text(text, cuts)
    tagged = {}
    for annotator, spans in zip(annotators, spans_by_annotator):
        tags = [OUTSIDE] * len(tokens)
        for start, end, kind in spans:
            inside = [i for i, token in enumerate(tokens) if start <= token.start < end]
            for position, index in enumerate(inside):
                tags[index] = f"{'B' if position == 0 else 'I'}-{kind}"
        tagged[annotator] = tags
    return tagged

"""Inter-annotator agreement and majority resolution for one batch of imported labels.

Agreement is Cohen's kappa when a batch has exactly two annotators, and Fleiss' kappa when
it has more. Both take ratings as a table of (unit, annotator, value) rows. A unit is a
post for classification and a token of a post for entity spans.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

log = logging.getLogger(__name__)

COHEN = "cohen_kappa"
FLEISS = "fleiss_kappa"


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Return Fleiss' kappa of a units x categories table of rating counts.

    Every row must sum to the same number of ratings, at least 2. Returns None when the
    chance agreement is 1 (every rating falls in one category), where kappa is undefined.
    Raises ValueError on rows with different sums.
    """
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    if counts.ndim != 2 or len(counts) == 0 or not np.all(raters == raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs a non-empty table whose rows all sum to the same "
                         f"number of ratings (at least 2), got row sums {raters.tolist()}")
    n = raters[0]
    per_unit = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    observed = per_unit.mean()
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares**2).sum())
    if math.isclose(expected, 1.0):
        return None
    return float((observed - expected) / (1 - expected))


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Return Cohen's kappa of two annotators' values for the same units, or None if undefined."""
    if len(set(first) | set(second)) < 2:
        return None  # both used one and the same value throughout: chance agreement is 1
    return float(cohen_kappa_score(list(first), list(second)))


def batch_agreement(ratings: pd.DataFrame) -> dict[str, Any]:
    """Measure agreement over the units that two or more annotators rated.

    ``ratings`` has the columns unit, annotator and value, one row per annotator and unit.
    With two annotators the statistic is Cohen's kappa over the units both rated. With more,
    it is Fleiss' kappa over the units rated by the most common number of annotators, so
    units with another count are left out of it (``units_used`` counts the units kept).
    """
    annotators = sorted(ratings["annotator"].unique()) if len(ratings) else []
    per_unit = ratings.groupby("unit")["annotator"].nunique() if len(ratings) else pd.Series()
    shared = per_unit[per_unit >= 2]
    report: dict[str, Any] = {"annotators": annotators, "units": len(per_unit),
                              "units_shared": len(shared), "statistic": None,
                              "kappa": None, "units_used": 0}
    if shared.empty:
        return report

    if len(annotators) == 2:
        table = ratings.pivot(index="unit", columns="annotator", values="value").dropna()
        report.update(statistic=COHEN, units_used=len(table),
                      kappa=cohen_kappa(table[annotators[0]], table[annotators[1]]))
    else:
        count = int(shared.mode().min())
        units = shared.index[shared == count]
        chosen = ratings[ratings["unit"].isin(units)]
        counts = pd.crosstab(chosen["unit"], chosen["value"]).to_numpy()
        report.update(statistic=FLEISS, units_used=len(units), kappa=fleiss_kappa(counts))
    if report["kappa"] is None:
        log.info("kappa is undefined for %d units: every rating has the same value",
                 report["units_used"])
    return report


@dataclass(frozen=True)
class Resolution:
    """The outcome of voting on one item: the winning value, or None for a tie."""

    value: Any | None
    status: str  # "single", "unanimous", "majority" or "tie"
    votes: dict[str, list[str]]  # value (as text) -> annotators who chose it


def resolve_by_majority(votes: Mapping[str, Any]) -> Resolution:
    """Pick the value that most annotators chose. Equal top counts make a tie.

    ``votes`` maps each annotator to their value. The value must be hashable.
    """
    tally = Counter(votes.values())
    ranked = tally.most_common()
    by_value: dict[str, list[str]] = {}
    for annotator, value in sorted(votes.items()):
        by_value.setdefault(str(value), []).append(annotator)

    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return Resolution(None, "tie", by_value)
    if len(votes) == 1:
        status = "single"
    else:
        status = "unanimous" if len(ranked) == 1 else "majority"
    return Resolution(ranked[0][0], status, by_value)


def resolve_spans(votes: Mapping[str, Sequence[tuple[int, int, str]]]) -> Resolution:
    """Keep each span that more than half of the annotators marked.

    ``votes`` maps each annotator to their spans as (start, end, type). A span marked by
    exactly half of them is a tie, and the whole item goes to review. The value is the
    sorted list of kept spans.
    """
    total = len(votes)
    tally = Counter(span for spans in votes.values() for span in set(map(tuple, spans)))
    by_span: dict[str, list[str]] = {}
    for annotator, spans in sorted(votes.items()):
        for span in sorted(set(map(tuple, spans))):
            by_span.setdefault(f"{span[0]}-{span[1]}:{span[2]}", []).append(annotator)

    if any(2 * count == total for count in tally.values()) and total > 1:
        return Resolution(None, "tie", by_span)
    kept = sorted(span for span, count in tally.items() if 2 * count > total)
    if total == 1:
        status = "single"
    else:
        status = "unanimous" if all(count == total for count in tally.values()) else "majority"
    return Resolution([list(span) for span in kept], status, by_span)

"""Ranking metrics for retrieval and the held-out evaluation set they are computed on.

Relevance is binary. In groups mode a query is a validation post and its relevant posts
are the other posts of its group. Relevant sets are then often far larger than k, so
recall@k divides by min(k, number relevant), the capped recall R_cap@k of BEIR
(beir/retrieval/custom_metrics.py). A perfect ranking scores 1 at every k, and with more
than k relevant posts the value equals precision@k. MRR looks at the whole ranking.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.retrieve.data import PAIRS_MODE
from tasks.retrieve.encoder import Encoder

log = logging.getLogger(__name__)

RECALL_KS = (1, 5, 10)
NDCG_K = 10


def recall_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Return the relevant share of the top ``k``, out of min(k, number relevant)."""
    _check_query(relevant, k)
    hits = sum(1 for item in ranked[:k] if item in relevant)
    return hits / min(k, len(relevant))


def reciprocal_rank(ranked: Sequence[int], relevant: Collection[int]) -> float:
    """Return 1 / rank of the first relevant item, or 0 when none is ranked."""
    _check_query(relevant, 1)
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[int], relevant: Collection[int], k: int = NDCG_K) -> float:
    """Return nDCG@k with binary gains and the log2(rank + 1) discount."""
    _check_query(relevant, k)
    gains = sum(1.0 / math.log2(rank + 1)
                for rank, item in enumerate(ranked[:k], start=1) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return gains / ideal


def _check_query(relevant: Collection[int], k: int) -> None:
    if k < 1:
        raise ValueError(f"invalid cutoff k={k}: must be at least 1")
    if not relevant:
        raise ValueError("query has no relevant items: leave it out of the evaluation")


def mean_retrieval_metrics(rankings: Sequence[Sequence[int]],
                           relevant_sets: Sequence[Collection[int]]) -> dict[str, float]:
    """Average recall@1/5/10, MRR and nDCG@10 over queries (keys ``recall_at_1``, …)."""
    if len(rankings) != len(relevant_sets):
        raise ValueError(f"{len(rankings)} rankings for {len(relevant_sets)} relevant sets")
    if not rankings:
        raise ValueError("no queries to evaluate")
    sums = dict.fromkeys([f"recall_at_{k}" for k in RECALL_KS] + ["mrr", f"ndcg_at_{NDCG_K}"], 0.0)
    for ranked, relevant in zip(rankings, relevant_sets):
        for k in RECALL_KS:
            sums[f"recall_at_{k}"] += recall_at_k(ranked, relevant, k)
        sums["mrr"] += reciprocal_rank(ranked, relevant)
        sums[f"ndcg_at_{NDCG_K}"] += ndcg_at_k(ranked, relevant, NDCG_K)
    return {name: total / len(rankings) for name, total in sums.items()}


@dataclass
class EvaluationSet:
    """Queries, the corpus they search, and each query's relevant corpus positions.

    When ``query_positions`` is set, query i is corpus post ``query_positions[i]``, and that
    post is left out of its own ranking.
    """

    queries: list[str]
    corpus: list[str]
    relevant: list[set[int]]
    query_positions: list[int] | None = None


def build_evaluation_set(frame: pd.DataFrame, mode: str, queries_per_group: int,
                         seed: int) -> EvaluationSet:
    """Build the evaluation set from held-out posts (columns ``text`` and ``group``).

    In groups mode up to ``queries_per_group`` posts of each group (a seeded sample, 0 for
    all) are queries over every held-out post. In pairs mode each distinct query searches
    the held-out posts, and the posts paired with it are relevant.
    """
    frame = frame.reset_index(drop=True)
    if mode == PAIRS_MODE:
        return _pairs_evaluation_set(frame)
    generator = np.random.default_rng(seed)
    members = frame.groupby("group", sort=True).indices
    queries, relevant, positions = [], [], []
    for group_positions in members.values():
        group = {int(position) for position in group_positions}
        chosen = sorted(group)
        if queries_per_group and len(chosen) > queries_per_group:
            chosen = sorted(generator.choice(chosen, size=queries_per_group, replace=False))
        for position in chosen:
            others = group - {int(position)}
            if others:
                queries.append(frame.at[position, "text"])
                relevant.append(others)
                positions.append(int(position))
    return EvaluationSet(queries, list(frame["text"]), relevant, positions)


def _pairs_evaluation_set(frame: pd.DataFrame) -> EvaluationSet:
    corpus = list(dict.fromkeys(frame["text"]))
    position_of = {text: position for position, text in enumerate(corpus)}
    queries, relevant = [], []
    for query, posts in frame.groupby("group", sort=True):
        queries.append(str(query))
        relevant.append({position_of[text] for text in posts["text"]})
    return EvaluationSet(queries, corpus, relevant)


def evaluate_encoder(encoder: Encoder, evaluation: EvaluationSet) -> dict[str, float]:
    """Embed queries and corpus with ``encoder``, rank by inner product and average the metrics.

    NOTE: every query ranks the whole corpus (a dense Q x N score matrix), which suits
    held-out sets of a few thousand posts, not whole days of posts.
    """
    corpus = encoder.encode(evaluation.corpus)
    if evaluation.query_positions is not None:
        queries = corpus[evaluation.query_positions]
    else:
        queries = encoder.encode(evaluation.queries)
    scores = queries @ corpus.T
    if evaluation.query_positions is not None:
        scores[np.arange(len(queries)), evaluation.query_positions] = -np.inf
    rankings = np.argsort(-scores, axis=1, kind="stable")
    if evaluation.query_positions is not None:
        rankings = rankings[:, :-1]  # the query itself, scored -inf, ranks last
    return mean_retrieval_metrics(list(rankings), evaluation.relevant)


def plot_recall_at_k(tuned: dict[str, float], base: dict[str, float], title: str = "") -> Any:
    """Return a matplotlib figure of recall@k for the tuned and the base model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 4))
    for label, metrics, marker in (("fine-tuned", tuned, "o"), ("base", base, "s")):
        values = [metrics[f"recall_at_{k}"] for k in RECALL_KS]
        axes.plot(RECALL_KS, values, marker=marker, label=label)
        for k, value in zip(RECALL_KS, values):
            axes.annotate(f"{value:.3f}", (k, value), textcoords="offset points", xytext=(0, 6),
                          ha="center", fontsize=8)
    axes.set_xticks(RECALL_KS)
    axes.set_xlabel("k")
    axes.set_ylabel("recall@k (capped)")
    axes.set_ylim(0, 1.05)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(title or "validation recall@k")
    figure.tight_layout()
    return figure

"""Choose the clean posts that go to annotators, within a daily budget.

Strategies:

- ``random``: a seeded uniform sample.
- ``uncertainty``: the posts the champion classifier is least certain about, by normalized
  entropy or by margin of its class probabilities (:func:`uncertainty_scores`).
- ``active``: uncertainty and diversity. The ``pool_factor * budget`` most uncertain
  posts are embedded and clustered with k-means into ``budget`` clusters. The clusters
  are then visited round-robin, the cluster with the most uncertain post first, and
  each visit takes that cluster's most uncertain remaining post. Near-identical
  uncertain posts thus cost one label instead of many.

A strategy other than ``random`` needs the champion's probabilities. Without them the
choice is random, and the fallback is logged.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tasks.annotate.preannotate import Champion
    from tasks.settings import Settings

log = logging.getLogger(__name__)

RANDOM, UNCERTAINTY, ACTIVE = "random", "uncertainty", "active"
STRATEGIES = (RANDOM, UNCERTAINTY, ACTIVE)
# Recorded instead of a strategy when the budget covers every candidate, so nothing was chosen.
ALL = "all"
ENTROPY, MARGIN = "entropy", "margin"
MEASURES = (ENTROPY, MARGIN)
SELECTED_BY, UNCERTAINTY_SCORE = "selected_by", "uncertainty"

# Maps texts to an array of shape (len(texts), dimension), e.g. Encoder.encode.
Embed = Callable[[Sequence[str]], np.ndarray]


def entropy_scores(probabilities: np.ndarray) -> np.ndarray:
    """Return each row's entropy divided by log(classes): 0 for one certain class, 1 for uniform."""
    probabilities = _check_probabilities(probabilities)
    logs = np.log(probabilities, where=probabilities > 0, out=np.zeros_like(probabilities))
    return -(probabilities * logs).sum(axis=1) / np.log(probabilities.shape[1])


def margin_scores(probabilities: np.ndarray) -> np.ndarray:
    """Return 1 minus the gap between each row's two highest probabilities (1 for a tie)."""
    probabilities = _check_probabilities(probabilities)
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    return 1.0 - (top_two[:, 1] - top_two[:, 0])


def uncertainty_scores(probabilities: np.ndarray, measure: str = ENTROPY) -> np.ndarray:
    """Return one uncertainty score per row of ``probabilities``, higher for less certain rows.

    Raises ValueError for a ``measure`` other than 'entropy' or 'margin'.
    """
    if measure == ENTROPY:
        return entropy_scores(probabilities)
    if measure == MARGIN:
        return margin_scores(probabilities)
    raise ValueError(f"unknown uncertainty measure {measure!r}: use one of {list(MEASURES)}")


def _check_probabilities(probabilities: np.ndarray) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"expected probabilities of shape (posts, classes >= 2), got "
                         f"{probabilities.shape}")
    return probabilities


def rank_by_uncertainty(scores: np.ndarray) -> np.ndarray:
    """Return the positions of ``scores``, most uncertain first, ties in their original order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def sample_random(count: int, budget: int, seed: int) -> np.ndarray:
    """Return ``min(budget, count)`` distinct positions out of ``count``, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.choice(count, size=min(budget, count), replace=False)


def pick_uncertain(scores: np.ndarray, budget: int) -> np.ndarray:
    """Return the positions of the ``budget`` highest ``scores``, highest first."""
    return rank_by_uncertainty(scores)[:budget]


def pick_diverse(scores: np.ndarray, embeddings: np.ndarray, budget: int,
                 seed: int = 0) -> np.ndarray:
    """Return ``budget`` positions spread over k-means clusters of ``embeddings``.

    The clusters number ``budget``, or fewer when there are fewer distinct embeddings.
    They are visited round-robin, the one with the most uncertain post first, and each
    visit takes the most uncertain post of that cluster not yet taken.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if len(embeddings) != len(scores):
        raise ValueError(f"got {len(embeddings)} embeddings for {len(scores)} scores")
    budget = min(budget, len(scores))
    clusters = cluster_embeddings(embeddings, budget, seed)

    queues: dict[int, list[int]] = {}
    for position in rank_by_uncertainty(scores):
        queues.setdefault(int(clusters[position]), []).append(int(position))

    chosen: list[int] = []
    while len(chosen) < budget:
        for queue in queues.values():
            if queue and len(chosen) < budget:
                chosen.append(queue.pop(0))
    return np.asarray(chosen, dtype=np.int64)


def cluster_embeddings(embeddings: np.ndarray, clusters: int, seed: int = 0) -> np.ndarray:
    """Return a k-means cluster number per row, with at most as many clusters as distinct rows."""
    from sklearn.cluster import KMeans

    clusters = min(clusters, len(np.unique(embeddings, axis=0)))
    if clusters <= 1:
        return np.zeros(len(embeddings), dtype=np.int64)
    with warnings.catch_warnings():
        # Rows that are close but not equal can still collapse into fewer clusters.
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        model = KMeans(n_clusters=clusters, n_init=3, random_state=seed)
        return model.fit_predict(embeddings)


def select_posts(
    posts: pd.DataFrame, budget: int, strategy: str = ACTIVE, *,
    probabilities: np.ndarray | None = None, embed: Embed | None = None,
    measure: str = ENTROPY, pool_factor: int = 5, seed: int = 0,
) -> pd.DataFrame:
    """Return up to ``budget`` rows of ``posts`` chosen by ``strategy``, in the order chosen.

    ``probabilities`` contains the champion's class probabilities, one row per post. Without
    them every strategy falls back to random. ``embed`` (strategy 'active') embeds the
    text of the uncertain pool only; without it 'active' falls back to 'uncertainty'.
    The result has two more columns: ``selected_by``, the strategy that chose the row
    ('all' when the budget covers every post), and ``uncertainty``, its score under
    ``measure`` (None without probabilities).

    Raises ValueError for an unknown strategy or measure, a negative budget, a pool
    factor below 1, or probabilities whose row count differs from the posts'.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}: use one of {list(STRATEGIES)}")
    if measure not in MEASURES:
        raise ValueError(f"unknown uncertainty measure {measure!r}: use one of {list(MEASURES)}")
    if budget < 0 or pool_factor < 1:
        raise ValueError(f"budget must be 0 or more and pool_factor 1 or more, got budget "
                         f"{budget} and pool_factor {pool_factor}")
    scores = None
    if probabilities is not None:
        if len(probabilities) != len(posts):
            raise ValueError(f"got {len(probabilities)} probability rows for {len(posts)} posts")
        scores = uncertainty_scores(probabilities, measure)

    positions, used = _choose(posts, budget, strategy, scores, embed, pool_factor, seed)
    chosen = posts.iloc[positions].copy()
    chosen[SELECTED_BY] = used
    chosen[UNCERTAINTY_SCORE] = scores[positions] if scores is not None else None
    log.info("selected %d of %d posts by %s (requested %s, budget %d)", len(chosen),
             len(posts), used, strategy, budget)
    return chosen


def _choose(posts: pd.DataFrame, budget: int, strategy: str, scores: np.ndarray | None,
            embed: Embed | None, pool_factor: int, seed: int) -> tuple[np.ndarray, str]:
    """Return the chosen positions and the name of the strategy that chose them."""
    if budget >= len(posts):
        return np.arange(len(posts)), ALL
    if strategy == RANDOM:
        return sample_random(len(posts), budget, seed), RANDOM
    if scores is None:
        log.info("no champion classifier probabilities: choosing %d posts at random instead "
                 "of by %s", budget, strategy)
        return sample_random(len(posts), budget, seed), RANDOM
    if strategy == UNCERTAINTY:
        return pick_uncertain(scores, budget), UNCERTAINTY
    if embed is None:
        log.info("no text encoder for active selection: choosing %d posts by uncertainty only",
                 budget)
        return pick_uncertain(scores, budget), UNCERTAINTY

    pool = pick_uncertain(scores, min(len(posts), budget * pool_factor))
    embeddings = embed([str(text) for text in posts["text"].iloc[pool]])
    return pool[pick_diverse(scores[pool], embeddings, budget, seed)], ACTIVE


def champion_probabilities(champion: Champion, texts: Sequence[str],
                           labels: Sequence[str]) -> np.ndarray:
    """Return the champion's probability of each of ``labels`` for each text.

    Raises ValueError when the model outputs no ``prob_<label>`` column for a label.
    """
    if not texts:
        return np.zeros((0, len(labels)))
    output = champion.model.predict(pd.DataFrame({"text": list(texts)}))
    columns = [f"prob_{label}" for label in labels]
    missing = [column for column in columns if column not in output.columns]
    if missing:
        raise ValueError(f"champion {champion.model_version} outputs no {missing} columns "
                         f"(it has {list(output.columns)}): train it on the labels {list(labels)}")
    return output[columns].to_numpy(dtype=np.float64)


def serving_embed(settings: Settings) -> Embed:
    """Return an Embed that loads the retrieval champion (else the base model) on first use.

    The model loads only when a selection needs embeddings, so a random or uncertainty
    export never pays for it.
    """
    loaded = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not loaded:
            from tasks.retrieve.commands import load_serving_encoder

            loaded.append(load_serving_encoder(settings))
        return loaded[0].encode(texts)

    return embed

"""Ranking metrics, the group split, training pairs, batching and the evaluation set."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tasks.retrieve.data import (
    GROUPS_MODE,
    PAIRS_MODE,
    build_training_pairs,
    prepare_frame,
    split_by_group,
)
from tasks.retrieve.evaluate import (
    EvaluationSet,
    build_evaluation_set,
    evaluate_encoder,
    mean_retrieval_metrics,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)
from tasks.retrieve.sampler import DistinctGroupBatchSampler, count_batches

# Ranking used by the hand-computed cases: relevant items 1 and 5 sit at ranks 2 and 4,
# and relevant item 7 is not ranked at all.
RANKED = [3, 1, 4, 5, 9]
RELEVANT = {1, 5, 7}


def test_recall_at_k_hand_computed():
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 2)
    assert recall_at_k(RANKED, RELEVANT, 4) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, RELEVANT, 10) == pytest.approx(2 / 3)


def test_recall_caps_denominator_at_k():
    # 20 relevant items, 4 of them in the top 5: the denominator is min(5, 20) = 5.
    relevant = set(range(100, 120))
    ranked = [100, 1, 101, 102, 103, 104]
    assert recall_at_k(ranked, relevant, 5) == pytest.approx(4 / 5)
    assert recall_at_k(ranked, relevant, 1) == 1.0


def test_reciprocal_rank_hand_computed():
    assert reciprocal_rank(RANKED, RELEVANT) == pytest.approx(1 / 2)
    assert reciprocal_rank([5, 3], RELEVANT) == 1.0
    assert reciprocal_rank([3, 4, 9], RELEVANT) == 0.0


def test_ndcg_hand_computed():
    # Hits at ranks 2 and 4; the ideal ranking puts the 3 relevant items at ranks 1-3.
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKED, RELEVANT, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(RANKED, RELEVANT, 10) == pytest.approx(0.49818, abs=1e-5)
    assert ndcg_at_k(RANKED, RELEVANT, 1) == 0.0
    assert ndcg_at_k([1, 5, 7, 3], RELEVANT, 10) == pytest.approx(1.0)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="no relevant"):
        recall_at_k(RANKED, set(), 5)
    with pytest.raises(ValueError, match="k=0"):
        ndcg_at_k(RANKED, RELEVANT, 0)
    with pytest.raises(ValueError, match="2 rankings for 1"):
        mean_retrieval_metrics([RANKED, RANKED], [RELEVANT])


def test_mean_metrics_average_queries():
    metrics = mean_retrieval_metrics([RANKED, [1, 5, 7]], [RELEVANT, RELEVANT])
    assert metrics["recall_at_1"] == pytest.approx(0.5)
    assert metrics["recall_at_5"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["mrr"] == pytest.approx((0.5 + 1) / 2)
    assert metrics["ndcg_at_10"] == pytest.approx((0.49818 + 1) / 2, abs=1e-5)
    assert set(metrics) == {"recall_at_1", "recall_at_5", "recall_at_10", "mrr", "ndcg_at_10"}


def _grouped(groups: int, posts: int) -> pd.DataFrame:
    return pd.DataFrame([{"text": f"post {p} of event {g}", "group": f"event-{g:02d}"}
                         for g in range(groups) for p in range(posts)])


def test_split_by_group_is_disjoint():
    train, validation = split_by_group(_grouped(20, 3), 30)
    assert validation["group"].nunique() == 6
    assert train["group"].nunique() == 14
    assert not set(train["group"]) & set(validation["group"])
    assert len(train) + len(validation) == 60


def test_split_ignores_row_order():
    frame = _grouped(10, 2)
    _, first = split_by_group(frame, 30)
    _, second = split_by_group(frame.iloc[::-1], 30)
    assert set(first["group"]) == set(second["group"])


def test_split_needs_four_groups():
    with pytest.raises(ValueError, match="3 groups found"):
        split_by_group(_grouped(3, 5), 30)


def test_prepare_frame_drops_repeats_and_empties():
    frame = prepare_frame(
        pd.Series(["Flood in town http://x.co", "RT @a: Flood in town http://y.co", "", None,
                   "ok"]),
        pd.Series(["e1", "e2", "e1", "e1", None]), GROUPS_MODE,
    )
    assert list(frame["text"]) == ["Flood in town http"]
    assert list(frame["group"]) == ["e1"]


def test_training_pairs_stay_in_group():
    frame = _grouped(3, 4)
    frame.loc[len(frame)] = {"text": "only post", "group": "lonely"}
    pairs = build_training_pairs(frame, GROUPS_MODE, seed=1)
    group_of = dict(zip(frame["text"], frame["group"]))
    assert len(pairs) == 12
    assert all(group_of[a] == group_of[p] == g for a, p, g in pairs.itertuples(index=False))
    assert (pairs["anchor"] != pairs["positive"]).all()
    assert sorted(pairs["anchor"]) == sorted(frame["text"][:12])


def test_query_pairs_become_training_pairs():
    frame = pd.DataFrame({"text": ["a post", "b post"], "group": ["query a", "query b"]})
    pairs = build_training_pairs(frame, PAIRS_MODE, seed=1)
    assert list(pairs["anchor"]) == ["query a", "query b"]
    assert list(pairs["positive"]) == ["a post", "b post"]


def _sampler(groups: list[str], batch_size: int, seed: int = 0,
             drop_last: bool = False) -> DistinctGroupBatchSampler:
    return DistinctGroupBatchSampler(list(range(len(groups))), batch_size, drop_last,
                                     seed=seed, groups=groups)


def test_sampler_batches_have_distinct_groups():
    groups = [f"g{i % 5}" for i in range(37)] + ["big"] * 9
    sampler = _sampler(groups, batch_size=4)
    batches = list(sampler)
    for batch in batches:
        assert len({groups[i] for i in batch}) == len(batch)
    assert len(batches) == len(sampler)
    used = [i for batch in batches for i in batch]
    assert len(used) == len(set(used))
    assert len(used) >= len(groups) - 1


def test_sampler_repeats_with_seed():
    groups = [f"g{i % 7}" for i in range(50)]
    assert list(_sampler(groups, 5, seed=3)) == list(_sampler(groups, 5, seed=3))
    assert list(_sampler(groups, 5, seed=3)) != list(_sampler(groups, 5, seed=4))


def test_sampler_drop_last_keeps_full_batches():
    groups = [f"g{i % 3}" for i in range(10)]
    sampler = _sampler(groups, batch_size=3, drop_last=True)
    batches = list(sampler)
    assert all(len(batch) == 3 for batch in batches)
    assert len(batches) == len(sampler) == 3


def test_count_batches_rejects_batch_of_one():
    with pytest.raises(ValueError, match="at least 2"):
        count_batches([3, 3], 1)


def test_evaluation_set_leaves_query_out():
    frame = _grouped(2, 3)
    evaluation = build_evaluation_set(frame, GROUPS_MODE, queries_per_group=2, seed=0)
    assert len(evaluation.queries) == 4
    for query, position, relevant in zip(evaluation.queries, evaluation.query_positions,
                                         evaluation.relevant):
        assert evaluation.corpus[position] == query
        assert position not in relevant
        assert len(relevant) == 2
        assert {frame.at[p, "group"] for p in relevant} == {frame.at[position, "group"]}


class _TableEncoder:
    """Encoder that looks each text up in a fixed table of unit vectors."""

    uri = "table"
    dimension = 2

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def encode(self, texts):
        rows = np.array([self.table[text] for text in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_evaluate_encoder_ranks_by_inner_product():
    # a1 and a2 form group a and b1 and b2 group b. b2 lies closer to a1 than a2 does, so
    # the query a1 ranks b2 before its relevant post a2.
    table = {"a1": [1.0, 0.0], "a2": [0.6, 0.8], "b1": [0.0, 1.0], "b2": [0.8, 0.6]}
    evaluation = EvaluationSet(
        queries=["a1", "b1"], corpus=["a1", "a2", "b1", "b2"], relevant=[{1}, {3}],
        query_positions=[0, 2],
    )
    metrics = evaluate_encoder(_TableEncoder(table), evaluation)
    # Query a1 ranks b2 (0.8), then a2 (0.6). Query b1 ranks a2 (0.8), then b2 (0.6).
    assert metrics["recall_at_1"] == 0.0
    assert metrics["mrr"] == pytest.approx(0.5)
    assert metrics["recall_at_5"] == 1.0
    assert metrics["ndcg_at_10"] == pytest.approx(1 / math.log2(3))


def test_pairs_evaluation_set_maps_posts():
    frame = pd.DataFrame({"text": ["p1", "p2", "p3"], "group": ["q1", "q1", "q2"]})
    evaluation = build_evaluation_set(frame, PAIRS_MODE, queries_per_group=0, seed=0)
    assert evaluation.queries == ["q1", "q2"]
    assert evaluation.relevant == [{0, 1}, {2}]
    assert evaluation.query_positions is None

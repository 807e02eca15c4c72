"""Agreement statistics and majority resolution, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.annotate.agreement import (
    COHEN,
    FLEISS,
    batch_agreement,
    cohen_kappa,
    fleiss_kappa,
    resolve_by_majority,
    resolve_spans,
)
from tasks.annotate.resolve import token_tags

# The common textbook illustration of Fleiss' kappa: 10 subjects, 14 raters each,
# 5 categories. By hand, P-bar = 0.378 and P-bar-e = 0.213, so kappa = 0.165 / 0.787 = 0.210.
FLEISS_EXAMPLE = np.array([
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
])

# Two annotators, six posts, five agreements. Observed agreement 5/6. Marginals: first
# pos 3, neg 2, neu 1; second pos 2, neg 3, neu 1, so chance agreement is
# (3*2 + 2*3 + 1*1) / 36 = 13/36 and kappa = (30/36 - 13/36) / (23/36) = 17/23.
FIRST = ["pos", "pos", "neg", "neg", "neu", "pos"]
SECOND = ["pos", "neg", "neg", "neg", "neu", "pos"]

# Three annotators, four posts: aaa, aab, bbb, abb. Per-post agreement 1, 1/3, 1, 1/3,
# mean 2/3; both categories have share 1/2, so chance is 1/2 and kappa = (2/3 - 1/2) / (1/2).
THREE_RATERS = [("p1", "aaa"), ("p2", "aab"), ("p3", "bbb"), ("p4", "abb")]


def ratings_frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["unit", "annotator", "value"])


def three_rater_frame() -> pd.DataFrame:
    return ratings_frame([(unit, annotator, value) for unit, values in THREE_RATERS
                          for annotator, value in zip(["x", "y", "z"], values)])


def test_fleiss_textbook_example():
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_hand_example():
    assert fleiss_kappa(np.array([[3, 0], [2, 1], [0, 3], [1, 2]])) == pytest.approx(1 / 3)


def test_fleiss_perfect_agreement():
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)


def test_fleiss_one_category_undefined():
    assert fleiss_kappa(np.array([[3, 0], [3, 0]])) is None


def test_fleiss_rejects_uneven_rows():
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa(np.array([[3, 0], [1, 1]]))


def test_cohen_hand_example():
    assert cohen_kappa(FIRST, SECOND) == pytest.approx(17 / 23)


def test_cohen_one_value_undefined():
    assert cohen_kappa(["pos", "pos"], ["pos", "pos"]) is None


def test_batch_two_annotators_cohen():
    rows = [(f"p{n}", "ann", a) for n, a in enumerate(FIRST)]
    rows += [(f"p{n}", "bob", b) for n, b in enumerate(SECOND)]
    rows.append(("p9", "ann", "pos"))  # rated once: not shared, left out

    report = batch_agreement(ratings_frame(rows))

    assert report["statistic"] == COHEN
    assert report["kappa"] == pytest.approx(17 / 23)
    assert report["annotators"] == ["ann", "bob"]
    assert report["units"] == 7
    assert report["units_shared"] == 6
    assert report["units_used"] == 6


def test_batch_three_annotators_fleiss():
    report = batch_agreement(three_rater_frame())

    assert report["statistic"] == FLEISS
    assert report["kappa"] == pytest.approx(1 / 3)
    assert report["units_used"] == 4


def test_batch_fleiss_uses_modal_count():
    rows = three_rater_frame()
    extra = ratings_frame([("p5", "x", "a"), ("p5", "y", "b")])  # two raters, not three

    report = batch_agreement(pd.concat([rows, extra], ignore_index=True))

    assert report["units_shared"] == 5
    assert report["units_used"] == 4
    assert report["kappa"] == pytest.approx(1 / 3)


def test_batch_single_annotator_no_kappa():
    report = batch_agreement(ratings_frame([("p1", "ann", "pos"), ("p2", "ann", "neg")]))

    assert report["statistic"] is None
    assert report["kappa"] is None
    assert report["units_shared"] == 0


def test_majority_wins():
    outcome = resolve_by_majority({"a": "positive", "b": "positive", "c": "negative"})

    assert outcome.value == "positive"
    assert outcome.status == "majority"
    assert outcome.votes == {"negative": ["c"], "positive": ["a", "b"]}


@pytest.mark.parametrize("votes", [
    {"a": "positive", "b": "negative"},
    {"a": "positive", "b": "negative", "c": "neutral"},
    {"a": "positive", "b": "positive", "c": "negative", "d": "negative"},
])
def test_majority_tie(votes):
    outcome = resolve_by_majority(votes)

    assert outcome.value is None
    assert outcome.status == "tie"


def test_majority_single_and_unanimous():
    assert resolve_by_majority({"a": "neutral"}).status == "single"
    unanimous = resolve_by_majority({"a": "neutral", "b": "neutral"})
    assert unanimous.status == "unanimous"
    assert unanimous.value == "neutral"


def test_spans_kept_by_majority():
    outcome = resolve_spans({
        "a": [(0, 5, "person"), (14, 19, "location")],
        "b": [(0, 5, "person")],
        "c": [(0, 5, "person"), (14, 19, "location"), (20, 22, "group")],
    })

    assert outcome.status == "majority"
    assert outcome.value == [[0, 5, "person"], [14, 19, "location"]]
    assert outcome.votes["20-22:group"] == ["c"]


def test_spans_half_is_tie():
    outcome = resolve_spans({"a": [(0, 5, "person")], "b": []})

    assert outcome.status == "tie"
    assert outcome.value is None


def test_spans_unanimous_empty():
    outcome = resolve_spans({"a": [], "b": []})

    assert outcome.status == "unanimous"
    assert outcome.value == []


def test_token_tags_share_tokens():
    tagged = token_tags("New York rocks", [[[0, 8, "location"]], [[4, 8, "location"]]],
                        ["a", "b"])

    assert tagged == {"a": ["B-location", "I-location", "O"],
                      "b": ["O", "B-location", "O"]}

"""The data-quality check of training data that the promotion gate relies on."""

from __future__ import annotations

import pandas as pd

from tasks.extract.conll import TaggedPost
from tasks.validate.training_data import PASSED, check_tagged_posts, check_training_set, verdict

LABELS = ["negative", "neutral", "positive"]


def _frame(rows):
    return pd.DataFrame(rows, columns=["text", "label"])


def test_clean_training_set_passes():
    train = _frame([("good", "positive"), ("bad", "negative"), ("meh", "neutral")])
    validation = _frame([("fine", "positive")])
    assert verdict(check_training_set(train, validation, LABELS)) == PASSED


def test_training_set_failures_are_named():
    train = _frame([("good", "positive"), ("  ", "negative"), ("huh", "confused")])
    validation = _frame([("fine", "positive")])

    result = verdict(check_training_set(train, validation, LABELS))

    assert result.startswith("failed: ")
    assert "failed for 1 of 4 rows (text is empty)" in result
    assert "failed for 1 of 4 rows (label is not in the task's label set)" in result
    # 'neutral' has no example at all: a table-level failure, without row counts.
    assert "expect_column_distinct_values_to_contain_set on column 'label' failed " \
        "(a label of the label set has no example)" in result


def test_empty_validation_split_fails():
    train = _frame([("good", "positive"), ("bad", "negative"), ("meh", "neutral")])
    result = verdict(check_training_set(train, _frame([]), LABELS))
    assert "(the train or the validation split is empty)" in result


def test_multi_label_rows_checked_per_label():
    train = pd.DataFrame({"text": ["rain and goals", "nothing"],
                          "labels": [["weather", "sport"], []]})
    validation = pd.DataFrame({"text": ["pizza"], "labels": [["food"]]})
    assert verdict(check_training_set(train, validation, ["food", "sport", "weather"],
                                      multi_label=True)) == PASSED
    wrong = validation.assign(labels=[["cars"]])
    assert "label is not in the task's label set" in verdict(
        check_training_set(train, wrong, ["food", "sport", "weather"], multi_label=True))


def test_tagged_posts():
    good = [TaggedPost(["Alice", "in", "Paris"], ["B-person", "O", "B-location"])]
    assert verdict(check_tagged_posts(good, good)) == PASSED
    bad = [TaggedPost(["Alice", "in"], ["B-person", "X-thing"]), TaggedPost(["a"], ["O", "O"])]
    result = verdict(check_tagged_posts(good, bad))
    assert "(tag is not O, B-type or I-type)" in result
    assert "(number of tags differs from number of tokens)" in result

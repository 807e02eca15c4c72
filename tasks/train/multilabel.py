"""Multi-label classification: label lists, multi-hot targets, loss weights and inference.

A multi-label post carries any number of labels from the task's label set, including none.
The model has one logit per label, and a sigmoid turns each into an independent
probability. A label applies when its probability reaches the task's threshold.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PROBLEM_TYPE = "multi_label_classification"  # transformers' name; selects BCE-with-logits loss
LABEL_SEPARATOR = re.compile(r"[,|]")


class InvalidLabelRow(ValueError):
    """A labeled row that cannot be used, with the reason (the message) and how to fix it."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.fix = fix


def parse_label_list(value: Any) -> list[str]:
    """Parse the labels of one post, without duplicates, in the order given.

    ``value`` is a list of strings, a JSON array string, or one string with labels
    separated by ',' or '|'. An empty list or an empty string means no label applies.
    Raises InvalidLabelRow for a missing value (None) or another type.
    """
    if value is None:
        raise InvalidLabelRow("labels are missing",
                              "add a 'labels' list to the row, [] when no label applies")
    if isinstance(value, str):
        value = _split_label_string(value.strip())
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidLabelRow(f"labels {value!r} are not a list of strings",
                              'write the labels as a JSON list like ["sport", "food"] or as '
                              "one string like 'sport|food'")
    labels = [item.strip() for item in value if item.strip()]
    return list(dict.fromkeys(labels))


def _split_label_string(text: str) -> list[Any]:
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidLabelRow(f"labels {text!r} are not a valid JSON list ({error.msg})",
                                  "fix the JSON list or separate the labels with ',' or '|'") \
                from error
    return LABEL_SEPARATOR.split(text) if text else []


def check_label_row(fields: dict[str, Any],
                    label_set: Sequence[str] | None) -> tuple[str, list[str]]:
    """Return the text and label list of one labeled record.

    The labels come from the ``labels`` field, else from ``label``. With ``label_set``
    given, every label must be in it. Raises InvalidLabelRow with the reason and the fix.
    """
    text = fields.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidLabelRow("text is missing or empty",
                              "give every row a non-empty 'text' field, or drop the row")
    value = fields.get("labels")
    labels = parse_label_list(fields.get("label") if value is None else value)
    unknown = [label for label in labels if label_set is not None and label not in label_set]
    if unknown:
        raise InvalidLabelRow(
            f"label {unknown[0]!r} is not in the label set {list(label_set or [])}",
            f"correct the label, or add {unknown[0]!r} to the label set with --labels "
            f"or classification_tasks",
        )
    return text, labels


def multi_hot(label_lists: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """Return a float32 matrix, one row per post and one column per label, 1.0 where it applies."""
    index = {label: position for position, label in enumerate(labels)}
    matrix = np.zeros((len(label_lists), len(labels)), dtype=np.float32)
    for row, post_labels in enumerate(label_lists):
        for label in post_labels:
            matrix[row, index[label]] = 1.0
    return matrix


def positive_weights(label_lists: Sequence[Sequence[str]], labels: Sequence[str]) -> list[float]:
    """Return the BCE ``pos_weight`` of each label: its negative posts over its positive posts.

    A label with no positive post counts as having one, so its weight stays finite.
    """
    positives = multi_hot(label_lists, labels).sum(axis=0)
    weights = [float((len(label_lists) - count) / max(count, 1.0)) for count in positives]
    log.info("positive weights %s", dict(zip(labels, (round(w, 3) for w in weights))))
    return weights


def labels_above(probabilities: np.ndarray, labels: Sequence[str],
                 threshold: float) -> list[list[str]]:
    """Return, for each row of ``probabilities``, the labels whose probability is >= threshold."""
    return [[label for label, p in zip(labels, row) if p >= threshold] for row in probabilities]


def predict_label_probabilities(model: Any, tokenizer: Any, texts: Sequence[str],
                                batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """Return sigmoid probabilities, shape (len(texts), num_labels), in the order of ``texts``."""
    from tasks.score.inference import predict_probabilities

    return predict_probabilities(model, tokenizer, texts, batch_size=batch_size,
                                 max_length=max_length, activation="sigmoid")

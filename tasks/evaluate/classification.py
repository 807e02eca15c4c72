"""Classification metrics with scikit-learn, and confusion matrices as figures.

Single-label metrics compare one label per post, and multi-label metrics compare label
lists as multi-hot arrays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.preprocessing import MultiLabelBinarizer


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, float]:
    """Return accuracy, macro precision/recall/F1 and per-class precision/recall/F1/support.

    Keys are flat (``macro_f1``, ``f1_negative``) so they can be logged to MLflow as is.
    """
    labels = list(labels)
    metrics: dict[str, float] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    metrics.update(macro_precision=float(precision), macro_recall=float(recall), macro_f1=float(f1))
    per_class = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    return {**metrics, **_per_label(per_class, labels)}


def multi_label_metrics(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], labels: Sequence[str]
) -> dict[str, float]:
    """Return micro and macro F1, precision and recall, samples F1 and per-label scores.

    Keys are flat like those of classification_metrics: ``macro_f1`` (the promotion gate's
    metric), ``micro_f1``, ``samples_f1``, ``f1_<label>``, and ``subset_accuracy``, the
    share of posts whose predicted label set equals the true one. A label that is neither
    true nor predicted anywhere scores 0 in the macro average, as in the single-label
    metrics. A post with no true and no predicted label scores samples-F1 1, because
    predicting nothing for it is correct.
    """
    truth, predicted = _binarize(y_true, labels), _binarize(y_pred, labels)
    metrics: dict[str, float] = {"subset_accuracy": float(accuracy_score(truth, predicted))}
    for average in ("micro", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, predicted, average=average, zero_division=0
        )
        metrics.update({f"{average}_precision": float(precision),
                        f"{average}_recall": float(recall), f"{average}_f1": float(f1)})
    metrics["samples_f1"] = float(f1_score(truth, predicted, average="samples", zero_division=1.0))
    per_label = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    return {**metrics, **_per_label(per_label, labels)}


def multi_label_output_metrics(
    evaluation: pd.DataFrame, predictions: pd.DataFrame, labels: Sequence[str]
) -> dict[str, float]:
    """Return multi_label_metrics of a multi-label model's output on ``evaluation``.

    ``evaluation`` has a ``labels`` column of label lists (lists or arrays, as read back
    from Parquet). ``predictions`` is the pyfunc output, whose ``labels`` column contains
    JSON array strings.
    """
    y_true = [[str(label) for label in row] for row in evaluation["labels"]]
    y_pred = [json.loads(row) for row in predictions["labels"]]
    return multi_label_metrics(y_true, y_pred, labels)


def _binarize(label_lists: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    binarizer = MultiLabelBinarizer(classes=list(labels))
    return binarizer.fit_transform([list(row) for row in label_lists])


def plot_confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], title: str = ""
) -> Any:
    """Return a matplotlib figure of the confusion matrix, rows true and columns predicted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = confusion_matrix(y_true, y_pred, labels=list(labels))
    figure, axes = plt.subplots(figsize=(1.6 * len(labels) + 2, 1.4 * len(labels) + 1.5))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(np.arange(len(labels)), labels=labels, rotation=30, ha="right")
    axes.set_yticks(np.arange(len(labels)), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=color)
    axes.set_title(title or "confusion matrix")
    figure.tight_layout()
    return figure


def plot_label_confusion(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], labels: Sequence[str],
    title: str = "",
) -> Any:
    """Return a matplotlib figure of each label's true/false positives and negatives.

    Multi-label posts have no single confusion matrix, so each label gets one row of
    counts: true positives, false positives, false negatives and true negatives.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrices = multilabel_confusion_matrix(_binarize(y_true, labels), _binarize(y_pred, labels))
    columns = ["true pos.", "false pos.", "false neg.", "true neg."]
    counts = np.array([[m[1, 1], m[0, 1], m[1, 0], m[0, 0]] for m in matrices])
    figure, axes = plt.subplots(figsize=(7, 0.6 * len(labels) + 1.5))
    axes.imshow(counts, cmap="Blues", aspect="auto")
    axes.set_xticks(np.arange(len(columns)), labels=columns)
    axes.set_yticks(np.arange(len(labels)), labels=list(labels))
    threshold = counts.max() / 2 if counts.size else 0
    for (row, column), count in np.ndenumerate(counts):
        color = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=color)
    axes.set_title(title or "per-label confusion")
    figure.tight_layout()
    return figure


def _per_label(scores: Sequence[Any], labels: Sequence[str]) -> dict[str, float]:
    """Flatten scikit-learn's per-label (precision, recall, F1, support) arrays into keys."""
    flat = {}
    for index, label in enumerate(labels):
        for name, values in zip(("precision", "recall", "f1", "support"), scores):
            flat[f"{name}_{label}"] = float(values[index])
    return flat

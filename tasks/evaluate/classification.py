"""Classification metrics with scikit-learn, and the confusion matrix as a figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)


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
    for index, label in enumerate(labels):
        metrics[f"precision_{label}"] = float(per_class[0][index])
        metrics[f"recall_{label}"] = float(per_class[1][index])
        metrics[f"f1_{label}"] = float(per_class[2][index])
        metrics[f"support_{label}"] = float(per_class[3][index])
    return metrics


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

"""Entity-level (span) metrics with seqeval, and a bar chart of F1 per entity type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def span_metrics(true_tags: Sequence[Sequence[str]],
                 predicted_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Return span precision, recall and F1, micro and macro averaged and per entity type.

    A predicted entity counts only when its type and its first and last token equal those
    of a true entity (seqeval, strict mode, IOB2 scheme). Keys are flat (``micro_f1``,
    ``macro_f1``, ``f1_person``, ``support_person``) so they can be logged to MLflow as is.
    Types that occur only in predictions have support 0 and count in the macro average.
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(
        [list(tags) for tags in true_tags], [list(tags) for tags in predicted_tags],
        mode="strict", scheme=IOB2, output_dict=True, zero_division=0,
    )
    metrics: dict[str, float] = {}
    for average in ("micro", "macro"):
        scores = report.get(f"{average} avg", {})
        metrics[f"{average}_precision"] = float(scores.get("precision", 0.0))
        metrics[f"{average}_recall"] = float(scores.get("recall", 0.0))
        metrics[f"{average}_f1"] = float(scores.get("f1-score", 0.0))
    for kind, scores in report.items():
        if kind.endswith(" avg"):
            continue
        metrics[f"precision_{kind}"] = float(scores["precision"])
        metrics[f"recall_{kind}"] = float(scores["recall"])
        metrics[f"f1_{kind}"] = float(scores["f1-score"])
        metrics[f"support_{kind}"] = float(scores["support"])
    return metrics


def plot_type_f1(metrics: dict[str, float], title: str = "") -> Any:
    """Return a matplotlib figure with one horizontal bar per entity type: its span F1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted(key.removeprefix("f1_") for key in metrics if key.startswith("f1_"))
    values = [metrics[f"f1_{kind}"] for kind in kinds]
    names = [f"{kind} ({int(metrics.get(f'support_{kind}', 0))})" for kind in kinds]
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(kinds) + 1.5))
    axes.barh(names, values, color="tab:blue")
    for row, value in enumerate(values):
        axes.text(min(value + 0.01, 0.9), row, f"{value:.2f}", va="center")
    axes.set_xlim(0, 1)
    axes.invert_yaxis()
    axes.set_xlabel("span F1 (true entities in brackets)")
    axes.set_title(title or "span F1 by entity type")
    figure.tight_layout()
    return figure

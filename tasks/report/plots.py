"""Figures of the daily report, returned as PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

# Agg renders to files without a display; it is chosen before pyplot loads.
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from tasks.report.drift import DriftMetric

LABEL_COLORS = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60"}
VOLUME_COLORS = {"clean": "#2e86c1", "duplicates": "#f5b041", "quarantined": "#c0392b"}
DPI = 100


def to_png(figure: Any) -> bytes:
    """Render ``figure`` as PNG bytes and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def plot_message(message: str) -> bytes:
    """Return a small figure that shows ``message`` instead of a plot."""
    figure, axes = plt.subplots(figsize=(6, 1.2))
    axes.axis("off")
    axes.text(0.5, 0.5, message.replace("$", r"\$"), ha="center", va="center", wrap=True)
    return to_png(figure)


def plot_volume(volume: pd.DataFrame) -> bytes:
    """Stack clean, duplicate and quarantined posts per day."""
    figure, axes = plt.subplots(figsize=(max(6, 0.6 * len(volume) + 2), 3.2))
    bottom = pd.Series(0, index=volume.index, dtype=float)
    for column, color in VOLUME_COLORS.items():
        values = volume[column].astype("Float64").fillna(0).astype(float)
        axes.bar(volume["date"], values, bottom=bottom, color=color, label=column)
        bottom += values
    axes.set_ylabel("posts")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title("Posts per day")
    axes.legend(loc="upper left", fontsize="small")
    axes.tick_params(axis="x", labelrotation=45)
    return to_png(figure)


def plot_sentiment(shares: pd.DataFrame, labels: list[str]) -> bytes:
    """Plot the share of each sentiment label per day, in percent."""
    figure, axes = plt.subplots(figsize=(max(6, 0.6 * len(shares) + 2), 3.2))
    for label in labels:
        axes.plot(shares["date"], 100 * shares[label], marker="o", label=label,
                  color=LABEL_COLORS.get(label))
    axes.set_ylabel("share of posts (%)")
    axes.set_ylim(0, 100)
    axes.set_title("Predicted sentiment per day")
    axes.legend(loc="upper left", fontsize="small")
    axes.tick_params(axis="x", labelrotation=45)
    return to_png(figure)


def plot_entities(entities: pd.DataFrame) -> bytes:
    """Plot the most frequent entities as horizontal bars, the most frequent on top."""
    # Entity texts are user content: a "$" would start matplotlib's math mode.
    names = [f"{text} ({kind})".replace("$", r"\$")
             for kind, text in zip(entities["type"], entities["text"])]
    figure, axes = plt.subplots(figsize=(6.5, 0.35 * len(entities) + 1.2))
    axes.barh(range(len(names)), entities["count"].to_numpy()[::-1], color="#2e86c1")
    axes.set_yticks(range(len(names)), names[::-1])
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("mentions")
    axes.set_title("Top entities")
    return to_png(figure)


def plot_drift(metrics: list[DriftMetric]) -> bytes:
    """Plot each measured distribution, reference against the day.

    Raises ValueError when no metric has both a value and samples to plot.
    """
    plotted = [m for m in metrics if m.value is not None and m.reference is not None
               and m.current is not None]
    if not plotted:
        raise ValueError("no measured drift metric has samples to plot")
    figure, all_axes = plt.subplots(1, len(plotted), figsize=(4.2 * len(plotted), 3.2),
                                    squeeze=False)
    for axes, metric in zip(all_axes[0], plotted):
        if metric.statistic == "KS statistic":
            axes.hist([metric.reference, metric.current], bins=20, density=True,
                      label=["reference", "day"], color=["#95a5a6", "#2e86c1"])
            axes.set_xlabel("characters")
        else:
            frame = pd.DataFrame({"reference": metric.reference, "day": metric.current})
            frame.plot.bar(ax=axes, color=["#95a5a6", "#2e86c1"], rot=0)
            axes.set_xlabel("")
            axes.set_ylabel("share")
        axes.set_title(f"{metric.name}\n{metric.statistic} {metric.value:.3f}",
                       fontsize="medium")
        axes.legend(fontsize="small")
    figure.tight_layout()
    return to_png(figure)

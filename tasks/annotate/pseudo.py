"""Pseudo labels: the champion's confident predictions on posts no human labeled.

Pseudo labels live in their own dataset, ``pseudo_labels``, one partition per day. They are
never written to ``labels``, so the human label history and the label-version hashes of
training runs stay human-only. Training adds them to its training posts (never to its
validation posts) only when ``train.use_pseudo_labels`` is set.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tasks import storage
from tasks.annotate.labels import load_all_labels
from tasks.annotate.preannotate import Champion
from tasks.annotate.select import champion_probabilities
from tasks.clean.text import dedup_key

log = logging.getLogger(__name__)

PSEUDO_LABELS = "pseudo_labels"
PSEUDO_COLUMNS = ["post_id", "text", "label", "confidence", "model_version"]


def unlabeled_posts(posts: pd.DataFrame, labeled: pd.DataFrame) -> pd.DataFrame:
    """Return the rows of ``posts`` (columns id, text) that no row of ``labeled`` labels.

    A post counts as labeled when ``labeled`` has its id as ``post_id``, or a text with the
    same dedup key (case and whitespace aside, retweet prefix removed).
    """
    if labeled.empty:
        return posts.reset_index(drop=True)
    labeled_ids = set(labeled["post_id"].dropna().astype(str)) if "post_id" in labeled else set()
    labeled_texts = {dedup_key(str(text)) for text in labeled["text"]}
    keep = [str(post_id) not in labeled_ids and dedup_key(str(text)) not in labeled_texts
            for post_id, text in zip(posts["id"], posts["text"])]
    return posts[keep].reset_index(drop=True)


def select_pseudo_labels(posts: pd.DataFrame, probabilities: np.ndarray, labels: Sequence[str],
                         threshold: float, max_per_class: int = 0,
                         model_version: str = "") -> pd.DataFrame:
    """Return the confident predictions on ``posts`` as pseudo labels (PSEUDO_COLUMNS).

    A post qualifies when its highest probability is at least ``threshold``. Each class
    then keeps its most confident posts, at most ``max_per_class``, or, when that is 0,
    at most as many as the rarest class that has any qualifying post. A class without
    any qualifying post is logged and does not lower that cap.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(posts), len(labels)):
        raise ValueError(f"expected probabilities of shape ({len(posts)}, {len(labels)}), got "
                         f"{probabilities.shape}")
    confident = pd.DataFrame({
        "post_id": posts["id"].astype(str).to_numpy(), "text": posts["text"].to_numpy(),
        "label": [labels[i] for i in probabilities.argmax(axis=1)],
        "confidence": probabilities.max(axis=1), "model_version": model_version,
    })
    confident = confident[confident["confidence"] >= threshold]
    counts = confident["label"].value_counts()
    empty = [label for label in labels if label not in counts]
    if empty and not confident.empty:
        log.warning("no prediction reached confidence %.2f for %s: those classes get no "
                    "pseudo labels", threshold, empty)
    if max_per_class:
        cap = max_per_class
    else:
        cap = int(counts.min()) if not counts.empty else 0

    ranked = confident.sort_values("confidence", ascending=False, kind="stable")
    kept = ranked.groupby("label", sort=False).head(cap)
    label_order = kept["label"].map({label: index for index, label in enumerate(labels)})
    kept = kept.assign(_order=label_order).sort_values(["_order", "confidence"],
                                                       ascending=[True, False], kind="stable")
    return kept[PSEUDO_COLUMNS].reset_index(drop=True)


def count_by_class(pseudo: pd.DataFrame, labels: Sequence[str]) -> dict[str, int]:
    """Return the number of pseudo labels of each of ``labels``."""
    counts = pseudo["label"].value_counts() if not pseudo.empty else pd.Series(dtype=int)
    return {label: int(counts.get(label, 0)) for label in labels}


def create_pseudo_labels(store: storage.Store, day: dt.date, champion: Champion,
                         labels: Sequence[str], threshold: float,
                         max_per_class: int = 0) -> dict[str, object]:
    """Pseudo-label the day's unlabeled clean posts with ``champion`` and store them.

    Unlabeled means no human label in any ``labels`` partition. The day's ``pseudo_labels``
    partition is replaced, so a rerun with the same champion writes the same rows.
    Returns the counts: candidates, stored and stored per class.
    """
    from tasks.collect.stage import CLEAN

    clean = storage.read_frame(store, CLEAN, day)
    candidates = unlabeled_posts(clean, load_all_labels(store))
    probabilities = champion_probabilities(champion, list(candidates["text"]), labels)
    pseudo = select_pseudo_labels(candidates, probabilities, labels, threshold, max_per_class,
                                  champion.model_version)
    uri = storage.write_frame(store, PSEUDO_LABELS, day, pseudo)
    summary = {"candidates": len(candidates), "stored": len(pseudo),
               "by_class": count_by_class(pseudo, labels), "uri": uri}
    log.info("pseudo-labeled %s with %s: %s", day, champion.model_version, summary)
    return summary


def load_pseudo_labels(store: storage.Store, until: dt.date | None = None) -> pd.DataFrame:
    """Return every pseudo label up to ``until``, the newest partition's row for a repeated post."""
    frame = storage.read_all_frames(store, PSEUDO_LABELS, until)
    if frame.empty:
        return pd.DataFrame(columns=[*PSEUDO_COLUMNS, "partition"])
    frame = frame.drop_duplicates(subset="post_id", keep="last")
    return frame.drop_duplicates(subset="text", keep="last").reset_index(drop=True)


def pseudo_labels_for_training(pseudo: pd.DataFrame, human: pd.DataFrame) -> pd.DataFrame:
    """Return the rows of ``pseudo`` whose post no row of ``human`` labels, so human labels win.

    A post can get a human label after it was pseudo-labeled, and then only the human
    label may train.
    """
    if pseudo.empty:
        return pseudo
    remaining = unlabeled_posts(pseudo.rename(columns={"post_id": "id"}), human)
    dropped = len(pseudo) - len(remaining)
    if dropped:
        log.info("dropped %d pseudo labels of posts that humans labeled since", dropped)
    return remaining.rename(columns={"id": "post_id"})

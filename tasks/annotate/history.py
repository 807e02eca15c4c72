"""Label history, the training view, and the label versions a training run used.

Every import writes the labels it resolved into that day's partition, so the partitions
together are the history. A label is identified by its post id, or by a hash of its text
when the file had no post id. Its version counts how often that label id was imported,
oldest partition first, so a correction imported later is the next version. The training
view keeps the newest version of each label id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass

import pandas as pd

from tasks import storage

LABEL_VERSIONS = "label_versions"
TEXT_ID_PREFIX = "text:"


def label_id(post_id: object, text: object) -> str:
    """Return the id of a label: its post id, else ``text:`` and a hash of its text."""
    if post_id is not None and not pd.isna(post_id) and str(post_id).strip():
        return str(post_id)
    return TEXT_ID_PREFIX + hashlib.sha256(str(text).encode()).hexdigest()[:16]


def label_history(store: storage.Store, dataset: str, until: dt.date | None = None) -> pd.DataFrame:
    """Return every label of ``dataset`` up to ``until`` with its ``version``, oldest first.

    Partitions written before labels had ids get them here, from the post id or text.
    """
    frame = storage.read_all_frames(store, dataset, until)
    if frame.empty:
        return frame
    if "label_id" not in frame.columns:
        frame["label_id"] = None
    missing = frame["label_id"].isna()
    post_ids = frame["post_id"] if "post_id" in frame.columns else pd.Series(None, frame.index)
    frame.loc[missing, "label_id"] = [label_id(post, text) for post, text in
                                      zip(post_ids[missing], frame.loc[missing, "text"])]
    order = ["partition", "annotated_at"] if "annotated_at" in frame.columns else ["partition"]
    frame = frame.sort_values(order, na_position="first", kind="stable").reset_index(drop=True)
    frame["version"] = frame.groupby("label_id").cumcount() + 1
    return frame


def training_view(store: storage.Store, dataset: str, until: dt.date | None = None) -> pd.DataFrame:
    """Return the newest version of each label of ``dataset`` up to ``until``.

    A text that appears under two label ids (once with a post id, once without) is kept
    once, newest first, so no text is trained on with two labels.
    """
    history = label_history(store, dataset, until)
    if history.empty:
        return history
    newest = history.drop_duplicates(subset="label_id", keep="last")
    return newest.drop_duplicates(subset="text", keep="last").reset_index(drop=True)


@dataclass(frozen=True)
class LabelVersions:
    """The labels a training run used, as ``label_id@version`` entries and a content hash.

    ``sha256`` covers each label's id, version, text and value, so two runs with the same
    hash trained on the same labels.
    """

    labels: list[str]
    sha256: str

    @property
    def count(self) -> int:
        return len(self.labels)


def label_versions(view: pd.DataFrame, value_column: str = "label") -> LabelVersions:
    """Return the label versions in ``view``, a training view from :func:`training_view`."""
    if view.empty:
        return LabelVersions([], hashlib.sha256(b"").hexdigest())
    entries = sorted(zip(view["label_id"].astype(str), view["version"].astype(int),
                         view["text"].astype(str), view[value_column].astype(str)))
    digest = hashlib.sha256()
    for identifier, version, text, value in entries:
        digest.update(json.dumps([identifier, version, text, value], ensure_ascii=False).encode())
        digest.update(b"\n")
    return LabelVersions([f"{identifier}@{version}" for identifier, version, _, _ in entries],
                         digest.hexdigest())


def save_label_versions(store: storage.Store, versions: LabelVersions) -> str:
    """Store ``versions`` as ``label_versions/<sha256>.json`` and return its URI.

    The key is the content hash, so saving the same versions again rewrites the same file.
    """
    key = f"{LABEL_VERSIONS}/{versions.sha256}.json"
    return storage.write_json(store, key, {**asdict(versions), "count": versions.count})

"""Training data for retrieval: posts grouped by event or topic, or (query, post) pairs.

Both kinds become one frame with a ``text`` and a ``group`` column. For (query, post)
pairs the group is the query, so the split, the batching and the evaluation treat a
query's posts the way they treat the posts of one event.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.clean.text import dedup_key, normalize_text

log = logging.getLogger(__name__)

GROUPS_MODE = "groups"
PAIRS_MODE = "pairs"
QUERY_FIELD = "query"
MIN_GROUPS_PER_SIDE = 2


@dataclass
class RetrievalData:
    """Normalized posts with their group; ``mode`` is GROUPS_MODE or PAIRS_MODE."""

    frame: pd.DataFrame
    mode: str
    group_field: str


def read_table(path: Path) -> pd.DataFrame:
    """Read JSONL, a JSON array, CSV or Parquet; pandas infers compression from the name."""
    if not path.is_file():
        raise FileNotFoundError(f"retrieval training file {path} not found")
    name = path.name.lower().removesuffix(".gz").removesuffix(".bz2").removesuffix(".zst")
    if name.endswith((".jsonl", ".ndjson")):
        return pd.read_json(path, lines=True, dtype=False)
    if name.endswith(".json"):
        return pd.read_json(path, dtype=False)
    if name.endswith(".csv"):
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    raise ValueError(f"unsupported file type {path.name!r}: use JSONL, CSV or Parquet")


def read_retrieval_file(path: Path, group_field: str, max_posts_per_group: int = 0,
                        seed: int = 42) -> RetrievalData:
    """Read posts with ``text`` and ``group_field``, or (``query``, ``text``) pairs.

    A file with a ``group_field`` column is read as grouped posts. Otherwise a ``query``
    column makes it a file of (query, post) pairs. Texts are normalized as clean posts are,
    empty rows and repeated texts (retweets included) are dropped, and each group is then
    capped at ``max_posts_per_group`` posts by a seeded sample (0 means no cap).
    """
    raw = read_table(path)
    if "text" not in raw.columns:
        raise ValueError(f"{path} has no 'text' column (columns: {list(raw.columns)})")
    if group_field in raw.columns:
        mode, source = GROUPS_MODE, group_field
    elif QUERY_FIELD in raw.columns:
        mode, source = PAIRS_MODE, QUERY_FIELD
    else:
        raise ValueError(
            f"{path} has neither the group field {group_field!r} nor a {QUERY_FIELD!r} column "
            f"(columns: {list(raw.columns)}): pass the column that names each post's event or topic"
        )
    frame = prepare_frame(raw["text"], raw[source], mode)
    frame = cap_groups(frame, max_posts_per_group, seed)
    log.info("read %d posts in %d groups from %s (%s mode, %d rows in the file)",
             len(frame), frame["group"].nunique(), path, mode, len(raw))
    return RetrievalData(frame, mode, source)


def prepare_frame(texts: pd.Series, groups: pd.Series, mode: str) -> pd.DataFrame:
    """Normalize texts and groups and drop empty rows and repeated texts of a group."""
    frame = pd.DataFrame({
        "text": [normalize_text(str(t)) if _present(t) else "" for t in texts],
        "group": [str(g).strip() if _present(g) else "" for g in groups],
    })
    if mode == PAIRS_MODE:
        frame["group"] = [normalize_text(group) for group in frame["group"]]
    frame = frame[(frame["text"] != "") & (frame["group"] != "")]

    keys = frame["text"].map(dedup_key)
    # In groups mode a post belongs to one group, so a repeat in another group goes too.
    subset = keys if mode == GROUPS_MODE else keys + "\0" + frame["group"]
    repeated = subset.duplicated()
    if repeated.any():
        log.info("dropped %d repeated texts (retweets and copies)", int(repeated.sum()))
    return frame[~repeated].reset_index(drop=True)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def cap_groups(frame: pd.DataFrame, max_posts_per_group: int, seed: int) -> pd.DataFrame:
    """Keep at most ``max_posts_per_group`` posts of each group, sampled with ``seed``."""
    if max_posts_per_group <= 0:
        return frame
    shuffled = frame.sample(frac=1.0, random_state=seed)
    return shuffled.groupby("group", sort=False).head(max_posts_per_group).sort_index()


def split_by_group(frame: pd.DataFrame,
                   validation_percent: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split posts so that no group has posts on both sides.

    The validation groups are the ``validation_percent`` share of groups (rounded, at least
    two) with the smallest SHA-1 of their name, so the split does not depend on file order.
    """
    groups = sorted(frame["group"].unique(), key=lambda g: hashlib.sha1(g.encode()).hexdigest())
    if len(groups) < 2 * MIN_GROUPS_PER_SIDE:
        raise ValueError(
            f"{len(groups)} groups found, but retrieval training needs at least "
            f"{2 * MIN_GROUPS_PER_SIDE}: two to train with in-batch negatives and two to validate"
        )
    count = round(len(groups) * validation_percent / 100)
    count = min(max(count, MIN_GROUPS_PER_SIDE), len(groups) - MIN_GROUPS_PER_SIDE)
    validation = frame["group"].isin(set(groups[:count]))
    return frame[~validation].reset_index(drop=True), frame[validation].reset_index(drop=True)


def build_training_pairs(frame: pd.DataFrame, mode: str, seed: int) -> pd.DataFrame:
    """Return (anchor, positive, group) rows for in-batch-negatives training.

    Grouped posts are shuffled within their group, and each post is paired with the next
    one in a cycle, so every post is an anchor once and a positive once. Groups with one
    post are left out. In pairs mode the anchor is the query and the positive its post.
    """
    if mode == PAIRS_MODE:
        return pd.DataFrame({"anchor": frame["group"], "positive": frame["text"],
                             "group": frame["group"]})
    generator = np.random.default_rng(seed)
    rows = []
    for group, posts in frame.groupby("group", sort=True):
        texts = list(posts["text"])
        if len(texts) < 2:
            continue
        order = generator.permutation(len(texts))
        for position, index in enumerate(order):
            following = order[(position + 1) % len(order)]
            rows.append((texts[index], texts[following], group))
    return pd.DataFrame(rows, columns=["anchor", "positive", "group"])

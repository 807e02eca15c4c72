"""FAISS index of a day's clean posts: build, search, rebuild, and checks on the inputs.

The posts are embedded with the real bundled base model, loaded once per module.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

from tasks import storage
from tasks.collect.stage import CLEAN
from tasks.retrieve import index
from tasks.retrieve.encoder import SentenceEncoder
from tasks.settings import reload_settings

DAY = dt.date(2026, 3, 1)
POSTS = [
    ("p1", "Flood water is rising fast on Main Street, stay away from the river"),
    ("p2", "The new phone has a great camera and the battery lasts two days"),
    ("p3", "Earthquake shook the whole city this morning, buildings damaged downtown"),
    ("p4", "Our team won the championship final last night, what a match"),
    ("p5", "Wildfire smoke is so thick today that schools closed early"),
]


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(reload_settings().base_model_path, max_length=64)


@pytest.fixture
def store(tmp_path):
    return storage.LocalStore(root=tmp_path / "store")


def _write_posts(store, day: dt.date, posts: list[tuple[str, str]]) -> None:
    frame = pd.DataFrame(posts, columns=["id", "text"]).assign(lang="en")
    storage.write_frame(store, CLEAN, day, frame)


def test_search_finds_near_verbatim_post(store, encoder):
    _write_posts(store, DAY, POSTS)
    manifest = index.build_index(store, DAY, encoder)
    hits = index.search(store, "earthquake shook the city this morning, buildings damaged",
                        DAY, 3, encoder)
    assert manifest["posts"] == 5
    assert manifest["dimension"] == 384
    assert hits[0][0] == "p3"
    assert hits[0][2] == POSTS[2][1]
    assert len(hits) == 3
    assert hits[0][1] > hits[1][1] >= hits[2][1]
    assert hits[0][1] <= 1.0 + 1e-5


def test_stored_under_embeddings_partition(store, encoder):
    _write_posts(store, DAY, POSTS)
    index.build_index(store, DAY, encoder)
    keys = store.list_keys("embeddings/")
    assert keys == [f"embeddings/date={DAY.isoformat()}/{name}"
                    for name in ("ids.parquet", "index.faiss", "manifest.json")]
    ids = pd.read_parquet(store.root / f"embeddings/date={DAY.isoformat()}/ids.parquet")
    assert list(ids["id"]) == [post_id for post_id, _ in POSTS]
    assert list(ids["position"]) == [0, 1, 2, 3, 4]


def test_rebuild_replaces_index(store, encoder):
    _write_posts(store, DAY, POSTS)
    index.build_index(store, DAY, encoder)
    _write_posts(store, DAY, POSTS[:2])
    index.build_index(store, DAY, encoder)
    loaded = index.load_index(store, DAY)
    hits = index.search(store, "earthquake shook the city", DAY, 5, encoder)
    assert loaded.index.ntotal == 2
    assert loaded.ids == ["p1", "p2"]
    assert [post_id for post_id, _, _ in hits] != ["p3"]
    assert {post_id for post_id, _, _ in hits} == {"p1", "p2"}
    assert len(store.list_keys("embeddings/")) == 3


def test_latest_indexed_day_by_default(store, encoder):
    later = DAY + dt.timedelta(days=1)
    _write_posts(store, DAY, POSTS)
    _write_posts(store, later, [("q1", "Snow storm closes the airport for the weekend")])
    _write_posts(store, later + dt.timedelta(days=1), [("r1", "no index for this day")])
    index.build_index(store, DAY, encoder)
    index.build_index(store, later, encoder)
    hits = index.search(store, "flood on main street", None, 5, encoder)
    assert [post_id for post_id, _, _ in hits] == ["q1"]
    assert index.indexed_days(store) == [DAY, later]


def test_k_larger_than_day(store, encoder):
    _write_posts(store, DAY, POSTS[:2])
    index.build_index(store, DAY, encoder)
    assert len(index.search(store, "phone camera", DAY, 50, encoder)) == 2


def test_empty_day_has_empty_index(store, encoder):
    _write_posts(store, DAY, [])
    manifest = index.build_index(store, DAY, encoder)
    assert manifest["posts"] == 0
    assert index.search(store, "anything", DAY, 5, encoder) == []


@pytest.mark.parametrize(("query", "k", "message"), [
    ("   ", 5, "query is empty"),
    ("flood", 0, "k=0"),
])
def test_search_rejects_bad_request(store, encoder, query, k, message):
    _write_posts(store, DAY, POSTS)
    index.build_index(store, DAY, encoder)
    with pytest.raises(ValueError, match=message):
        index.search(store, query, DAY, k, encoder)


def test_missing_index_raises(store, encoder):
    with pytest.raises(FileNotFoundError, match="build one"):
        index.search(store, "flood", None, 5, encoder)
    with pytest.raises(FileNotFoundError, match="2026-03-01"):
        index.search(store, "flood", DAY, 5, encoder)


def test_missing_clean_partition_raises(store, encoder):
    with pytest.raises(FileNotFoundError, match="clean_posts"):
        index.build_index(store, DAY, encoder)


class _SmallEncoder:
    uri = "small"
    dimension = 8

    def encode(self, texts):
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)


def test_other_dimension_rejected(store, encoder):
    _write_posts(store, DAY, POSTS)
    index.build_index(store, DAY, encoder)
    with pytest.raises(ValueError, match="8-dimensional"):
        index.search(store, "flood", DAY, 5, _SmallEncoder())


def test_changed_partition_warns(store, encoder, caplog):
    _write_posts(store, DAY, POSTS)
    index.build_index(store, DAY, encoder)
    _write_posts(store, DAY, POSTS[:4])
    with caplog.at_level(logging.WARNING, logger="tasks.retrieve.index"):
        hits = index.search(store, "wildfire smoke schools closed", DAY, 1, encoder)
    assert hits == [("p5", hits[0][1], "")]
    assert "changed after its index was built" in caplog.text

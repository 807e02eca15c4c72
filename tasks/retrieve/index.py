"""A FAISS inner-product index of one day's clean posts, stored beside the datasets.

The ``embeddings/date=YYYY-MM-DD/`` partition contains three objects: ``index.faiss`` (an
exact IndexFlatIP over unit-length embeddings, so the inner product is the cosine),
``ids.parquet`` (post id and index position) and ``manifest.json`` (model, dimension,
counts and a fingerprint of the clean partition). Building again replaces all three.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import pandas as pd

from tasks import storage
from tasks.clean.text import normalize_text
from tasks.collect.stage import CLEAN
from tasks.retrieve.encoder import Encoder

log = logging.getLogger(__name__)

EMBEDDINGS = "embeddings"
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.parquet"
MANIFEST_FILE = "manifest.json"


@dataclass
class PostIndex:
    """A loaded index with the post id of each position and its manifest."""

    index: Any
    ids: list[str]
    manifest: dict[str, Any]


def build_index(store: storage.Store, day: dt.date, model: Encoder) -> dict[str, Any]:
    """Embed the day's clean posts with ``model`` and store the index; return the manifest."""
    posts = storage.read_frame(store, CLEAN, day)
    ids = [str(post_id) for post_id in posts["id"]]
    embeddings = model.encode(list(posts["text"]))
    index = faiss.IndexFlatIP(model.dimension)
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    store.write_bytes(_key(day, INDEX_FILE), faiss.serialize_index(index).tobytes())
    buffer = io.BytesIO()
    pd.DataFrame({"id": ids, "position": np.arange(len(ids), dtype=np.int64)}).to_parquet(
        buffer, index=False)
    store.write_bytes(_key(day, IDS_FILE), buffer.getvalue())
    manifest = {
        "date": day.isoformat(), "model": model.uri, "dimension": model.dimension,
        "posts": len(ids), "clean_fingerprint": fingerprint_posts(posts),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "index_uri": store.uri(_key(day, INDEX_FILE)),
    }
    # Written last: a reader checks its counts against the other two objects.
    storage.write_json(store, _key(day, MANIFEST_FILE), manifest)
    log.info("indexed %d posts of %s with %s into %s", len(ids), day, model.uri,
             manifest["index_uri"])
    return manifest


def _key(day: dt.date, filename: str) -> str:
    return storage.partition_key(EMBEDDINGS, day, filename)


def fingerprint_posts(posts: pd.DataFrame) -> str:
    """Return a SHA-1 over the ids and texts of ``posts``, in order."""
    digest = hashlib.sha1()
    for post_id, text in zip(posts["id"], posts["text"]):
        digest.update(f"{post_id}\t{text}\n".encode())
    return digest.hexdigest()


def indexed_days(store: storage.Store) -> list[dt.date]:
    """Return the days that have a complete index, oldest first."""
    return [day for day in storage.list_partitions(store, EMBEDDINGS)
            if all(store.exists(_key(day, name)) for name in (INDEX_FILE, IDS_FILE, MANIFEST_FILE))]


def resolve_day(store: storage.Store, day: dt.date | None) -> dt.date:
    """Return ``day``, or the latest indexed day when it is None."""
    if day is not None:
        return day
    days = indexed_days(store)
    if not days:
        raise FileNotFoundError(
            f"no index found under {store.uri(EMBEDDINGS + '/')}: build one for a day first")
    return days[-1]


def read_manifest(store: storage.Store, day: dt.date) -> dict[str, Any]:
    """Return the manifest of the day's index; raise FileNotFoundError when there is none."""
    key = _key(day, MANIFEST_FILE)
    if not store.exists(key):
        raise FileNotFoundError(
            f"index {store.uri(key)} not found: build the index for {day.isoformat()} first")
    return storage.read_json(store, key)


def load_index(store: storage.Store, day: dt.date) -> PostIndex:
    """Load the day's index, ids and manifest, and check that they agree."""
    manifest = read_manifest(store, day)
    data = store.read_bytes(_key(day, INDEX_FILE))
    index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    ids_frame = pd.read_parquet(io.BytesIO(store.read_bytes(_key(day, IDS_FILE))))
    ids = [str(post_id) for post_id in ids_frame.sort_values("position")["id"]]
    if not index.ntotal == len(ids) == manifest["posts"]:
        raise ValueError(
            f"index files for {day.isoformat()} disagree ({index.ntotal} vectors, {len(ids)} ids, "
            f"manifest {manifest['posts']} posts): build the index for that day again")
    return PostIndex(index, ids, manifest)


def search(store: storage.Store, query: str, day: dt.date | None, k: int,
           model: Encoder) -> list[tuple[str, float, str]]:
    """Return the ``k`` posts of ``day`` (default: latest indexed) nearest to ``query``.

    Each hit is (post id, cosine similarity, clean text), best first. ``model`` must be the
    model that built the index, because embeddings of two models are not comparable.
    """
    if k < 1:
        raise ValueError(f"invalid k={k}: must be at least 1")
    text = normalize_text(query)
    if not text:
        raise ValueError("query is empty after normalization: give some words to search for")
    day = resolve_day(store, day)
    loaded = load_index(store, day)
    _check_model(loaded.manifest, model)
    if loaded.index.ntotal == 0:
        log.info("index of %s is empty: no posts to search", day)
        return []

    vector = model.encode([text])
    scores, positions = loaded.index.search(vector, min(k, loaded.index.ntotal))
    texts = _clean_texts(store, day, loaded.manifest)
    hits = []
    for score, position in zip(scores[0], positions[0]):
        if position < 0:
            continue
        post_id = loaded.ids[position]
        hits.append((post_id, float(score), texts.get(post_id, "")))
    return hits


def _check_model(manifest: dict[str, Any], model: Encoder) -> None:
    if manifest["dimension"] != model.dimension:
        raise ValueError(
            f"index of {manifest['date']} has {manifest['dimension']}-dimensional embeddings from "
            f"{manifest['model']}, but {model.uri} makes {model.dimension}-dimensional ones: "
            "search with the model that built the index, or build it again")
    if manifest["model"] != model.uri:
        log.warning("index of %s was built with %s, but the query is embedded with %s: scores "
                    "are not comparable until the index is built again", manifest["date"],
                    manifest["model"], model.uri)


def _clean_texts(store: storage.Store, day: dt.date, manifest: dict[str, Any]) -> dict[str, str]:
    posts = storage.read_frame(store, CLEAN, day)
    if fingerprint_posts(posts) != manifest["clean_fingerprint"]:
        log.warning("clean_posts of %s changed after its index was built: hits may name "
                    "missing or edited posts until the index is built again", day)
    return {str(post_id): str(text) for post_id, text in zip(posts["id"], posts["text"])}

"""Retrieval steps for the CLI and the DAGs: train from a file, index a day, search posts.

Indexing and search embed with ``models:/<retrieval model>@champion``. When no version has
that alias they fall back to the untuned base model and log a warning.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from tasks import storage
from tasks.retrieve import index
from tasks.retrieve.config import RetrievalSettings, retrieval_settings
from tasks.retrieve.encoder import Encoder, load_encoder
from tasks.settings import Settings

log = logging.getLogger(__name__)


def train_retrieval_from_file(path: Path, settings: Settings, group_field: str = "event",
                              config: RetrievalSettings | None = None) -> str:
    """Fine-tune on grouped posts or (query, post) pairs in ``path``; return the model URI.

    ``config`` defaults to the ``retrieval`` section of ``settings``.
    """
    from tasks.retrieve.data import read_retrieval_file
    from tasks.retrieve.train import train_and_register_retrieval

    config = config or retrieval_settings(settings)
    path = Path(path)
    data = read_retrieval_file(path, group_field, config.max_posts_per_group, config.seed)
    tags = {"data.file": str(path.resolve()), "data.group_field": data.group_field,
            "data.mode": data.mode, "data.posts": str(len(data.frame)),
            "data.groups": str(data.frame["group"].nunique())}
    registered = train_and_register_retrieval(data, settings, config, tags)
    log.info("validation recall@1/5/10 %.4f/%.4f/%.4f, MRR %.4f, nDCG@10 %.4f",
             *(registered.metrics[key] for key in
               ("recall_at_1", "recall_at_5", "recall_at_10", "mrr", "ndcg_at_10")))
    return registered.uri


def build_index(day: str | dt.date, settings: Settings) -> dict[str, Any]:
    """Embed the day's clean posts with the serving model and store their FAISS index."""
    store = _open_store(settings)
    return index.build_index(store, _as_date(day), load_serving_encoder(settings))


def search_posts(query: str, day: str | dt.date | None, k: int,
                 settings: Settings) -> list[tuple[str, float, str]]:
    """Return the ``k`` posts of ``day`` (default: latest indexed) nearest to ``query``.

    The query is embedded with the model that built the day's index, because only
    embeddings of one model are comparable. When that is not the serving model (the champion,
    else the base model), a warning recommends building the index again.
    """
    store = _open_store(settings)
    resolved = index.resolve_day(store, None if day is None else _as_date(day))
    built_with = index.read_manifest(store, resolved)["model"]
    uri = serving_model_uri(settings)
    if uri != built_with:
        log.warning("index of %s was built with %s, not the serving model %s: searching with "
                    "%s; build the index again to use the serving model", resolved, built_with,
                    uri, built_with)
    return index.search(store, query, resolved, k, _load(built_with, settings))


def serving_model_uri(settings: Settings) -> str:
    """Return the champion version's URI (``models:/<name>/<version>``) or the base model path."""
    from tasks.registry.tracking import champion_version, configure_mlflow

    name = retrieval_settings(settings).model_name
    alias = settings.registry.champion_alias
    champion = champion_version(configure_mlflow(settings), name, alias)
    if champion is None:
        log.warning("registered model %r has no '%s' version: embedding with the untuned base "
                    "model %s", name, alias, settings.base_model_path)
        return settings.base_model_path
    return f"models:/{name}/{champion.version}"


def load_serving_encoder(settings: Settings) -> Encoder:
    """Load the champion retrieval model, or the base model when there is no champion."""
    return _load(serving_model_uri(settings), settings)


def _load(uri: str, settings: Settings) -> Encoder:
    config = retrieval_settings(settings)
    return load_encoder(uri, max_length=config.max_length, batch_size=config.encode_batch_size)


def _open_store(settings: Settings) -> storage.Store:
    return storage.open_store(settings.store, settings.s3_endpoint_url or None)


def _as_date(day: str | dt.date) -> dt.date:
    if isinstance(day, dt.date):
        return day
    try:
        return dt.date.fromisoformat(str(day)[:10])
    except ValueError as error:
        raise ValueError(f"invalid date {day!r}: use YYYY-MM-DD") from error

"""Batch scoring of a day's clean posts with the champion version of every scoring task.

One ``scores`` row per clean post contains the outputs of each task that has a champion:

- ``sentiment``: ``label``, ``confidence`` and ``prob_<label>`` (the columns of the
  registered classifier, unprefixed, as the primary task);
- any other classification task, e.g. ``emotion``: the same columns prefixed with the task
  name (``emotion_label``, ``emotion_confidence``, ``emotion_prob_joy``);
- ``entities``: one ``entities`` column, a JSON array of spans with character offsets;
- ``embedding_position``: the post's row in the day's FAISS index (null when the day has
  no index, or the index predates the current clean posts).

``model_versions`` (JSON) names the version of each model used, including the index's
embedding model, and ``model_runtimes`` (JSON, same keys) the runtime each ran on:
``torch``, ``onnx-int8`` or ``onnx-fp32``. ``model_name`` and ``model_version`` name the
sentiment model when it took part. Tasks without a champion are left out and logged.

With ``score.runtime = "onnx"``, a classifier version scores on ONNX Runtime when its
ONNX export passed the accuracy check of ``tasks.score.onnx_runtime``, and on torch
otherwise. Entity taggers and the retrieval encoder always run on torch.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import mlflow
import pandas as pd

from tasks import storage
from tasks.collect.stage import CLEAN
from tasks.registry.tracking import champion_version, configure_mlflow
from tasks.settings import Settings
from tasks.validate.suites import save_validation, validate_frame

log = logging.getLogger(__name__)

SCORES = "scores"
SHARDS = "scores_shards"  # per-shard outputs, joined into SCORES by merge_shards
PRIMARY_TASK = "sentiment"
ENTITY_TASK = "entities"
ENTITY_COLUMN = "entities"
POSITION_COLUMN = "embedding_position"
RUNTIMES_COLUMN = "model_runtimes"
TORCH = "torch"
TORCH_ONLY_TASKS = (ENTITY_TASK, "retrieval")


class NoChampionError(LookupError):
    """None of the scoring tasks has a champion version to score with."""


def champions(settings: Settings, tasks: Sequence[str]) -> dict[str, str]:
    """Return ``{task: champion version}`` for each of ``tasks`` whose model has a champion."""
    from tasks.commands import model_name

    client = configure_mlflow(settings)
    alias = settings.registry.champion_alias
    found = {}
    for task in tasks:
        version = champion_version(client, model_name(task, settings), alias)
        if version is None:
            log.info("task %s: %s has no '%s' version, left out of the scores", task,
                     model_name(task, settings), alias)
        else:
            found[task] = str(version.version)
    return found


def plan_scoring(store: storage.Store, day: dt.date, settings: Settings,
                 tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """Fix the model versions, their runtimes and the shards for scoring ``day``.

    Returns ``{"versions": {task: version}, "runtimes": {task: runtime}, "onnx_models":
    {task: artifact URI}, "shards": n, "posts": count}``. Raises NoChampionError when none
    of ``tasks`` (default ``settings.score.tasks``) has a champion. Every shard scores with
    these versions and runtimes, even if an alias moves meanwhile.
    """
    tasks = list(tasks or settings.score.tasks)
    versions = champions(settings, tasks)
    if not versions:
        alias = settings.registry.champion_alias
        raise NoChampionError(
            f"none of the scoring tasks {tasks} has a '{alias}' model version: train a model "
            f"and let the promotion gate accept it, or set the alias in the MLflow UI"
        )
    runtimes, onnx_models = plan_runtimes(settings, versions)
    posts = len(storage.read_frame(store, CLEAN, day))
    shards = max(1, math.ceil(posts / settings.score.shard_size))
    log.info("scoring %d posts of %s in %d shard(s) with %s on %s", posts, day, shards,
             versions, runtimes)
    return {"versions": versions, "runtimes": runtimes, "onnx_models": onnx_models,
            "shards": shards, "posts": posts}


def plan_runtimes(settings: Settings,
                  versions: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Return each task's runtime and, for tasks on ONNX, the URI of their ONNX model.

    With ``score.runtime = "onnx"`` each classifier version is checked once (see
    ``tasks.score.onnx_runtime``) and runs on ONNX only if the check accepted it.
    """
    runtimes = {task: TORCH for task in versions}
    onnx_models: dict[str, str] = {}
    if settings.score.runtime == TORCH:
        return runtimes, onnx_models
    from tasks.commands import model_name
    from tasks.score import onnx_runtime

    for task, version in versions.items():
        name = model_name(task, settings)
        if task in TORCH_ONLY_TASKS:
            log.info("task %s: %s v%s runs on torch: score.runtime 'onnx' applies to "
                     "classifiers only", task, name, version)
            continue
        check = onnx_runtime.ensure_checked(settings, name, version)
        if check.accepted and check.artifact:
            runtimes[task] = f"onnx-{check.runtime}"
            onnx_models[task] = check.artifact
            log.info("task %s: %s v%s runs on ONNX Runtime (%s): %s", task, name, version,
                     check.runtime, check.reason)
        else:
            log.info("task %s: %s v%s runs on torch: the ONNX check rejected it: %s", task,
                     name, version, check.reason)
    return runtimes, onnx_models


def score_shard(store: storage.Store, day: dt.date, settings: Settings, plan: dict[str, Any],
                shard: int) -> dict[str, Any]:
    """Score shard ``shard`` of the day's clean posts with the planned versions; store it."""
    from tasks.commands import model_name

    if not 0 <= shard < plan["shards"]:
        raise ValueError(f"shard {shard} is outside the plan's {plan['shards']} shards")
    # A mapped task runs in a process of its own, where MLFLOW_TRACKING_URI or
    # MLFLOW_REGISTRY_URI may name another server: models load from the configured one.
    configure_mlflow(settings)
    _set_threads(settings.score.threads)
    posts = storage.read_frame(store, CLEAN, day).reset_index(drop=True)
    size = settings.score.shard_size if plan["shards"] > 1 else max(len(posts), 1)
    posts = posts.iloc[shard * size:(shard + 1) * size].reset_index(drop=True)
    parts = [posts[["id"]]]
    for task, version in plan["versions"].items():
        uri = f"models:/{model_name(task, settings)}/{version}"
        runtime = plan.get("runtimes", {}).get(task, TORCH)
        started = time.perf_counter()
        if not len(posts):
            predictions = pd.DataFrame()
        elif runtime == TORCH:
            predictions = mlflow.pyfunc.load_model(uri).predict(
                posts[["text"]], params=_params(task, settings))
        else:
            predictions = _predict_onnx(plan["onnx_models"][task], posts, task, settings)
        log.info("shard %d/%d: %s scored %d posts with %s on %s in %.1f s", shard + 1,
                 plan["shards"], task, len(posts), uri, runtime, time.perf_counter() - started)
        parts.append(task_columns(task, predictions.reset_index(drop=True)))
    frame = pd.concat(parts, axis=1)
    key = _shard_key(day, shard, plan["shards"])
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.write_bytes(key, buffer.getvalue())
    return {"shard": shard, "count": len(frame), "uri": store.uri(key)}


def merge_shards(store: storage.Store, day: dt.date, settings: Settings,
                 plan: dict[str, Any]) -> dict[str, Any]:
    """Join the day's scored shards, add index positions and versions, validate and write."""
    from tasks.commands import model_name

    versions: dict[str, str] = plan["versions"]
    frames = [pd.read_parquet(io.BytesIO(store.read_bytes(_shard_key(day, shard, plan["shards"]))))
              for shard in range(plan["shards"])]
    scores = pd.concat(frames, ignore_index=True)
    posts = storage.read_frame(store, CLEAN, day).reset_index(drop=True)
    if list(scores["id"].astype(str)) != list(posts["id"].astype(str)):
        raise ValueError(f"the scored shards of {day} do not match its clean posts (changed "
                         "since planning?): run the scoring again")

    positions, embedding_model = embedding_positions(store, day, posts)
    scores[POSITION_COLUMN] = pd.array(
        [positions.get(str(post_id)) for post_id in scores["id"]], dtype="Int64")
    used = dict(versions)
    runtimes = {task: plan.get("runtimes", {}).get(task, TORCH) for task in versions}
    if embedding_model:
        used["retrieval"] = embedding_model
        runtimes["retrieval"] = TORCH
    scores["model_versions"] = json.dumps(used, sort_keys=True)
    scores[RUNTIMES_COLUMN] = json.dumps(runtimes, sort_keys=True)
    if PRIMARY_TASK in versions:
        scores["model_name"] = model_name(PRIMARY_TASK, settings)
        scores["model_version"] = versions[PRIMARY_TASK]
    scores["scored_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    _validate(store, day, scores, versions)
    uri = storage.write_frame(store, SCORES, day, scores)
    result: dict[str, Any] = {"scores": uri, "count": len(scores), "models": used,
                              "runtimes": runtimes, "shards": plan["shards"],
                              "indexed": int(scores[POSITION_COLUMN].notna().sum())}
    if PRIMARY_TASK in versions:
        result["model_version"] = versions[PRIMARY_TASK]
    return result


def score_partition(store: storage.Store, day: dt.date, settings: Settings,
                    tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """Score the day's clean posts with each task's champion; replace the day's scores.

    ``tasks`` defaults to ``settings.score.tasks``. Raises NoChampionError when none of
    them has a champion. The shards run one after another here; the DAG maps them.
    """
    plan = plan_scoring(store, day, settings, tasks)
    if plan["posts"] == 0:
        log.warning("no clean posts for %s: writing an empty scores partition", day)
    for shard in range(plan["shards"]):
        score_shard(store, day, settings, plan, shard)
    return merge_shards(store, day, settings, plan)


def _shard_key(day: dt.date, shard: int, shards: int) -> str:
    return storage.partition_key(SHARDS, day, f"shard-{shard:05d}-of-{shards:05d}.parquet")


def _params(task: str, settings: Settings) -> dict[str, Any] | None:
    """Inference params for the task's pyfunc model (batch size; windows for entities)."""
    return {"batch_size": settings.score.batch_size}


def _predict_onnx(artifact: str, posts: pd.DataFrame, task: str,
                 settings: Settings) -> pd.DataFrame:
    """Score ``posts`` with the accepted ONNX model logged at ``artifact``."""
    from tasks.score import onnx_runtime

    classifier = onnx_runtime.load_classifier(artifact, settings.score.threads)
    return classifier.predict(list(posts["text"]), _params(task, settings))


def _set_threads(threads: int) -> None:
    import torch

    count = threads or os.cpu_count() or 1
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def task_columns(task: str, predictions: pd.DataFrame) -> pd.DataFrame:
    """Name one task's prediction columns as they appear in the scores partition."""
    if task == ENTITY_TASK:
        return predictions.rename(columns={"spans": ENTITY_COLUMN})
    if task == PRIMARY_TASK:
        return predictions
    return predictions.add_prefix(f"{task}_")


def embedding_positions(store: storage.Store, day: dt.date,
                        posts: pd.DataFrame) -> tuple[dict[str, int], str | None]:
    """Return each post id's row in the day's index and the model that built it.

    Empty when the day has no index, or when its index was built from other clean posts
    than ``posts`` (then the positions would point at the wrong rows).
    """
    from tasks.retrieve import index

    try:
        loaded = index.load_index(store, day)
    except FileNotFoundError:
        log.warning("no embedding index for %s: embedding_position stays empty", day)
        return {}, None
    if loaded.manifest["clean_fingerprint"] != index.fingerprint_posts(posts):
        log.warning("the embedding index of %s was built from other clean posts: "
                    "embedding_position stays empty until the index is built again", day)
        return {}, None
    return {post_id: position for position, post_id in enumerate(loaded.ids)}, \
        str(loaded.manifest["model"])


def _validate(store: storage.Store, day: dt.date, scores: pd.DataFrame,
              versions: dict[str, str]) -> None:
    """Run the scores suite on the partition and the predictions suite per classifier."""
    reports = [validate_frame(scores, SCORES)]
    for task in versions:
        prefix = "" if task == PRIMARY_TASK else f"{task}_"
        label, confidence = f"{prefix}label", f"{prefix}confidence"
        if task == ENTITY_TASK or label not in scores.columns:
            continue  # spans, or a multi-label classifier without a single label
        labels = [column.removeprefix(f"{prefix}prob_") for column in scores.columns
                  if column.startswith(f"{prefix}prob_")]
        view = scores[[label, confidence]].rename(columns={label: "label",
                                                           confidence: "confidence"})
        report = validate_frame(view, "predictions", {"label_set": labels})
        report.suite = f"predictions_{task}"
        reports.append(report)
    for report in reports:
        save_validation(store, day, report)
    for report in reports:
        report.raise_for_critical()

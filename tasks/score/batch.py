"""Batch scoring of a day's clean posts with the champion model version."""

from __future__ import annotations

import datetime as dt
import logging

import mlflow
import pandas as pd

from tasks import storage
from tasks.collect.stage import CLEAN
from tasks.registry.tracking import champion_version, configure_mlflow
from tasks.settings import Settings
from tasks.validate.suites import save_validation, validate_frame

log = logging.getLogger(__name__)

SCORES = "scores"


class NoChampionError(LookupError):
    """The registered model has no champion version to score with."""


def score_partition(store: storage.Store, day: dt.date, settings: Settings,
                    model_name: str) -> dict[str, str | int]:
    """Score the day's clean posts with ``models:/<model_name>@champion``; replace the scores."""
    client = configure_mlflow(settings)
    alias = settings.registry.champion_alias
    champion = champion_version(client, model_name, alias)
    if champion is None:
        raise NoChampionError(
            f"registered model {model_name!r} has no '{alias}' alias: train a model and let "
            f"the promotion gate accept it, or set the alias in the MLflow UI"
        )
    posts = storage.read_frame(store, CLEAN, day)
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@{alias}")
    log.info("scoring %d posts of %s with %s v%s", len(posts), day, model_name, champion.version)
    if posts.empty:
        log.warning("no clean posts for %s: writing an empty scores partition", day)
    predictions = model.predict(posts[["text"]])

    scores = pd.concat([posts[["id"]].reset_index(drop=True), predictions], axis=1)
    scores["model_name"] = model_name
    scores["model_version"] = str(champion.version)
    scores["scored_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    labels = [c.removeprefix("prob_") for c in scores.columns if c.startswith("prob_")]
    report = validate_frame(scores, "scores", {"label_set": labels})
    save_validation(store, day, report)
    report.raise_for_critical()
    uri = storage.write_frame(store, SCORES, day, scores)
    return {"scores": uri, "count": len(scores), "model_version": str(champion.version)}

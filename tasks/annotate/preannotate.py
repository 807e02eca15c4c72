"""Pre-annotations for exported tasks from the champion model of each annotation task.

The champion is the model version that the ``champion`` alias of the task's registered
model points to. MLflow is imported only when a champion is looked up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tasks.annotate.formats import ENTITIES, SENTIMENT, Prediction
from tasks.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Champion:
    """A loaded champion model and the registered version it came from."""

    name: str
    version: str
    model: Any  # an mlflow.pyfunc.PyFuncModel

    @property
    def model_version(self) -> str:
        return f"{self.name}/{self.version}"


def task_model_name(task: str, settings: Settings) -> str:
    """Return the registered model name that pre-annotates ``task``."""
    if task == ENTITIES:
        from tasks.extract.commands import entity_model_name

        return entity_model_name(settings)
    return settings.registry.sentiment_model


def load_champion(task: str, settings: Settings) -> Champion | None:
    """Load the champion of ``task``'s registered model, or return None when it has none."""
    import mlflow

    from tasks.registry.tracking import champion_version, configure_mlflow

    client = configure_mlflow(settings)
    name, alias = task_model_name(task, settings), settings.registry.champion_alias
    version = champion_version(client, name, alias)
    if version is None:
        log.warning("registered model %s has no '%s' version: exporting %s tasks without "
                    "pre-annotations", name, alias, task)
        return None
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    log.info("pre-annotating %s tasks with %s version %s", task, name, version.version)
    return Champion(name, str(version.version), model)


def predict_posts(champion: Champion, task: str, texts: Sequence[str],
                  entity_types: Sequence[str] = ()) -> list[Prediction]:
    """Return the champion's prediction for each text.

    Entity spans of a type outside ``entity_types`` (when given) are dropped with a
    warning, because the labeling config offers only those types.
    """
    if not texts:
        return []
    output = champion.model.predict(pd.DataFrame({"text": list(texts)}))
    if task == SENTIMENT:
        return [Prediction(champion.model_version, label=str(label), score=round(float(score), 4))
                for label, score in zip(output["label"], output["confidence"])]
    predictions = []
    for found in output["spans"]:
        predicted = json.loads(found)
        spans = [span for span in predicted if not entity_types or span["type"] in entity_types]
        dropped = len(predicted) - len(spans)
        if dropped:
            log.warning("dropped %d predicted spans whose type is not in %s", dropped,
                        list(entity_types))
        predictions.append(Prediction(champion.model_version, spans=spans, score=_min_score(spans)))
    return predictions


def _min_score(spans: list[dict[str, Any]]) -> float | None:
    # NOTE: the tagger gives scores per span only, so a post without predicted spans has
    # no score, and the post's score is its least certain span.
    scores = [float(span["score"]) for span in spans if span.get("score") is not None]
    return round(min(scores), 4) if scores else None

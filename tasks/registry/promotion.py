"""The promotion gate: when a newly registered version may become the champion.

A candidate becomes champion only if its macro-F1 on its validation set reaches the floor
and is no worse than the current champion's macro-F1 on that same set (minus a tolerance).
The decision and its reasons are written onto the candidate's model version as tags.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from tasks.evaluate.classification import classification_metrics
from tasks.registry.tracking import champion_version, configure_mlflow, latest_version
from tasks.settings import Settings
from tasks.train.pipeline import EVALUATION_ARTIFACT

log = logging.getLogger(__name__)

DECISION_TAG = "promotion_decision"


@dataclass
class PromotionDecision:
    """Gate decision for one candidate version, with its reasons and metrics."""

    model: str
    candidate: str | None
    champion_before: str | None
    champion_after: str | None
    promoted: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def promote_latest(settings: Settings, model_name: str) -> PromotionDecision:
    """Run the gate on the newest version of ``model_name`` unless it was decided before."""
    client = configure_mlflow(settings)
    alias = settings.registry.champion_alias
    champion = champion_version(client, model_name, alias)
    candidate = latest_version(client, model_name)
    before = None if champion is None else str(champion.version)
    if candidate is None:
        return PromotionDecision(model_name, None, before, before, False,
                                 [f"no version of {model_name} is registered yet"])
    if before == str(candidate.version) or DECISION_TAG in (candidate.tags or {}):
        champion_text = f"version {before}" if before else "unset"
        reason = f"version {candidate.version} was already decided; champion stays {champion_text}"
        return PromotionDecision(model_name, str(candidate.version), before, before, False, [reason])
    return decide(client, settings, model_name, candidate, champion)


def decide(client: Any, settings: Settings, model_name: str, candidate: Any,
           champion: Any | None) -> PromotionDecision:
    """Compare ``candidate`` with ``champion`` on the candidate's validation set and record it."""
    gate = settings.registry
    evaluation = load_evaluation_set(candidate.run_id)
    labels = _labels_of(candidate.run_id)
    candidate_f1 = float(client.get_run(candidate.run_id).data.metrics["macro_f1"])
    metrics = {"candidate_macro_f1": candidate_f1}
    reasons, passed = [], candidate_f1 >= gate.macro_f1_floor
    reasons.append(f"macro-F1 {candidate_f1:.4f} {'>=' if passed else '<'} floor {gate.macro_f1_floor}")

    if champion is None:
        reasons.append("no champion yet: the floor is the only check")
    else:
        champion_f1 = evaluate_model(f"models:/{model_name}/{champion.version}", evaluation, labels)["macro_f1"]
        metrics["champion_macro_f1"] = champion_f1
        better = candidate_f1 >= champion_f1 - gate.regression_tolerance
        passed = passed and better
        reasons.append(
            f"macro-F1 {candidate_f1:.4f} vs champion v{champion.version} {champion_f1:.4f} on the "
            f"same {len(evaluation)} posts: {'no regression' if better else 'regression'} "
            f"(tolerance {gate.regression_tolerance})"
        )

    before = None if champion is None else str(champion.version)
    if passed:
        client.set_registered_model_alias(model_name, gate.champion_alias, candidate.version)
    decision = PromotionDecision(model_name, str(candidate.version), before,
                                 str(candidate.version) if passed else before, passed, reasons, metrics)
    _record(client, decision)
    return decision


def _record(client: Any, decision: PromotionDecision) -> None:
    verdict = "promoted" if decision.promoted else "rejected"
    text = f"{verdict}: " + "; ".join(decision.reasons)
    client.set_model_version_tag(decision.model, decision.candidate, DECISION_TAG, verdict)
    client.set_model_version_tag(decision.model, decision.candidate, "promotion_reasons", text)
    for key, value in decision.metrics.items():
        client.set_model_version_tag(decision.model, decision.candidate, key, f"{value:.4f}")
    client.update_model_version(decision.model, decision.candidate, description=text)
    log.info("%s v%s %s", decision.model, decision.candidate, text)


def load_evaluation_set(run_id: str) -> pd.DataFrame:
    """Download the validation posts that the run was evaluated on."""
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=EVALUATION_ARTIFACT,
                                                   dst_path=folder)
        return pd.read_parquet(Path(path))


def _labels_of(run_id: str) -> list[str]:
    return mlflow.get_run(run_id).data.params["labels"].split(",")


def evaluate_model(model_uri: str, evaluation: pd.DataFrame, labels: list[str]) -> dict[str, float]:
    """Return classification metrics of the model at ``model_uri`` on ``evaluation``."""
    model = mlflow.pyfunc.load_model(model_uri)
    predicted = model.predict(evaluation[["text"]])["label"]
    return classification_metrics(list(evaluation["label"]), list(predicted), labels)

"""The promotion gate: when a newly registered version may become the champion.

Each kind of model has one main metric: macro-F1 for classifiers, span F1 (micro) for
entity taggers, recall@10 for retrieval models. A candidate becomes champion only if its
metric on its own validation set reaches the floor, and is no worse than the current
champion's metric on that same frozen set (minus a tolerance). A retrieval candidate must
also be no worse than the untuned base model on that set. The decision and its reasons are
written onto the candidate's model version as tags and description.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@dataclass(frozen=True)
class Gate:
    """What the gate compares for one kind of model.

    ``measure(model_uri, run_id)`` returns the metric of the model at ``model_uri`` on the
    frozen evaluation set logged with run ``run_id`` (the candidate's run).
    """

    metric: str
    title: str
    floor: float
    measure: Callable[[str, str], float]
    baseline_metric: str | None = None


def gate_for(task: str, settings: Settings) -> Gate:
    """Return the gate of ``task``: 'entities', 'retrieval' or a classification task."""
    registry = settings.registry
    if task == "entities":
        return Gate("micro_f1", "span F1", registry.span_f1_floor, measure_span_f1)
    if task == "retrieval":
        return Gate("recall_at_10", "recall@10", registry.recall_at_10_floor,
                    measure_recall_at_10, baseline_metric="base_recall_at_10")
    return Gate("macro_f1", "macro-F1", registry.macro_f1_floor, measure_macro_f1)


def promote_latest(settings: Settings, model_name: str,
                   gate: Gate | None = None) -> PromotionDecision:
    """Run ``gate`` (default: classification) on the newest version of ``model_name``.

    A version that was decided before is not decided again.
    """
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
    return decide(client, settings, model_name, candidate, champion,
                  gate or gate_for("classification", settings))


def decide(client: Any, settings: Settings, model_name: str, candidate: Any,
           champion: Any | None, gate: Gate) -> PromotionDecision:
    """Compare ``candidate`` with ``champion`` on the candidate's evaluation set and record it."""
    tolerance = settings.registry.regression_tolerance
    run_metrics = client.get_run(candidate.run_id).data.metrics
    if gate.metric not in run_metrics:
        raise ValueError(f"run {candidate.run_id} of {model_name} v{candidate.version} has no "
                         f"metric {gate.metric!r}: is it a model of another kind?")
    value = float(run_metrics[gate.metric])
    metrics = {f"candidate_{gate.metric}": value}
    passed = value >= gate.floor
    reasons = [f"{gate.title} {value:.4f} {'>=' if passed else '<'} floor {gate.floor}"]

    if gate.baseline_metric and gate.baseline_metric in run_metrics:
        base = float(run_metrics[gate.baseline_metric])
        metrics[gate.baseline_metric] = base
        better = value >= base - tolerance
        passed = passed and better
        reasons.append(f"{gate.title} {value:.4f} vs the untuned base model {base:.4f}: "
                       f"{'no regression' if better else 'regression'} (tolerance {tolerance})")
    if champion is None:
        reasons.append("no champion yet: nothing to compare with")
    else:
        champion_uri = f"models:/{model_name}/{champion.version}"
        champion_value = gate.measure(champion_uri, candidate.run_id)
        metrics[f"champion_{gate.metric}"] = champion_value
        better = value >= champion_value - tolerance
        passed = passed and better
        reasons.append(
            f"{gate.title} {value:.4f} vs champion v{champion.version} {champion_value:.4f} on "
            f"the candidate's evaluation set: {'no regression' if better else 'regression'} "
            f"(tolerance {tolerance})"
        )

    before = None if champion is None else str(champion.version)
    if passed:
        client.set_registered_model_alias(model_name, settings.registry.champion_alias,
                                          candidate.version)
    decision = PromotionDecision(model_name, str(candidate.version), before,
                                 str(candidate.version) if passed else before, passed, reasons,
                                 metrics)
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


@contextmanager
def _downloaded(run_id: str, artifact_path: str) -> Iterator[Path]:
    """Download one artifact of run ``run_id`` into a temporary folder for the block."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                       dst_path=folder))


def load_evaluation_set(run_id: str) -> pd.DataFrame:
    """Download the validation posts that the classifier run was evaluated on."""
    with _downloaded(run_id, EVALUATION_ARTIFACT) as path:
        return pd.read_parquet(path)


def measure_macro_f1(model_uri: str, run_id: str) -> float:
    """Macro-F1 of the classifier at ``model_uri`` on run ``run_id``'s validation posts."""
    return evaluate_model(model_uri, load_evaluation_set(run_id), _labels_of(run_id))["macro_f1"]


def measure_span_f1(model_uri: str, run_id: str) -> float:
    """Span F1 (micro) of the entity tagger at ``model_uri`` on run ``run_id``'s CoNLL set."""
    from tasks.extract.conll import read_conll
    from tasks.extract.metrics import span_metrics
    from tasks.extract.train import EVALUATION_CONLL

    with _downloaded(run_id, EVALUATION_CONLL) as path:
        posts = read_conll(path)
    tagger = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    tagged = tagger.predict_tags([post.tokens for post in posts])
    predicted = [[tag for tag, _ in tags] for tags in tagged]
    return span_metrics([post.tags for post in posts], predicted)["micro_f1"]


def measure_recall_at_10(model_uri: str, run_id: str) -> float:
    """Recall@10 of the retrieval model at ``model_uri`` on run ``run_id``'s held-out groups.

    The queries are rebuilt from the logged posts with the run's own mode, queries per
    group and seed, so they are the ones the candidate was measured on.
    """
    from tasks.retrieve.encoder import load_encoder
    from tasks.retrieve.evaluate import build_evaluation_set, evaluate_encoder
    from tasks.retrieve.train import EVALUATION_ARTIFACT as RETRIEVAL_EVALUATION

    params = mlflow.get_run(run_id).data.params
    with _downloaded(run_id, RETRIEVAL_EVALUATION) as path:
        frame = pd.read_parquet(path)
    evaluation = build_evaluation_set(frame, params["mode"],
                                      int(params["retrieval.queries_per_group"]),
                                      int(params["retrieval.seed"]))
    return evaluate_encoder(load_encoder(model_uri), evaluation)["recall_at_10"]


def _labels_of(run_id: str) -> list[str]:
    return mlflow.get_run(run_id).data.params["labels"].split(",")


def evaluate_model(model_uri: str, evaluation: pd.DataFrame, labels: list[str]) -> dict[str, float]:
    """Return classification metrics of the model at ``model_uri`` on ``evaluation``."""
    model = mlflow.pyfunc.load_model(model_uri)
    predictions = model.predict(evaluation[["text"]])
    if "labels" in predictions.columns:  # a multi-label model
        from tasks.evaluate.classification import multi_label_output_metrics

        return multi_label_output_metrics(evaluation, predictions, labels)
    return classification_metrics(list(evaluation["label"]), list(predictions["label"]), labels)

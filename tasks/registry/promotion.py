"""The promotion gate: validate a new model version, then deploy it as champion.

Each kind of model has one main metric: macro-F1 for classifiers, span F1 (micro) for
entity taggers, recall@10 for retrieval models. **Validation** checks the newest version
(the candidate) on its own frozen evaluation set, logged with its run:

- the main metric reaches the floor in ``registry``;
- it is no lower than the current champion's on the same set (the champion is measured
  again there), minus ``registry.regression_tolerance``; a retrieval candidate is also
  compared with the untuned base model;
- no class (or span type) has an F1 lower than the champion's by more than
  ``registry.class_tolerance``;
- the data it was trained on passed its data-quality suite (run tag ``data_quality``).

A candidate that passes gets the ``challenger`` alias. **Deployment** moves ``champion``
to the challenger. Every decision, the metrics compared and the reasons are written onto
the model version as tags and description. ``rollback`` returns ``champion`` to the
version it replaced and records why.
"""

from __future__ import annotations

import datetime as dt
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
from tasks.validate.training_data import DATA_QUALITY_TAG, NOT_CHECKED, PASSED

log = logging.getLogger(__name__)

DECISION_TAG = "promotion_decision"
REASONS_TAG = "promotion_reasons"
PREVIOUS_TAG = "previous_champion"
PROMOTED = "promoted"
REJECTED = "rejected"
CHALLENGER = "challenger"


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
    status: str = ""  # "challenger", "rejected", "promoted", "decided before", "no candidate"


@dataclass(frozen=True)
class Gate:
    """The checks of the gate for one kind of model.

    ``measure(model_uri, run_id)`` returns the metrics of the model at ``model_uri`` on the
    frozen evaluation set logged with run ``run_id`` (the candidate's run). Keys starting
    with ``per_class_prefix`` are per-class (or per-type) scores.
    """

    metric: str
    title: str
    floor: float
    measure: Callable[[str, str], dict[str, float]]
    baseline_metric: str | None = None
    per_class_prefix: str | None = None


def gate_for(task: str, settings: Settings) -> Gate:
    """Return the gate of ``task``: 'entities', 'retrieval' or a classification task."""
    registry = settings.registry
    if task == "entities":
        return Gate("micro_f1", "span F1", registry.span_f1_floor, measure_tagger,
                    per_class_prefix="f1_")
    if task == "retrieval":
        return Gate("recall_at_10", "recall@10", registry.recall_at_10_floor,
                    measure_encoder, baseline_metric="base_recall_at_10")
    return Gate("macro_f1", "macro-F1", registry.macro_f1_floor, measure_classifier,
                per_class_prefix="f1_")


def promote_latest(settings: Settings, model_name: str,
                   gate: Gate | None = None) -> PromotionDecision:
    """Validate the newest version of ``model_name`` and deploy it if it passes."""
    decision = validate_latest(settings, model_name, gate)
    if decision.status == REJECTED:
        return decision
    client = configure_mlflow(settings)
    if champion_version(client, model_name, CHALLENGER) is None:
        return decision
    return deploy_challenger(settings, model_name)


def validate_latest(settings: Settings, model_name: str,
                    gate: Gate | None = None) -> PromotionDecision:
    """Run ``gate`` (default: classification) on the newest version of ``model_name``.

    A candidate that passes gets the challenger alias. A version that was decided before
    is not decided again.
    """
    client = configure_mlflow(settings)
    champion = champion_version(client, model_name, settings.registry.champion_alias)
    candidate = latest_version(client, model_name)
    before = None if champion is None else str(champion.version)
    if candidate is None:
        return PromotionDecision(model_name, None, before, before, False,
                                 [f"no version of {model_name} is registered yet"],
                                 status="no candidate")
    if before == str(candidate.version) or DECISION_TAG in (candidate.tags or {}):
        champion_text = f"version {before}" if before else "unset"
        reason = f"version {candidate.version} was already decided; champion stays {champion_text}"
        return PromotionDecision(model_name, str(candidate.version), before, before, False,
                                 [reason], status="decided before")
    return decide(client, settings, model_name, candidate, champion,
                  gate or gate_for("classification", settings))


def decide(client: Any, settings: Settings, model_name: str, candidate: Any,
           champion: Any | None, gate: Gate) -> PromotionDecision:
    """Check ``candidate`` against the floor, the champion and its data; record the result.

    A candidate that passes gets the challenger alias (champion does not move yet); one
    that fails is tagged rejected with its reasons.
    """
    run = client.get_run(candidate.run_id)
    run_metrics = run.data.metrics
    if gate.metric not in run_metrics:
        raise ValueError(f"run {candidate.run_id} of {model_name} v{candidate.version} has no "
                         f"metric {gate.metric!r}: is it a model of another kind?")
    value = float(run_metrics[gate.metric])
    checks = _Checks(settings.registry.regression_tolerance)
    checks.metrics[f"candidate_{gate.metric}"] = value
    checks.add(value >= gate.floor,
               f"{gate.title} {value:.4f} {'>=' if value >= gate.floor else '<'} floor {gate.floor}")
    if gate.baseline_metric and gate.baseline_metric in run_metrics:
        checks.compare(gate.title, value, float(run_metrics[gate.baseline_metric]),
                       "the untuned base model", gate.baseline_metric)
    if champion is None:
        checks.reasons.append("first version: no champion to compare with")
    else:
        measured = gate.measure(f"models:/{model_name}/{champion.version}", candidate.run_id)
        checks.compare(gate.title, value, measured[gate.metric], f"champion v{champion.version}",
                       f"champion_{gate.metric}", " on the candidate's evaluation set")
        if gate.per_class_prefix:
            checks.per_class(gate.per_class_prefix, run_metrics, measured,
                             settings.registry.class_tolerance)
    checks.data_quality(run.data.tags.get(DATA_QUALITY_TAG))

    before = None if champion is None else str(champion.version)
    status = CHALLENGER if checks.passed else REJECTED
    if checks.passed:
        client.set_registered_model_alias(model_name, CHALLENGER, candidate.version)
    decision = PromotionDecision(model_name, str(candidate.version), before, before, False,
                                 checks.reasons, checks.metrics, status)
    _record(client, decision)
    return decision


class _Checks:
    """Outcome, reasons and metrics of the gate's checks, gathered one check at a time."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.passed = True
        self.reasons: list[str] = []
        self.metrics: dict[str, float] = {}

    def add(self, ok: bool, reason: str) -> None:
        self.passed = self.passed and ok
        self.reasons.append(reason)

    def compare(self, title: str, value: float, other: float, name: str, key: str,
                where: str = "") -> None:
        self.metrics[key] = other
        ok = value >= other - self.tolerance
        self.add(ok, f"{title} {value:.4f} vs {name} {other:.4f}{where}: "
                     f"{'no regression' if ok else 'regression'} (tolerance {self.tolerance})")

    def per_class(self, prefix: str, candidate: dict[str, float], champion: dict[str, float],
                  tolerance: float) -> None:
        worse = []
        for key in sorted(k for k in champion if k.startswith(prefix)):
            if key not in candidate:
                continue
            drop = champion[key] - float(candidate[key])
            if drop > tolerance:
                worse.append(f"{key.removeprefix(prefix)} {float(candidate[key]):.4f} vs "
                             f"{champion[key]:.4f}")
        self.add(not worse, f"per-class F1 within {tolerance} of the champion" if not worse
                 else f"per-class F1 more than {tolerance} below the champion: " + ", ".join(worse))

    def data_quality(self, tag: str | None) -> None:
        if tag is None:
            self.add(False, "no data-quality result for the training data: train again with "
                            "this version of Social Pulse, which records one")
        elif tag.startswith(NOT_CHECKED):
            self.reasons.append(f"training data {tag}")
        else:
            self.add(tag == PASSED, f"training data quality {tag}")


def deploy_challenger(settings: Settings, model_name: str) -> PromotionDecision:
    """Move ``champion`` to the ``challenger`` version and record the decision on it."""
    client = configure_mlflow(settings)
    alias = settings.registry.champion_alias
    challenger = champion_version(client, model_name, CHALLENGER)
    champion = champion_version(client, model_name, alias)
    before = None if champion is None else str(champion.version)
    if challenger is None:
        return PromotionDecision(model_name, None, before, before, False,
                                 [f"{model_name} has no '{CHALLENGER}' version to deploy"],
                                 status="no candidate")
    version = str(challenger.version)
    client.set_registered_model_alias(model_name, alias, version)
    client.delete_registered_model_alias(model_name, CHALLENGER)
    tags = challenger.tags or {}
    reasons = tags.get(REASONS_TAG, "").removeprefix(f"{CHALLENGER}: ").split("; ")
    reasons.append(f"deployed: champion moved from {'v' + before if before else 'unset'} "
                   f"to v{version}")
    metrics = {key: float(value) for key, value in tags.items()
               if key.startswith(("candidate_", "champion_", "base_"))}
    client.set_model_version_tag(model_name, version, PREVIOUS_TAG, before or "")
    client.set_model_version_tag(model_name, version, "promoted_at", _now())
    if before:
        client.set_model_version_tag(model_name, before, "replaced_by", version)
    decision = PromotionDecision(model_name, version, before, version, True, reasons, metrics,
                                 PROMOTED)
    _record(client, decision)
    return decision


def rollback(settings: Settings, model_name: str, reason: str) -> dict[str, Any]:
    """Return ``champion`` to the version the current champion replaced; record ``reason``."""
    if not reason.strip():
        raise ValueError("give the reason for the rollback: it is recorded on both versions")
    client = configure_mlflow(settings)
    alias = settings.registry.champion_alias
    current = champion_version(client, model_name, alias)
    if current is None:
        raise LookupError(f"{model_name} has no '{alias}' version to roll back")
    previous = (current.tags or {}).get(PREVIOUS_TAG, "")
    if not previous:
        raise LookupError(f"{model_name} v{current.version} replaced no earlier champion "
                          "(first version, or set by hand): set the alias in MLflow instead")
    version = str(current.version)
    client.set_registered_model_alias(model_name, alias, previous)
    when = _now()
    client.set_model_version_tag(model_name, version, DECISION_TAG, "rolled back")
    client.set_model_version_tag(model_name, version, "rollback_reason", reason)
    client.set_model_version_tag(model_name, version, "rolled_back_at", when)
    client.update_model_version(model_name, version,
                                description=f"rolled back at {when}: {reason}")
    client.set_model_version_tag(model_name, previous, "restored_at", when)
    client.update_model_version(model_name, previous, description=(
        f"champion again since {when}, after a rollback from v{version}: {reason}"))
    log.info("%s: champion rolled back from v%s to v%s: %s", model_name, version, previous,
             reason)
    return {"model": model_name, "rolled_back": version, "champion": previous,
            "reason": reason, "at": when}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _record(client: Any, decision: PromotionDecision) -> None:
    text = f"{decision.status}: " + "; ".join(decision.reasons)
    verdict = {CHALLENGER: CHALLENGER, REJECTED: REJECTED, PROMOTED: PROMOTED}[decision.status]
    client.set_model_version_tag(decision.model, decision.candidate, DECISION_TAG, verdict)
    client.set_model_version_tag(decision.model, decision.candidate, REASONS_TAG, text[:4000])
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


def measure_classifier(model_uri: str, run_id: str) -> dict[str, float]:
    """Return the metrics of the classifier at ``model_uri`` on run ``run_id``'s validation posts."""
    return evaluate_model(model_uri, load_evaluation_set(run_id), _labels_of(run_id))


def measure_tagger(model_uri: str, run_id: str) -> dict[str, float]:
    """Return the span metrics of the entity tagger at ``model_uri`` on run ``run_id``'s CoNLL set."""
    from tasks.extract.conll import read_conll
    from tasks.extract.metrics import span_metrics
    from tasks.extract.train import EVALUATION_CONLL

    with _downloaded(run_id, EVALUATION_CONLL) as path:
        posts = read_conll(path)
    tagger = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    tagged = tagger.predict_tags([post.tokens for post in posts])
    predicted = [[tag for tag, _ in tags] for tags in tagged]
    return span_metrics([post.tags for post in posts], predicted)


def measure_encoder(model_uri: str, run_id: str) -> dict[str, float]:
    """Return the retrieval metrics of the model at ``model_uri`` on run ``run_id``'s held-out groups.

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
    return evaluate_encoder(load_encoder(model_uri), evaluation)


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

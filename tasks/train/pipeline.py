"""Train, evaluate, log to MLflow and register one text classifier version."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from transformers import TrainerCallback

from tasks.evaluate.classification import (
    classification_metrics,
    multi_label_metrics,
    plot_confusion_matrix,
    plot_label_confusion,
)
from tasks.registry.pyfunc import TextClassifierModel
from tasks.registry.tracking import code_version, configure_mlflow
from tasks.settings import Settings
from tasks.train.classifier import train_classifier
from tasks.train.distributed import is_main_process, work_folder
from tasks.train.multilabel import labels_above, predict_label_probabilities
from tasks.validate.training_data import check_training_set, log_data_quality

log = logging.getLogger(__name__)

EVALUATION_ARTIFACT = "evaluation/validation.parquet"


@dataclass
class RegisteredVersion:
    """A model version in the MLflow registry, with the metrics it was registered with."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class MlflowEpochLogger(TrainerCallback):
    """Log the Trainer's loss and evaluation metrics to the active MLflow run."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        if numbers:
            mlflow.log_metrics({f"trainer/{k}": v for k, v in numbers.items()}, step=state.global_step)


def train_and_register(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    labels: Sequence[str],
    settings: Settings,
    model_name: str,
    data_tags: dict[str, str],
    multi_label: bool = False,
    pseudo_labels: pd.DataFrame | None = None,
) -> RegisteredVersion | None:
    """Fine-tune on ``train``, evaluate on ``validation``, and register a new model version.

    The validation set is logged with the run, so promotion can later compare the current
    champion on exactly the same posts. With ``multi_label``, the frames have a ``labels``
    column of label lists instead of ``label``. ``pseudo_labels`` (columns text, label)
    are added to the training posts only, and the run's params count them
    (``pseudo_labels.used`` and one ``pseudo_labels.used.<label>`` per label).

    Under torchrun or ``accelerate launch`` only rank 0 evaluates, logs and registers;
    the other ranks train and return None.
    """
    label_column = "labels" if multi_label else "label"
    _check_labels(train, labels, "train", label_column)
    _check_labels(validation, labels, "validation", label_column)
    train, pseudo_params = _add_pseudo_labels(train, pseudo_labels, labels, multi_label)
    if not is_main_process():
        # Under torchrun this rank trains alongside rank 0, which logs and registers.
        with work_folder("pulse-train-") as workdir:
            train_classifier(train, validation, labels, settings.base_model_path,
                             settings.train, workdir, multi_label=multi_label)
        return None
    configure_mlflow(settings)
    tags = {"task": model_name, "code_version": code_version(), **data_tags}

    with mlflow.start_run(run_name=f"train-{model_name}", tags=tags) as run, \
            work_folder("pulse-train-") as workdir:
        mlflow.log_params({**_params(settings, train, validation, labels),
                           "multi_label": multi_label, **pseudo_params})
        log_data_quality(check_training_set(train, validation, labels, multi_label))
        trained = train_classifier(
            train, validation, labels, settings.base_model_path, settings.train,
            workdir, callbacks=[MlflowEpochLogger()], multi_label=multi_label,
        )
        metrics = _evaluate_and_log(trained.model_dir, validation, labels, settings, multi_label)
        mlflow.log_metric("train_seconds", trained.train_seconds)
        threshold = settings.train.multi_label_threshold if multi_label else None
        model_info = _log_model(trained.model_dir, model_name, validation, labels, threshold)

    registered = RegisteredVersion(
        model_name, str(model_info.registered_model_version), run.info.run_id, metrics
    )
    _tag_version(registered, tags, settings)
    log.info("registered %s (macro-F1 %.3f, macro-recall %.3f)", registered.uri,
             metrics["macro_f1"], metrics["macro_recall"])
    return registered


def _add_pseudo_labels(train: pd.DataFrame, pseudo_labels: pd.DataFrame | None,
                       labels: Sequence[str], multi_label: bool
                       ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return ``train`` with the pseudo labels appended, and the params that count them.

    Raises ValueError for pseudo labels on a multi-label task, which has none, and for
    pseudo labels outside ``labels``.
    """
    if pseudo_labels is None or pseudo_labels.empty:
        return train, {"pseudo_labels.used": 0}
    if multi_label:
        raise ValueError("pseudo labels are single-label: a multi-label task cannot use them")
    _check_labels(pseudo_labels, labels, "pseudo-label")
    counts = pseudo_labels["label"].value_counts()
    params = {"pseudo_labels.used": len(pseudo_labels),
              **{f"pseudo_labels.used.{label}": int(counts.get(label, 0)) for label in labels}}
    log.info("training on %d human and %d pseudo labels", len(train), len(pseudo_labels))
    combined = pd.concat([train, pseudo_labels[["text", "label"]]], ignore_index=True)
    return combined, params


def _check_labels(frame: pd.DataFrame, labels: Sequence[str], name: str,
                  column: str = "label") -> None:
    if frame.empty:
        raise ValueError(f"{name} set is empty: import labels before training")
    found = {label for row in frame[column] for label in row} if column == "labels" \
        else set(frame[column])
    unknown = sorted(found - set(labels))
    if unknown:
        raise ValueError(f"{name} set has labels {unknown} outside the label set {list(labels)}")


def _params(settings: Settings, train: pd.DataFrame, validation: pd.DataFrame,
            labels: Sequence[str]) -> dict[str, Any]:
    return {
        **{f"train.{k}": v for k, v in settings.train.model_dump().items()},
        "base_model": settings.base_model_path,
        "labels": ",".join(labels),
        "method": settings.train.method,
        "train_size": len(train),
        "validation_size": len(validation),
    }


def _evaluate_and_log(model_dir: Path, validation: pd.DataFrame, labels: Sequence[str],
                      settings: Settings, multi_label: bool) -> dict[str, float]:
    """Evaluate the saved model on ``validation`` and log its metrics, plots and errors."""
    if multi_label:
        metrics, predictions = _evaluate_multi_label(model_dir, validation, labels, settings)
        mlflow.log_metrics(metrics)
        _log_multi_label_evaluation(validation, predictions, labels, metrics)
    else:
        metrics, predictions = _evaluate(model_dir, validation, labels, settings)
        mlflow.log_metrics(metrics)
        _log_evaluation(validation, predictions, labels, metrics)
    return metrics


def _evaluate(model_dir: Path, validation: pd.DataFrame, labels: Sequence[str],
              settings: Settings) -> tuple[dict[str, float], pd.DataFrame]:
    from tasks.score.inference import predict_probabilities

    tokenizer, model = _load_for_evaluation(model_dir)
    probabilities = predict_probabilities(
        model, tokenizer, list(validation["text"]), max_length=settings.train.max_length
    )
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    metrics = classification_metrics(list(validation["label"]), predicted, labels)
    return metrics, validation.assign(predicted=predicted)


def _load_for_evaluation(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tasks.score.inference import pick_device

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(pick_device())
    return tokenizer, model


def _evaluate_multi_label(model_dir: Path, validation: pd.DataFrame, labels: Sequence[str],
                          settings: Settings) -> tuple[dict[str, float], pd.DataFrame]:
    tokenizer, model = _load_for_evaluation(model_dir)
    probabilities = predict_label_probabilities(
        model, tokenizer, list(validation["text"]), max_length=settings.train.max_length
    )
    predicted = labels_above(probabilities, labels, settings.train.multi_label_threshold)
    metrics = multi_label_metrics(list(validation["labels"]), predicted, labels)
    return metrics, validation.assign(predicted=predicted)


def _log_multi_label_evaluation(validation: pd.DataFrame, predictions: pd.DataFrame,
                                labels: Sequence[str], metrics: dict[str, float]) -> None:
    figure = plot_label_confusion(
        list(predictions["labels"]), list(predictions["predicted"]), labels,
        title=f"validation, macro-F1 {metrics['macro_f1']:.3f}, micro-F1 {metrics['micro_f1']:.3f}",
    )
    mlflow.log_figure(figure, "evaluation/label_confusion.png")
    mlflow.log_dict(metrics, "evaluation/metrics.json")
    wrong = predictions[[set(true) != set(predicted) for true, predicted
                         in zip(predictions["labels"], predictions["predicted"])]]
    _log_validation_files(validation[["text", "labels"]], wrong[["text", "labels", "predicted"]])


def _log_evaluation(validation: pd.DataFrame, predictions: pd.DataFrame,
                    labels: Sequence[str], metrics: dict[str, float]) -> None:
    figure = plot_confusion_matrix(
        list(predictions["label"]), list(predictions["predicted"]), labels,
        title=f"validation, macro-F1 {metrics['macro_f1']:.3f}",
    )
    mlflow.log_figure(figure, "evaluation/confusion_matrix.png")
    mlflow.log_dict(metrics, "evaluation/metrics.json")
    wrong = predictions[predictions["label"] != predictions["predicted"]]
    _log_validation_files(validation[["text", "label"]], wrong[["text", "label", "predicted"]])


def _log_validation_files(validation: pd.DataFrame, wrong: pd.DataFrame) -> None:
    """Log the validation posts (for the promotion gate) and the wrongly predicted ones."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "validation.parquet"
        validation.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), "evaluation")
        errors = Path(folder) / "errors.jsonl"
        errors.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                  for r in wrong.to_dict("records")))
        mlflow.log_artifact(str(errors), "evaluation")


def _log_model(model_dir: Path, model_name: str, validation: pd.DataFrame,
               labels: Sequence[str], threshold: float | None = None) -> Any:
    """Log and register the pyfunc model. A ``threshold`` makes it a multi-label model."""
    from mlflow.models import infer_signature

    from tasks.settings import PROJECT_ROOT

    example = pd.DataFrame({"text": list(validation["text"][:3])})
    probabilities = {f"prob_{label}": [0.0] for label in labels}
    params: dict[str, Any] = {"batch_size": 64, "max_length": 128}
    if threshold is None:
        output = pd.DataFrame({"label": [labels[0]], "confidence": [1.0], **probabilities})
    else:
        output = pd.DataFrame({"labels": [json.dumps([labels[0]])], **probabilities})
        params["threshold"] = threshold
    signature = infer_signature(example, output, params=params)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=TextClassifierModel(),
        artifacts={"model": str(model_dir)},
        code_paths=[str(PROJECT_ROOT / "tasks")],
        signature=signature,
        input_example=example,
        model_config=None if threshold is None else {"threshold": threshold},
        registered_model_name=model_name,
        pip_requirements=[f"{package}=={version(package)}" for package in
                          ("torch", "transformers", "emoji", "pandas", "mlflow", "tqdm")],
    )


def _tag_version(registered: RegisteredVersion, tags: dict[str, str], settings: Settings) -> None:
    client = mlflow.MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(registered.name, registered.version, key, str(value))
    for key in ("macro_f1", "macro_recall", "accuracy", "micro_f1", "samples_f1"):
        if key not in registered.metrics:
            continue  # accuracy is single-label only, micro- and samples-F1 multi-label only
        client.set_model_version_tag(
            registered.name, registered.version, f"validation_{key}", f"{registered.metrics[key]:.4f}"
        )

"""Fine-tune a bi-encoder with in-batch negatives, evaluate it, log it and register it.

Training uses sentence-transformers' SentenceTransformerTrainer with
MultipleNegativesRankingLoss on (anchor, positive) pairs, where a batch contains at most one
pair per group (see tasks.retrieve.sampler). The tuned model and the untuned base model are
evaluated on the same held-out groups in the same MLflow run.
"""

from __future__ import annotations

import functools
import logging
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from tasks.registry.tracking import code_version, configure_mlflow
from tasks.retrieve.config import RetrievalSettings
from tasks.retrieve.data import RetrievalData, build_training_pairs, split_by_group
from tasks.retrieve.encoder import SentenceEncoder
from tasks.retrieve.evaluate import (
    EvaluationSet,
    build_evaluation_set,
    evaluate_encoder,
    plot_recall_at_k,
)
from tasks.retrieve.pyfunc import TextEmbeddingModel
from tasks.retrieve.sampler import DistinctGroupBatchSampler, count_batches
from tasks.settings import Settings
from tasks.train.text import prepare_model_text
from tasks.validate.training_data import log_data_quality

log = logging.getLogger(__name__)

EVALUATION_ARTIFACT = "evaluation/validation.parquet"
PLOT_ARTIFACT = "evaluation/recall_at_k.png"


@dataclass
class RegisteredRetrievalModel:
    """A registered retrieval model version, with its validation metrics and the base model's."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    base_metrics: dict[str, float]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass
class FineTunedEncoder:
    """A fine-tuned sentence-transformers model, saved to ``model_dir``."""

    model: Any
    model_dir: Path
    train_seconds: float
    steps: int


def fine_tune_encoder(pairs: pd.DataFrame, base_model: str, config: RetrievalSettings,
                      output_dir: Path, callbacks: list[Any] | None = None) -> FineTunedEncoder:
    """Fine-tune ``base_model`` on (anchor, positive, group) rows with in-batch negatives."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import set_seed

    from tasks.score.inference import pick_device

    batches = count_batches(list(Counter(pairs["group"]).values()), config.batch_size)
    if batches == 0:
        raise ValueError(
            f"no training batch can be formed from {len(pairs)} pairs: in-batch negatives need "
            "pairs from at least two training groups with two or more posts each")

    set_seed(config.seed)
    model = SentenceTransformer(base_model, device=str(pick_device()))
    model.max_seq_length = config.max_length
    dataset = Dataset.from_dict({
        "anchor": [prepare_model_text(text) for text in pairs["anchor"]],
        "positive": [prepare_model_text(text) for text in pairs["positive"]],
    })
    steps = math.ceil(batches * config.epochs)
    trainer = SentenceTransformerTrainer(
        model=model, args=_training_arguments(config, pairs, steps, output_dir),
        train_dataset=dataset, loss=MultipleNegativesRankingLoss(model),
        callbacks=callbacks or [],
    )
    log.info("fine-tuning on %d pairs from %d groups: %d batches per epoch, %d steps",
             len(pairs), pairs["group"].nunique(), batches, steps)
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started

    model_dir = output_dir / "model"
    model.save(str(model_dir))
    return FineTunedEncoder(model, model_dir, seconds, steps)


def _training_arguments(config: RetrievalSettings, pairs: pd.DataFrame, steps: int,
                        output_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments

    from tasks.score.inference import pick_device

    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=math.ceil(config.warmup_ratio * steps),
        batch_sampler=functools.partial(DistinctGroupBatchSampler, groups=list(pairs["group"])),
        save_strategy="no",
        logging_steps=max(1, steps // 10),
        seed=config.seed,
        report_to="none",
        use_cpu=str(pick_device()) == "cpu",
        dataloader_num_workers=0,
    )


def train_and_register_retrieval(data: RetrievalData, settings: Settings,
                                 config: RetrievalSettings,
                                 data_tags: dict[str, str]) -> RegisteredRetrievalModel:
    """Split by group, fine-tune, evaluate tuned and base model, and register a version."""
    from tasks.train.pipeline import MlflowEpochLogger

    train, validation = split_by_group(data.frame, config.validation_percent)
    pairs = build_training_pairs(train, data.mode, config.seed)
    evaluation = build_evaluation_set(validation, data.mode, config.queries_per_group, config.seed)
    if not evaluation.queries:
        raise ValueError(
            f"the {validation['group'].nunique()} validation groups have no query with a relevant "
            "post: each needs at least two posts")
    configure_mlflow(settings)
    tags = {"task": config.model_name, "code_version": code_version(), **data_tags}

    with mlflow.start_run(run_name=f"train-{config.model_name}", tags=tags) as run, \
            tempfile.TemporaryDirectory(prefix="pulse-retrieval-") as workdir:
        mlflow.log_params(_params(settings, config, data, train, validation, pairs, evaluation))
        log_data_quality(None, "no suite checks retrieval groups yet")
        mlflow.log_dict({"train_groups": sorted(train["group"].unique()),
                         "validation_groups": sorted(validation["group"].unique())},
                        "evaluation/split.json")
        tuned = fine_tune_encoder(pairs, settings.base_model_path, config, Path(workdir),
                                  callbacks=[MlflowEpochLogger()])
        metrics, base_metrics = _evaluate_both(tuned, evaluation, settings, config)
        _log_evaluation(validation, metrics, base_metrics, tuned)
        model_info = _log_model(tuned, config.model_name, evaluation)

    registered = RegisteredRetrievalModel(
        config.model_name, str(model_info.registered_model_version), run.info.run_id, metrics,
        base_metrics)
    _tag_version(registered, tags, settings)
    log.info("registered %s: recall@10 %.3f (base %.3f), MRR %.3f (base %.3f)", registered.uri,
             metrics["recall_at_10"], base_metrics["recall_at_10"], metrics["mrr"],
             base_metrics["mrr"])
    return registered


def _params(settings: Settings, config: RetrievalSettings, data: RetrievalData,
            train: pd.DataFrame, validation: pd.DataFrame, pairs: pd.DataFrame,
            evaluation: EvaluationSet) -> dict[str, Any]:
    return {
        **{f"retrieval.{key}": value for key, value in config.model_dump().items()},
        "base_model": settings.base_model_path,
        "mode": data.mode,
        "group_field": data.group_field,
        "train_groups": train["group"].nunique(),
        "train_posts": len(train),
        "train_pairs": len(pairs),
        "validation_groups": validation["group"].nunique(),
        "validation_posts": len(validation),
        "validation_queries": len(evaluation.queries),
        "loss": "MultipleNegativesRankingLoss",
    }


def _evaluate_both(tuned: FineTunedEncoder, evaluation: EvaluationSet, settings: Settings,
                   config: RetrievalSettings) -> tuple[dict[str, float], dict[str, float]]:
    size = config.encode_batch_size
    metrics = evaluate_encoder(SentenceEncoder(tuned.model, batch_size=size), evaluation)
    base = SentenceEncoder(settings.base_model_path, max_length=config.max_length, batch_size=size)
    base_metrics = evaluate_encoder(base, evaluation)
    mlflow.log_metrics({**metrics, "train_seconds": tuned.train_seconds,
                        "train_steps": tuned.steps})
    mlflow.log_metrics({f"base_{name}": value for name, value in base_metrics.items()})
    return metrics, base_metrics


def _log_evaluation(validation: pd.DataFrame, metrics: dict[str, float],
                    base_metrics: dict[str, float], tuned: FineTunedEncoder) -> None:
    title = (f"validation recall@10: {metrics['recall_at_10']:.3f} tuned, "
             f"{base_metrics['recall_at_10']:.3f} base")
    mlflow.log_figure(plot_recall_at_k(metrics, base_metrics, title), PLOT_ARTIFACT)
    mlflow.log_dict({"fine_tuned": metrics, "base": base_metrics,
                     "train_seconds": tuned.train_seconds}, "evaluation/metrics.json")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "validation.parquet"
        validation[["text", "group"]].to_parquet(path, index=False)
        mlflow.log_artifact(str(path), "evaluation")


def _log_model(tuned: FineTunedEncoder, model_name: str, evaluation: EvaluationSet) -> Any:
    from mlflow.models import infer_signature

    from tasks.settings import PROJECT_ROOT

    example = pd.DataFrame({"text": evaluation.corpus[:3]})
    embeddings = SentenceEncoder(tuned.model).encode(list(example["text"]))
    output = pd.DataFrame({"embedding": [row.tolist() for row in embeddings]})
    signature = infer_signature(example, output, params={"batch_size": 64})
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=TextEmbeddingModel(),
        artifacts={"model": str(tuned.model_dir)},
        code_paths=[str(PROJECT_ROOT / "tasks")],
        signature=signature,
        input_example=example,
        registered_model_name=model_name,
        pip_requirements=[f"{package}=={version(package)}" for package in
                          ("torch", "transformers", "sentence-transformers", "emoji", "pandas",
                           "numpy", "mlflow")],
    )


def _tag_version(registered: RegisteredRetrievalModel, tags: dict[str, str],
                 settings: Settings) -> None:
    client = mlflow.MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(registered.name, registered.version, key, str(value))
    for key in ("recall_at_10", "mrr", "ndcg_at_10"):
        client.set_model_version_tag(registered.name, registered.version, f"validation_{key}",
                                     f"{registered.metrics[key]:.4f}")
        client.set_model_version_tag(registered.name, registered.version, f"base_{key}",
                                     f"{registered.base_metrics[key]:.4f}")

"""Fine-tune an encoder for IOB2 entity tagging, evaluate spans, log to MLflow and register.

Only the first sub-token of each word carries the word's tag in training. The other
sub-tokens get -100, which the loss ignores. Posts longer than ``max_length`` sub-tokens
are trained on as overlapping windows, like inference covers them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from transformers import EarlyStoppingCallback

from tasks.extract.conll import TaggedPost, entity_types, repair_iob2, tag_set, write_conll
from tasks.extract.metrics import plot_type_f1, span_metrics
from tasks.extract.pyfunc import EntityTaggerModel
from tasks.extract.windows import DEFAULT_STRIDE, effective_stride, encode_windows, label_windows
from tasks.registry.tracking import code_version, configure_mlflow
from tasks.settings import Settings, TrainSettings
from tasks.train.distributed import is_main_process, work_folder
from tasks.train.pipeline import MlflowEpochLogger, RegisteredVersion
from tasks.validate.training_data import check_tagged_posts, log_data_quality

log = logging.getLogger(__name__)

BEST_MODEL_METRIC = "span_f1"
EVALUATION_CONLL = "evaluation/validation.conll"  # the frozen set the promotion gate reuses


@dataclass
class TrainedTagger:
    """A fine-tuned tagger saved to ``model_dir`` with its tag list."""

    model_dir: Path
    tags: list[str]
    train_size: int
    train_windows: int
    train_seconds: float


def train_entity_tagger(train: Sequence[TaggedPost], validation: Sequence[TaggedPost],
                        tags: Sequence[str], base_model: str, config: TrainSettings,
                        output_dir: Path, stride: int = DEFAULT_STRIDE,
                        callbacks: Sequence[Any] = ()) -> TrainedTagger:
    """Fine-tune ``base_model`` on ``train`` and save the epoch with the best validation span F1.

    ``config`` is read as for the classifier (epochs, batch size, learning rate, warmup,
    gradient accumulation, early stopping, seed, max_train_samples), except that the whole
    model is always fine-tuned, the loss has no class weights and the vocabulary is never
    extended. The span F1 that picks the epoch is computed per window, so an entity cut by
    a window edge counts in both of its windows. The final evaluation merges the windows.
    """
    from transformers import set_seed

    set_seed(config.seed)
    if config.method != "full":
        log.warning("entity training fine-tunes fully: train.method %r is not supported here",
                    config.method)
        config = config.model_copy(update={"method": "full"})
    train = _cap_posts(train, config.max_train_samples, config.seed)
    tags = list(tags)
    label_ids = {tag: index for index, tag in enumerate(tags)}
    tokenizer, model = load_tagger(base_model, tags)
    train_set = _window_dataset(train, tokenizer, label_ids, config.max_length, stride)
    validation_set = _window_dataset(validation, tokenizer, label_ids, config.max_length, stride)
    trainer = _build_trainer(model, tokenizer, train_set, validation_set, tags, config,
                             output_dir, callbacks)
    log.info("training on %d posts (%d windows), validating on %d, tags %s", len(train),
             len(train_set), len(validation), tags)
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started

    model_dir = output_dir / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    log.info("trained in %.0f s, model saved to %s", seconds, model_dir)
    return TrainedTagger(model_dir, tags, len(train), len(train_set), seconds)


def load_tagger(base_model: str, tags: list[str]) -> tuple[Any, Any]:
    """Load the fast tokenizer and a token classification model with a new head for ``tags``."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if not tokenizer.is_fast:
        raise ValueError(f"{base_model} has no fast tokenizer, which word alignment needs")
    model = AutoModelForTokenClassification.from_pretrained(
        base_model, num_labels=len(tags), id2label=dict(enumerate(tags)),
        label2id={tag: index for index, tag in enumerate(tags)},
    )
    return tokenizer, model


def _cap_posts(posts: Sequence[TaggedPost], cap: int, seed: int) -> list[TaggedPost]:
    if not cap or len(posts) <= cap:
        return list(posts)
    log.info("using %d of %d training posts (train.max_train_samples)", cap, len(posts))
    return random.Random(seed).sample(list(posts), cap)


def _window_dataset(posts: Sequence[TaggedPost], tokenizer: Any, label_ids: dict[str, int],
                    max_length: int, stride: int) -> Any:
    from datasets import Dataset

    batch = encode_windows(tokenizer, [post.tokens for post in posts], max_length, stride)
    columns = {name: list(batch.encoding[name]) for name in tokenizer.model_input_names
               if name in batch.encoding}
    columns["labels"] = label_windows(batch, [post.tags for post in posts], label_ids)
    return Dataset.from_dict(columns)


def _build_trainer(model: Any, tokenizer: Any, train_set: Any, validation_set: Any,
                   tags: list[str], config: TrainSettings, output_dir: Path,
                   callbacks: Sequence[Any]) -> Any:
    """Build the Trainer with the classifier's training arguments, picking epochs by span F1."""
    from transformers import DataCollatorForTokenClassification, Trainer

    from tasks.train.classifier import training_arguments

    arguments = dataclasses.replace(training_arguments(config, len(train_set), output_dir),
                                    metric_for_best_model=BEST_MODEL_METRIC)
    stopping = [EntityEarlyStopping(config.early_stopping_patience)] \
        if config.early_stopping_patience > 0 else []
    return Trainer(
        model=model,
        args=arguments,
        train_dataset=train_set,
        eval_dataset=validation_set,
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=WindowSpanF1(tags),
        preprocess_logits_for_metrics=lambda logits, labels: logits.argmax(dim=-1),
        callbacks=[*callbacks, *stopping],
    )


class EntityEarlyStopping(EarlyStoppingCallback):
    """Early stopping that counts epochs without improvement only once some entity is found.

    A span F1 of 0 means that the tagger still tags every word O, which is how training on
    mostly-O tags usually starts, not a plateau.
    """

    def check_metric_value(self, args: Any, state: Any, control: Any,
                           metric_value: float) -> None:
        if metric_value > 0 or (state.best_metric or 0) > 0:
            super().check_metric_value(args, state, control, metric_value)


class WindowSpanF1:
    """Trainer ``compute_metrics``: micro span F1 over windows, from argmax label ids."""

    def __init__(self, tags: Sequence[str]) -> None:
        self.tags = list(tags)

    def __call__(self, prediction: Any) -> dict[str, float]:
        true_rows, predicted_rows = [], []
        for predicted, labels in zip(prediction.predictions, prediction.label_ids):
            keep = labels != -100
            true_rows.append(repair_iob2([self.tags[i] for i in labels[keep]])[0])
            predicted_rows.append(repair_iob2([self.tags[i] for i in predicted[keep]])[0])
        return {BEST_MODEL_METRIC: span_metrics(true_rows, predicted_rows)["micro_f1"]}


def evaluate_tagger(model_dir: Path, posts: Sequence[TaggedPost], max_length: int,
                    stride: int) -> tuple[dict[str, float], list[list[str]]]:
    """Tag ``posts`` with the saved model and return span metrics and the predicted tags."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tasks.extract.predict import predict_word_tags
    from tasks.score.inference import pick_device

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).to(pick_device())
    word_tags = predict_word_tags(model, tokenizer, [post.tokens for post in posts],
                                  max_length=max_length, stride=stride)
    predicted = [[tag for tag, _ in tags] for tags in word_tags]
    return span_metrics([post.tags for post in posts], predicted), predicted


def train_and_register_entities(train: Sequence[TaggedPost], validation: Sequence[TaggedPost],
                                settings: Settings, model_name: str,
                                data_tags: dict[str, str], stride: int | None = None,
                                learning_rate: float | None = None) -> RegisteredVersion | None:
    """Fine-tune on ``train``, evaluate spans on ``validation`` and register a model version.

    ``learning_rate`` defaults to ``settings.train.entity_learning_rate`` and ``stride`` to
    ``settings.train.entity_stride``. The validation posts are logged with the run as
    ``evaluation/validation.conll``, the frozen set of the promotion gate. Under torchrun
    only rank 0 evaluates, logs and registers; the other ranks return None.
    """
    tags = _entity_tag_set(train, validation)
    config = settings.train.model_copy(
        update={"learning_rate": learning_rate or settings.train.entity_learning_rate})
    stride = settings.train.entity_stride if stride is None else stride
    if not is_main_process():
        # Under torchrun this rank trains alongside rank 0, which logs and registers.
        with work_folder("pulse-train-") as workdir:
            train_entity_tagger(train, validation, tags, settings.base_model_path, config,
                                workdir, stride)
        return None
    configure_mlflow(settings)
    run_tags = {"task": model_name, "code_version": code_version(), **data_tags}

    with mlflow.start_run(run_name=f"train-{model_name}", tags=run_tags) as run, \
            work_folder("pulse-train-") as workdir:
        mlflow.log_params(_params(settings, config, train, validation, tags, stride))
        log_data_quality(check_tagged_posts(train, validation))
        trained = train_entity_tagger(train, validation, tags, settings.base_model_path,
                                      config, workdir, stride,
                                      callbacks=[MlflowEpochLogger()])
        metrics, predicted = evaluate_tagger(trained.model_dir, validation, config.max_length,
                                             stride)
        mlflow.log_metrics({**metrics, "train_seconds": trained.train_seconds,
                            "train_windows": trained.train_windows})
        _log_evaluation(validation, predicted, metrics)
        model_info = _log_model(trained.model_dir, model_name, validation, config.max_length,
                                stride)

    registered = RegisteredVersion(model_name, str(model_info.registered_model_version),
                                   run.info.run_id, metrics)
    _tag_version(registered, run_tags, settings)
    log.info("registered %s (span F1 micro %.3f, macro %.3f)", registered.uri,
             metrics["micro_f1"], metrics["macro_f1"])
    return registered


def _entity_tag_set(train: Sequence[TaggedPost], validation: Sequence[TaggedPost]) -> list[str]:
    """Return O plus B-/I- of every entity type in either set, after checking both sets."""
    _check_posts(train, "train")
    _check_posts(validation, "validation")
    unseen = sorted(set(entity_types(validation)) - set(entity_types(train)))
    if unseen:
        log.warning("entity types %s occur only in the validation set: the model cannot "
                    "learn them", unseen)
    return tag_set(entity_types([*train, *validation]))


def _check_posts(posts: Sequence[TaggedPost], name: str) -> None:
    if not posts:
        raise ValueError(f"{name} set has no posts: give a CoNLL file or a Label Studio export")
    if not entity_types(posts):
        raise ValueError(f"{name} set has no entities: every tag is O")


def _params(settings: Settings, config: TrainSettings, train: Sequence[TaggedPost],
            validation: Sequence[TaggedPost], tags: Sequence[str], stride: int) -> dict[str, Any]:
    return {
        **{f"train.{k}": v for k, v in config.model_dump().items()},
        "base_model": settings.base_model_path,
        "labels": ",".join(tags),
        "stride": effective_stride(config.max_length, stride),
        "train_size": len(train),
        "validation_size": len(validation),
        "train_tags_repaired": sum(post.repaired for post in train),
        "validation_tags_repaired": sum(post.repaired for post in validation),
    }


def _log_evaluation(validation: Sequence[TaggedPost], predicted: list[list[str]],
                    metrics: dict[str, float]) -> None:
    title = f"validation, span F1 micro {metrics['micro_f1']:.3f}, macro {metrics['macro_f1']:.3f}"
    mlflow.log_figure(plot_type_f1(metrics, title), "evaluation/span_f1_by_type.png")
    mlflow.log_dict(metrics, "evaluation/metrics.json")
    with tempfile.TemporaryDirectory() as folder:
        gold = Path(folder) / Path(EVALUATION_CONLL).name
        write_conll(gold, validation)
        mlflow.log_artifact(str(gold), str(Path(EVALUATION_CONLL).parent))
        compared = Path(folder) / "predictions.conll"
        compared.write_text("".join(_comparison_lines(validation, predicted)), encoding="utf-8")
        mlflow.log_artifact(str(compared), "evaluation")


def _comparison_lines(posts: Sequence[TaggedPost], predicted: list[list[str]]) -> list[str]:
    """Lines of token TAB true tag TAB predicted tag, a blank line after each post."""
    lines = []
    for post, tags in zip(posts, predicted):
        lines.extend(f"{t}\t{g}\t{p}\n" for t, g, p in zip(post.tokens, post.tags, tags))
        lines.append("\n")
    return lines


def _log_model(model_dir: Path, model_name: str, validation: Sequence[TaggedPost],
               max_length: int, stride: int) -> Any:
    from mlflow.models import infer_signature

    from tasks.settings import PROJECT_ROOT

    example = pd.DataFrame({"text": [" ".join(post.tokens) for post in validation[:3]]})
    span = {"start": 0, "end": 5, "type": "location", "text": "Paris", "score": 0.9}
    output = pd.DataFrame({"spans": [json.dumps([span])]})
    params = {"batch_size": 32, "max_length": max_length, "stride": stride}
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=EntityTaggerModel(max_length=max_length, stride=stride),
        artifacts={"model": str(model_dir)},
        code_paths=[str(PROJECT_ROOT / "tasks")],
        signature=infer_signature(example, output, params=params),
        input_example=example,
        registered_model_name=model_name,
        pip_requirements=[f"{package}=={version(package)}" for package in
                          ("torch", "transformers", "regex", "pandas", "mlflow", "tqdm")],
    )


def _tag_version(registered: RegisteredVersion, tags: dict[str, str], settings: Settings) -> None:
    client = mlflow.MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(registered.name, registered.version, key, str(value))
    summary = {"validation_span_f1": "micro_f1", "validation_span_macro_f1": "macro_f1",
               "validation_span_precision": "micro_precision",
               "validation_span_recall": "micro_recall"}
    for tag, metric in summary.items():
        client.set_model_version_tag(registered.name, registered.version, tag,
                                     f"{registered.metrics[metric]:.4f}")

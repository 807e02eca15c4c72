"""Fine-tune a transformer encoder for text classification with the HF Trainer."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import Trainer

from tasks.clean.text import dedup_key
from tasks.settings import TrainSettings
from tasks.train.distributed import world_size
from tasks.train.multilabel import PROBLEM_TYPE, multi_hot, positive_weights
from tasks.train.text import prepare_model_text

log = logging.getLogger(__name__)


@dataclass
class TrainedClassifier:
    """A fine-tuned model saved to ``model_dir`` with its label order."""

    model_dir: Path
    labels: list[str]
    train_size: int
    train_seconds: float


def split_by_hash(frame: pd.DataFrame, validation_percent: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split labels into train and validation by a hash of the normalized text.

    The split is fixed: a text stays on its side as the label set grows, and duplicates of
    a text never straddle the two sides.
    """
    buckets = frame["text"].map(
        lambda text: int(hashlib.sha1(dedup_key(text).encode()).hexdigest()[:8], 16) % 100
    )
    validation = buckets < validation_percent
    return frame[~validation].reset_index(drop=True), frame[validation].reset_index(drop=True)


def train_classifier(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    labels: Sequence[str],
    base_model: str,
    config: TrainSettings,
    output_dir: Path,
    callbacks: Sequence[Any] = (),
    multi_label: bool = False,
) -> TrainedClassifier:
    """Fine-tune ``base_model`` on ``train`` (columns text, label) and save the best epoch.

    The best epoch is chosen by macro-F1 on ``validation``. With ``config.method == "lora"``
    only LoRA adapters and the classification head train, and the adapters are merged into
    the saved model, so it loads like a fully fine-tuned one.

    With ``multi_label``, the frames have a ``labels`` column of label lists instead, the
    loss is binary cross-entropy on multi-hot targets, and ``config.class_weights`` weighs
    each label's positive posts by its negative-to-positive ratio.
    """
    import time

    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, set_seed

    set_seed(config.seed)
    labels = list(labels)
    label_ids = {label: index for index, label in enumerate(labels)}
    if config.max_train_samples and len(train) > config.max_train_samples:
        train = train.sample(n=config.max_train_samples, random_state=config.seed)

    tokenizer, model = load_model(base_model, labels, config, list(train["text"]), multi_label)
    train_set = _encode(train, tokenizer, label_ids, config.max_length, multi_label)
    validation_set = _encode(validation, tokenizer, label_ids, config.max_length, multi_label)
    extra_callbacks = [EarlyStoppingCallback(config.early_stopping_patience)] \
        if config.early_stopping_patience > 0 else []
    trainer = WeightedTrainer(
        class_weights=_loss_weights(train, labels, multi_label) if config.class_weights else None,
        multi_label=multi_label,
        model=model,
        args=training_arguments(config, len(train_set), output_dir),
        train_dataset=train_set,
        eval_dataset=validation_set,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=partial(_multi_label_f1, threshold=config.multi_label_threshold)
        if multi_label else _macro_f1,
        callbacks=[*callbacks, *extra_callbacks],
    )
    log.info("training (%s%s) on %d posts, validating on %d, labels %s, world size %d",
             config.method, ", multi-label" if multi_label else "", len(train_set),
             len(validation_set), labels, world_size())
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started

    model_dir = output_dir / "model"
    final = trainer.model.merge_and_unload() if config.method == "lora" else trainer.model
    final.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    log.info("trained in %.0f s, model saved to %s", seconds, model_dir)
    return TrainedClassifier(model_dir, labels, len(train_set), seconds)


def load_model(base_model: str, labels: list[str], config: TrainSettings,
               texts: list[str], multi_label: bool = False) -> tuple[Any, Any]:
    """Load tokenizer and classifier, extend the vocabulary and wrap with LoRA as configured.

    A multi-label model gets the problem type ``multi_label_classification``. It is saved
    in the model's config, which is how a loaded model is recognised as multi-label.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tasks.train.vocabulary import extend_vocabulary

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
        problem_type=PROBLEM_TYPE if multi_label else "single_label_classification",
    )
    added = 0
    if config.extend_vocabulary:
        prepared = [prepare_model_text(text) for text in texts]
        added = extend_vocabulary(tokenizer, model, prepared, config.min_new_token_count)
    if config.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS, r=config.lora_r, lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout, target_modules=list(config.lora_target_modules),
            # New token rows must learn too, so the embeddings train fully when any were added.
            modules_to_save=["word_embeddings"] if added else None,
        )
        model = get_peft_model(model, lora)
        trainable, total = model.get_nb_trainable_parameters()
        log.info("LoRA: %d of %d parameters trainable", trainable, total)
    return tokenizer, model


def training_arguments(config: TrainSettings, train_size: int, output_dir: Path) -> Any:
    """Build TrainingArguments: evaluation and checkpoints per epoch, the best one kept.

    On a GPU, bf16 is used where supported, else fp16; on the CPU, fp32.
    """
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    steps_per_epoch = max(1, math.ceil(train_size / (config.batch_size * config.gradient_accumulation_steps)))
    return TrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.lora_learning_rate if config.method == "lora" else config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=min(config.warmup_steps, steps_per_epoch),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        logging_steps=max(1, steps_per_epoch // 4),
        seed=config.seed,
        report_to="none",
        use_cpu=not cuda,
        bf16=bf16,
        fp16=cuda and not bf16,
        dataloader_num_workers=0,
    )


def _loss_weights(train: pd.DataFrame, labels: list[str], multi_label: bool) -> list[float]:
    return positive_weights(list(train["labels"]), labels) if multi_label \
        else _class_weights(train, labels)


def _class_weights(train: pd.DataFrame, labels: list[str]) -> list[float]:
    """Inverse-frequency weights, scaled so they average 1 over the training posts."""
    counts = train["label"].value_counts()
    weights = [len(train) / (len(labels) * max(int(counts.get(label, 0)), 1)) for label in labels]
    log.info("class weights %s", dict(zip(labels, (round(w, 3) for w in weights))))
    return weights


class WeightedTrainer(Trainer):
    """Trainer whose loss weights each class, when weights are given.

    Single-label: ``class_weights`` weigh the cross-entropy of each class. Multi-label:
    they are the ``pos_weight`` of binary cross-entropy, one per label.
    """

    def __init__(self, *args: Any, class_weights: list[float] | None = None,
                 multi_label: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.multi_label = multi_label

    def compute_loss(self, model: Any, inputs: dict, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if self.class_weights is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weights = torch.tensor(self.class_weights, device=outputs.logits.device)
        if self.multi_label:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                outputs.logits.float(), labels.float(), pos_weight=weights)
        else:
            loss = torch.nn.functional.cross_entropy(outputs.logits.float(), labels, weight=weights)
        return (loss, outputs) if return_outputs else loss


def _encode(frame: pd.DataFrame, tokenizer: Any, label_ids: dict[str, int], max_length: int,
            multi_label: bool = False) -> Any:
    from datasets import Dataset

    texts = [prepare_model_text(text) for text in frame["text"]]
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    if multi_label:
        encoded["labels"] = multi_hot(list(frame["labels"]), list(label_ids)).tolist()
    else:
        encoded["labels"] = [label_ids[label] for label in frame["label"]]
    return Dataset.from_dict(dict(encoded))


def _macro_f1(prediction: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    predicted = np.argmax(prediction.predictions, axis=-1)
    return {
        "macro_f1": float(f1_score(prediction.label_ids, predicted, average="macro")),
        "accuracy": float(accuracy_score(prediction.label_ids, predicted)),
    }


def _multi_label_f1(prediction: Any, threshold: float) -> dict[str, float]:
    """Return macro- and micro-F1, a label counting as predicted at probability >= threshold."""
    from sklearn.metrics import f1_score

    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(prediction.predictions, dtype=np.float64)))
    predicted = (probabilities >= threshold).astype(int)
    truth = np.asarray(prediction.label_ids).astype(int)
    return {
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(truth, predicted, average="micro", zero_division=0)),
    }

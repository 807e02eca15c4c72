"""Fine-tune a transformer encoder for text classification with the HF Trainer."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.clean.text import dedup_key
from tasks.settings import TrainSettings
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
) -> TrainedClassifier:
    """Fine-tune ``base_model`` on ``train`` (columns text, label) and save the best epoch.

    The best epoch is chosen by macro-F1 on ``validation``.
    """
    import time

    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(config.seed)
    labels = list(labels)
    label_ids = {label: index for index, label in enumerate(labels)}
    if config.max_train_samples and len(train) > config.max_train_samples:
        train = train.sample(n=config.max_train_samples, random_state=config.seed)

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )
    train_set = _encode(train, tokenizer, label_ids, config.max_length)
    validation_set = _encode(validation, tokenizer, label_ids, config.max_length)

    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    arguments = TrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        learning_rate=config.learning_rate,
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
        use_cpu=not _cuda_available(),
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train_set,
        eval_dataset=validation_set,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_macro_f1,
        callbacks=list(callbacks),
    )
    log.info("training on %d posts, validating on %d, labels %s", len(train_set),
             len(validation_set), labels)
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started

    model_dir = output_dir / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    log.info("trained in %.0f s, model saved to %s", seconds, model_dir)
    return TrainedClassifier(model_dir, labels, len(train_set), seconds)


def _encode(frame: pd.DataFrame, tokenizer: Any, label_ids: dict[str, int], max_length: int) -> Any:
    from datasets import Dataset

    texts = [prepare_model_text(text) for text in frame["text"]]
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    encoded["labels"] = [label_ids[label] for label in frame["label"]]
    return Dataset.from_dict(dict(encoded))


def _macro_f1(prediction: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    predicted = np.argmax(prediction.predictions, axis=-1)
    return {
        "macro_f1": float(f1_score(prediction.label_ids, predicted, average="macro")),
        "accuracy": float(accuracy_score(prediction.label_ids, predicted)),
    }


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()

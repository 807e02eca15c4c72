"""Batched inference of a sequence classifier on CPU or GPU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tasks.train.text import prepare_model_text

ACTIVATIONS = ("softmax", "sigmoid")


def pick_device() -> torch.device:
    """Return the first CUDA device when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_activation(activation: str) -> None:
    """Raise ValueError unless ``activation`` is "softmax" or "sigmoid"."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: use 'softmax' or 'sigmoid'")


def length_sorted_batches(texts: Sequence[str],
                          batch_size: int) -> tuple[list[str], list[np.ndarray]]:
    """Prepare ``texts`` for the tokenizer and group their positions into batches.

    Returns the prepared texts and, per batch, the positions of its texts. The texts are
    sorted by length first, so each batch pads to a similar length.
    """
    prepared = [prepare_model_text(text) for text in texts]
    order = np.argsort([len(text) for text in prepared], kind="stable")
    batches = [order[start : start + batch_size] for start in range(0, len(prepared), batch_size)]
    return prepared, batches


def predict_probabilities(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 128,
    show_progress: bool = False,
    activation: str = "softmax",
) -> np.ndarray:
    """Return class probabilities, shape (len(texts), num_labels), in the order of ``texts``.

    ``activation`` is "softmax" (one label per text) or "sigmoid" (each label on its own,
    for multi-label models). Texts are sorted by length before batching so each batch pads
    to a similar length.
    """
    check_activation(activation)
    device = next(model.parameters()).device
    prepared, batches = length_sorted_batches(texts, batch_size)
    output = np.zeros((len(prepared), model.config.num_labels), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for index in tqdm(batches, desc="scoring", unit="batch", disable=not show_progress):
            batch = tokenizer(
                [prepared[i] for i in index], padding=True, truncation=True,
                max_length=max_length, return_tensors="pt",
            ).to(device)
            logits = model(**batch).logits.float()
            scores = torch.softmax(logits, dim=-1) if activation == "softmax" else \
                torch.sigmoid(logits)
            output[index] = scores.cpu().numpy()
    return output

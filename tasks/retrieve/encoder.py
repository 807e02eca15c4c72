"""Text encoders that return unit-length embeddings, from a folder or the MLflow registry.

Every encoder spells emoji out as words first (tasks.train.text.prepare_model_text), as
the classifier does, so training, indexing and queries see the same text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tasks.train.text import prepare_model_text

log = logging.getLogger(__name__)

EMBEDDING_COLUMN = "embedding"


class Encoder(Protocol):
    """Turns texts into an array of shape (len(texts), dimension) with unit-length rows."""

    uri: str

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceEncoder:
    """Encoder around a sentence-transformers model, loaded from a folder or given loaded."""

    def __init__(self, model: Any, uri: str | None = None, max_length: int | None = None,
                 batch_size: int = 64) -> None:
        if isinstance(model, str):
            from sentence_transformers import SentenceTransformer

            from tasks.score.inference import pick_device

            uri = uri or model
            model = SentenceTransformer(model, device=str(pick_device()))
        if max_length:
            model.max_seq_length = max_length
        self.model = model
        self.uri = uri or "in-memory"
        self.batch_size = batch_size

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        embeddings = self.model.encode(
            [prepare_model_text(str(text)) for text in texts], batch_size=self.batch_size,
            normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(embeddings, dtype=np.float32)


class PyfuncEncoder:
    """Encoder around a loaded MLflow pyfunc whose output has an ``embedding`` column."""

    def __init__(self, model: Any, uri: str) -> None:
        self.model = model
        self.uri = uri
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.encode(["dimension probe"]).shape[1])
        return self._dimension

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        output = self.model.predict(pd.DataFrame({"text": [str(text) for text in texts]}))
        return np.asarray(list(output[EMBEDDING_COLUMN]), dtype=np.float32)


def load_encoder(uri: str, max_length: int | None = None, batch_size: int = 64) -> Encoder:
    """Load ``models:/…`` or ``runs:/…`` through MLflow, anything else as a model folder.

    ``max_length`` and ``batch_size`` apply to a model folder only, because a registered
    model keeps the sequence length it was trained with. MLflow must already point at the
    right tracking server (configure_mlflow).
    """
    if uri.startswith(("models:/", "runs:/")):
        import mlflow

        log.info("loading retrieval model %s", uri)
        return PyfuncEncoder(mlflow.pyfunc.load_model(uri), uri)
    log.info("loading sentence-transformers model from %s", uri)
    return SentenceEncoder(uri, max_length=max_length, batch_size=batch_size)

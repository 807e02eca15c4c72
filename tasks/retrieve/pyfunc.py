"""The MLflow pyfunc wrapper that every registered retrieval model is logged as."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

from tasks.registry.pyfunc import _texts_from
from tasks.retrieve.encoder import EMBEDDING_COLUMN, SentenceEncoder


class TextEmbeddingModel(mlflow.pyfunc.PythonModel):
    """Embeds each text as a unit-length vector, for search by inner product.

    Input: a DataFrame with a ``text`` column (or a list of strings). Output: a DataFrame
    with one ``embedding`` column that contains a list of floats per input row.
    """

    def load_context(self, context: Any) -> None:
        self.encoder = SentenceEncoder(context.artifacts["model"], uri=context.artifacts["model"])

    # No type hints on predict: MLflow would try to derive a signature from them, and the
    # signature is given explicitly when the model is logged.
    def predict(self, context, model_input, params=None):
        texts = _texts_from(model_input)
        self.encoder.batch_size = int((params or {}).get("batch_size", 64))
        embeddings = self.encoder.encode(texts)
        return pd.DataFrame({EMBEDDING_COLUMN: [row.tolist() for row in embeddings]})


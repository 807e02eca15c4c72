"""The MLflow pyfunc wrapper that every registered entity tagger is logged as."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import mlflow
import pandas as pd

from tasks.extract.windows import DEFAULT_STRIDE
from tasks.registry.pyfunc import _texts_from


class EntityTaggerModel(mlflow.pyfunc.PythonModel):
    """An MLflow pyfunc model that finds the entities in each text.

    Input: a DataFrame with a ``text`` column (or a list of strings). Output: a DataFrame
    with one ``spans`` column holding, per text, a JSON array string of objects with
    ``start`` and ``end`` (Python string indices, that is code points, into the input text,
    end exclusive), ``type``, ``text`` and ``score``. A string keeps the output a plain column in the signature, in
    model serving responses and in Parquet or CSV. Decode it with ``json.loads``.

    ``max_length`` and ``stride`` are the default window size and overlap in sub-tokens,
    and the ``max_length``, ``stride`` and ``batch_size`` params override them.
    """

    def __init__(self, max_length: int = 128, stride: int = DEFAULT_STRIDE) -> None:
        self.max_length = max_length
        self.stride = stride

    def load_context(self, context: Any) -> None:
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from tasks.score.inference import pick_device

        model_dir = context.artifacts["model"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForTokenClassification.from_pretrained(model_dir)
        self.model = model.to(pick_device()).eval()

    # No type hints on predict: MLflow would try to derive a signature from them, and the
    # signature is given explicitly when the model is logged.
    def predict(self, context, model_input, params=None):
        from tasks.extract.predict import predict_spans

        settings = self._window_params(params)
        spans = predict_spans(self.model, self.tokenizer, _texts_from(model_input), **settings)
        return pd.DataFrame({"spans": [json.dumps(found, ensure_ascii=False) for found in spans]})

    def predict_tags(self, posts: Sequence[Sequence[str]],
                     params: dict[str, Any] | None = None) -> list[list[tuple[str, float]]]:
        """Return a (tag, probability) pair per word for posts that are already split into words."""
        from tasks.extract.predict import predict_word_tags

        return predict_word_tags(self.model, self.tokenizer, posts, **self._window_params(params))

    def _window_params(self, params: dict[str, Any] | None) -> dict[str, int]:
        params = params or {}
        return {
            "max_length": int(params.get("max_length", self.max_length)),
            "stride": int(params.get("stride", self.stride)),
            "batch_size": int(params.get("batch_size", 32)),
        }

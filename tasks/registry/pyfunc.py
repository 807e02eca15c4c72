"""The MLflow pyfunc wrapper that every registered text classifier is logged as."""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from tasks.train.multilabel import PROBLEM_TYPE, labels_above, predict_label_probabilities


class TextClassifierModel(mlflow.pyfunc.PythonModel):
    """Predicts a label, its confidence and every class probability for each text.

    Input: a DataFrame with a ``text`` column (or a list of strings). Output: a DataFrame
    with ``label``, ``confidence`` and one ``prob_<label>`` column per class.

    A multi-label model (its config's problem type is ``multi_label_classification``)
    outputs ``labels`` instead of ``label`` and ``confidence``: a JSON array string of the
    labels whose sigmoid probability reaches the threshold, in label-set order. The
    threshold is the ``threshold`` of the model config it was logged with (0.5 when
    absent), unless the ``threshold`` parameter of predict overrides it.
    """

    def load_context(self, context: Any) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from tasks.score.inference import pick_device

        model_dir = context.artifacts["model"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        self.model = model.to(pick_device()).eval()
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.multi_label = model.config.problem_type == PROBLEM_TYPE
        self.threshold = float((context.model_config or {}).get("threshold", 0.5))

    # No type hints on predict: MLflow would try to derive a signature from them, and the
    # signature is given explicitly when the model is logged.
    def predict(self, context, model_input, params=None):
        from tasks.score.inference import predict_probabilities

        texts = _texts_from(model_input)
        params = params or {}
        if self.multi_label:
            return self._predict_multi_label(texts, params)
        probabilities = predict_probabilities(
            self.model, self.tokenizer, texts,
            batch_size=int(params.get("batch_size", 64)),
            max_length=int(params.get("max_length", 128)),
        )
        return prediction_frame(probabilities, self.labels)

    def _predict_multi_label(self, texts: list[str], params: dict[str, Any]) -> pd.DataFrame:
        probabilities = predict_label_probabilities(
            self.model, self.tokenizer, texts,
            batch_size=int(params.get("batch_size", 64)),
            max_length=int(params.get("max_length", 128)),
        )
        threshold = float(params.get("threshold", self.threshold))
        return prediction_frame(probabilities, self.labels, threshold)


def prediction_frame(probabilities: np.ndarray, labels: list[str],
                     threshold: float | None = None) -> pd.DataFrame:
    """Build the classifier output from class probabilities, one row per text.

    Without ``threshold``: ``label``, ``confidence`` and one ``prob_<label>`` column per
    class. With ``threshold`` (multi-label): ``labels``, a JSON array string of the labels
    whose probability reaches it, in label-set order, then the ``prob_<label>`` columns.
    """
    output = pd.DataFrame(probabilities, columns=[f"prob_{label}" for label in labels])
    if threshold is not None:
        chosen = labels_above(probabilities, labels, threshold)
        output.insert(0, "labels", [json.dumps(row, ensure_ascii=False) for row in chosen])
        return output
    output.insert(0, "confidence", probabilities.max(axis=1) if len(probabilities) else [])
    output.insert(0, "label", [labels[i] for i in probabilities.argmax(axis=1)])
    return output


def _texts_from(model_input: Any) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        if "text" not in model_input.columns:
            raise ValueError(
                f"model input has no 'text' column (columns: {list(model_input.columns)})"
            )
        return [str(text) for text in model_input["text"]]
    if isinstance(model_input, dict) and "text" in model_input:
        return [str(text) for text in model_input["text"]]
    return [str(text) for text in model_input]

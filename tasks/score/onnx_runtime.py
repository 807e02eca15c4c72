"""ONNX Runtime scoring of registered text classifiers, used only where it stays accurate.

``check_version`` exports one classifier version's transformers model to ONNX and
optionally quantizes its weights to int8. It then compares the macro-F1 of each ONNX model
with that of the fp32 torch model (the registered MLflow model) on the version's frozen
evaluation set, the set the promotion gate measures on. int8 is tried first when
``score.onnx_quantize`` is set, then fp32. The first one whose macro-F1 differs from
torch's by less than ``score.onnx_tolerance`` is accepted. When neither is, the version
stays on torch.

The decision is stored as tags on the model version: ``onnx_runtime`` (int8, fp32 or
rejected), ``torch_macro_f1``, ``onnx_macro_f1``, ``onnx_macro_f1_delta`` (ONNX minus
torch), ``onnx_<precision>_macro_f1`` for each precision tried, and ``onnx_reason``. The
accepted model is logged with the version's run, together with its tokenizer, and
``onnx_artifact`` contains its URI, so scoring downloads it instead of exporting again. A
version is checked again only after ``onnx_quantize`` or ``onnx_tolerance`` changed, or
after its ``onnx_runtime`` tag was deleted.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from scipy.special import expit, softmax

from tasks.registry.pyfunc import TextClassifierModel, prediction_frame
from tasks.registry.tracking import configure_mlflow
from tasks.score.inference import length_sorted_batches
from tasks.settings import Settings
from tasks.train.pipeline import EVALUATION_ARTIFACT

log = logging.getLogger(__name__)

INT8 = "int8"
FP32 = "fp32"
REJECTED = "rejected"

RUNTIME_TAG = "onnx_runtime"
REASON_TAG = "onnx_reason"
ARTIFACT_TAG = "onnx_artifact"
TORCH_MACRO_F1_TAG = "torch_macro_f1"
ONNX_MACRO_F1_TAG = "onnx_macro_f1"
DELTA_TAG = "onnx_macro_f1_delta"
QUANTIZE_TAG = "onnx_quantize"
TOLERANCE_TAG = "onnx_tolerance"
CHECKED_AT_TAG = "onnx_checked_at"
PRECISIONS = (INT8, FP32)

MODEL_FILE = "model.onnx"
METADATA_FILE = "onnx_classifier.json"
ARTIFACT_ROOT = "onnx"
OPSET = 17
LOGITS = "logits"
EXAMPLE_TEXTS = ["an example post", "a second, somewhat longer example post"]


def precision_tag(precision: str) -> str:
    """Return the tag that stores the macro-F1 measured at ``precision`` (int8 or fp32)."""
    return f"onnx_{precision}_macro_f1"


@dataclass
class OnnxCheck:
    """Outcome of the ONNX accuracy check of one classifier version."""

    model: str
    version: str
    runtime: str  # INT8 or FP32 when an ONNX model was accepted, else REJECTED
    reason: str
    torch_macro_f1: float | None = None
    macro_f1: dict[str, float] = field(default_factory=dict)  # per precision tried, in order
    artifact: str | None = None  # URI of the accepted model's folder

    @property
    def accepted(self) -> bool:
        return self.runtime in PRECISIONS

    @property
    def onnx_macro_f1(self) -> float | None:
        """Macro-F1 of the accepted ONNX model, else of the last one tried."""
        if self.accepted:
            return self.macro_f1[self.runtime]
        return list(self.macro_f1.values())[-1] if self.macro_f1 else None

    @property
    def delta(self) -> float | None:
        """ONNX macro-F1 minus torch macro-F1."""
        if self.onnx_macro_f1 is None or self.torch_macro_f1 is None:
            return None
        return self.onnx_macro_f1 - self.torch_macro_f1


def choose_precision(torch_macro_f1: float, measured: dict[str, float],
                     tolerance: float) -> str | None:
    """Return the first precision in ``measured`` within ``tolerance`` of torch, else None.

    ``measured`` maps each precision tried, in the order of preference, to its macro-F1.
    A precision is within the tolerance when the absolute difference is less than it.
    """
    for precision, macro_f1 in measured.items():
        if abs(macro_f1 - torch_macro_f1) < tolerance:
            return precision
    return None


def export_onnx(model: Any, tokenizer: Any, path: Path) -> None:
    """Export a transformers sequence classifier to ONNX, batch and sequence axes dynamic.

    The graph takes the tokenizer's inputs (``input_ids``, ``attention_mask`` and, for
    BERT, ``token_type_ids``) as int64 and outputs ``logits``.
    """
    import torch

    # torch 2.13 defaults to the torch.export-based exporter, which needs the onnxscript
    # package. This project does not install it, so the TorchScript exporter is used.
    # NOTE: torch deprecates the TorchScript exporter and warns that it will be removed.
    # This exporter assigns input_names to forward()'s parameters by position, so the
    # example inputs follow forward()'s order, not the tokenizer's.
    names = [name for name in inspect.signature(model.forward).parameters
             if name in tokenizer.model_input_names]
    example = tokenizer(EXAMPLE_TEXTS, padding=True, return_tensors="pt")
    model = model.to("cpu").eval()
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in names}
    dynamic_axes[LOGITS] = {0: "batch"}
    with warnings.catch_warnings():
        # Tracing warns about shape checks in transformers' attention code that it turns
        # into constants. The accuracy check against torch catches a trace that is wrong.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, tuple(example[name] for name in names), str(path),
                          dynamo=False, input_names=names, output_names=[LOGITS],
                          dynamic_axes=dynamic_axes, opset_version=OPSET)


def quantize_int8(source: Path, target: Path) -> None:
    """Quantize the weights of the ONNX model at ``source`` to int8 and write it to ``target``.

    Dynamic quantization: the weights are stored as int8, and activations are quantized
    per batch at run time, so no calibration data is needed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="pulse-onnx-") as folder:
        prepared = Path(folder) / "preprocessed.onnx"
        # Symbolic shape inference of onnxruntime 1.32 fails on the exported BERT graph
        # ("Incomplete symbolic shape inference"), so only ONNX shape inference and the
        # graph optimization run before quantization.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(prepared, target, weight_type=QuantType.QInt8)


class OnnxClassifier:
    """A text classifier on ONNX Runtime whose output matches TextClassifierModel's.

    Loads a folder completed by ``add_tokenizer_and_metadata``: the ONNX model, the
    tokenizer and ``onnx_classifier.json`` with the labels, the multi-label flag and
    threshold, and the precision. Runs on the CPU.
    """

    def __init__(self, folder: Path, threads: int = 0) -> None:
        import onnxruntime
        from transformers import AutoTokenizer

        metadata = json.loads((folder / METADATA_FILE).read_text())
        self.labels: list[str] = metadata["labels"]
        self.multi_label: bool = metadata["multi_label"]
        self.threshold: float | None = metadata["threshold"]
        self.precision: str = metadata["precision"]
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        self.session = onnxruntime.InferenceSession(
            str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.input_names = [graph_input.name for graph_input in self.session.get_inputs()]

    def predict_probabilities(self, texts: Sequence[str], batch_size: int = 64,
                              max_length: int = 128) -> np.ndarray:
        """Return class probabilities in the order of ``texts``, like predict_probabilities.

        Softmax for a single-label model, sigmoid per label for a multi-label one. Texts
        are batched in the same length-sorted order as the torch path.
        """
        prepared, batches = length_sorted_batches(texts, batch_size)
        output = np.zeros((len(prepared), len(self.labels)), dtype=np.float32)
        for index in batches:
            batch = self.tokenizer([prepared[i] for i in index], padding=True, truncation=True,
                                   max_length=max_length, return_tensors="np")
            feed = {name: batch[name].astype(np.int64) for name in self.input_names}
            logits = self.session.run([LOGITS], feed)[0]
            output[index] = expit(logits) if self.multi_label else softmax(logits, axis=-1)
        return output

    def predict(self, texts: Sequence[str], params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Return the columns TextClassifierModel.predict returns for ``texts``.

        ``params`` are those of the pyfunc model: ``batch_size``, ``max_length`` and, for
        a multi-label model, ``threshold``.
        """
        params = params or {}
        probabilities = self.predict_probabilities(
            [str(text) for text in texts], batch_size=int(params.get("batch_size", 64)),
            max_length=int(params.get("max_length", 128)))
        threshold = float(params.get("threshold", self.threshold)) if self.multi_label else None
        return prediction_frame(probabilities, self.labels, threshold)


def add_tokenizer_and_metadata(folder: Path, classifier: TextClassifierModel, precision: str,
                               source_uri: str) -> None:
    """Complete a folder containing ``model.onnx`` so that OnnxClassifier can load it."""
    classifier.tokenizer.save_pretrained(folder)
    metadata = {
        "precision": precision,
        "labels": classifier.labels,
        "multi_label": classifier.multi_label,
        "threshold": classifier.threshold if classifier.multi_label else None,
        "source": source_uri,
        "opset": OPSET,
        "torch": package_version("torch"),
        "onnxruntime": package_version("onnxruntime"),
    }
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def load_classifier(artifact_uri: str, threads: int = 0) -> OnnxClassifier:
    """Download an accepted ONNX model folder (an ``onnx_artifact`` tag) and load it."""
    with tempfile.TemporaryDirectory(prefix="pulse-onnx-") as folder:
        local = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=folder)
        # The session and the tokenizer read their files while loading, so the folder can go.
        return OnnxClassifier(Path(local), threads)


def ensure_checked(settings: Settings, model_name: str, version: str) -> OnnxCheck:
    """Return the ONNX decision of a classifier version, checking it first if needed.

    The decision stored on the version is reused when it was made with the current
    ``onnx_quantize`` and ``onnx_tolerance`` and, if accepted, its model is still logged.
    """
    client = configure_mlflow(settings)
    model_version = client.get_model_version(model_name, version)
    cached = stored_check(client, model_version, settings)
    if cached is not None:
        return cached
    return check_version(settings, model_name, version)


def stored_check(client: Any, model_version: Any, settings: Settings) -> OnnxCheck | None:
    """Return the decision stored on ``model_version``, or None when it must be made again."""
    tags = model_version.tags or {}
    if RUNTIME_TAG not in tags:
        return None
    name, number = model_version.name, str(model_version.version)
    score = settings.score
    if tags.get(QUANTIZE_TAG) != _flag(score.onnx_quantize) or \
            _float(tags.get(TOLERANCE_TAG)) != score.onnx_tolerance:
        log.info("%s v%s: ONNX check ran with onnx_quantize=%s and onnx_tolerance=%s, now "
                 "%s and %s: checking again", name, number, tags.get(QUANTIZE_TAG),
                 tags.get(TOLERANCE_TAG), _flag(score.onnx_quantize), score.onnx_tolerance)
        return None
    check = OnnxCheck(
        name, number, tags[RUNTIME_TAG], tags.get(REASON_TAG, ""),
        torch_macro_f1=_float(tags.get(TORCH_MACRO_F1_TAG)),
        macro_f1={precision: float(tags[precision_tag(precision)])
                  for precision in PRECISIONS if precision_tag(precision) in tags},
        artifact=tags.get(ARTIFACT_TAG),
    )
    if check.accepted and not _artifact_exists(client, check.artifact):
        log.warning("%s v%s: the accepted ONNX model %s is missing: checking again", name,
                    number, check.artifact)
        return None
    return check


def check_version(settings: Settings, model_name: str, version: str) -> OnnxCheck:
    """Export and measure one classifier version on ONNX Runtime, and record the decision.

    Raises MlflowException when the version or its run cannot be read. A version that is
    not a text classifier, has no evaluation set, or fails to export is rejected.
    """
    client = configure_mlflow(settings)
    model_version = client.get_model_version(model_name, version)
    uri = f"models:/{model_name}/{version}"
    classifier = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    if not isinstance(classifier, TextClassifierModel):
        check = OnnxCheck(model_name, version, REJECTED,
                          f"{uri} is a {type(classifier).__name__}, not a text classifier")
        return record_check(client, check, settings)
    evaluation = _evaluation_set(client, model_version.run_id)
    if evaluation is None:
        check = OnnxCheck(model_name, version, REJECTED,
                          f"run {model_version.run_id} has no evaluation set "
                          f"({EVALUATION_ARTIFACT}) to compare the ONNX model with torch on")
        return record_check(client, check, settings)

    params = {"batch_size": settings.score.batch_size}
    torch_output = classifier.predict(None, evaluation[["text"]], params)
    torch_macro_f1 = macro_f1(evaluation, torch_output, classifier.labels)
    with tempfile.TemporaryDirectory(prefix="pulse-onnx-") as folder:
        check = _measure_onnx(Path(folder), model_name, str(version), classifier, evaluation,
                              params, torch_macro_f1, settings)
        if check.accepted:
            check.artifact = _log_model_folder(client, model_version,
                                               Path(folder) / check.runtime)
    return record_check(client, check, settings)


def _measure_onnx(folder: Path, model_name: str, version: str,
                  classifier: TextClassifierModel, evaluation: pd.DataFrame,
                  params: dict[str, Any], torch_macro_f1: float,
                  settings: Settings) -> OnnxCheck:
    """Export ``classifier`` under ``folder`` and measure each precision until one passes.

    Each precision gets its own model folder, ``folder/<precision>``. Returns the check
    without the artifact, which the caller logs.
    """
    uri = f"models:/{model_name}/{version}"
    tolerance = settings.score.onnx_tolerance
    precisions = [INT8, FP32] if settings.score.onnx_quantize else [FP32]
    exported = folder / "export" / MODEL_FILE
    exported.parent.mkdir()
    # The ONNX path is an optional speed-up, so a failed export, quantization or ONNX Runtime
    # session leaves the version on torch. ONNX Runtime's errors derive from Exception only.
    try:
        export_onnx(classifier.model, classifier.tokenizer, exported)
    except Exception as error:
        log.warning("%s: ONNX export failed, the version stays on torch: %s", uri, error,
                    exc_info=True)
        return OnnxCheck(model_name, version, REJECTED, f"ONNX export failed: {error}",
                         torch_macro_f1)

    measured: dict[str, float] = {}
    failures: list[str] = []
    for precision in precisions:
        try:
            onnx_model = _prepare_precision(folder / precision, exported, precision, classifier,
                                            uri, settings.score.threads)
            output = onnx_model.predict(list(evaluation["text"]), params)
        except Exception as error:
            log.warning("%s: the %s ONNX model failed: %s", uri, precision, error,
                        exc_info=True)
            failures.append(f"{precision} failed: {error}")
            continue
        measured[precision] = macro_f1(evaluation, output, classifier.labels)
        if choose_precision(torch_macro_f1, {precision: measured[precision]}, tolerance):
            break

    precision = choose_precision(torch_macro_f1, measured, tolerance)
    scores = ", ".join(f"{name} {value:.4f}" for name, value in measured.items())
    if precision is None:
        reasons = failures
        if measured:
            summary = (f"ONNX macro-F1 ({scores}) differs from torch's {torch_macro_f1:.4f} by "
                       f"more than the tolerance {tolerance} on {len(evaluation)} evaluation "
                       "posts")
            reasons = [summary, *failures]
        return OnnxCheck(model_name, version, REJECTED, "; ".join(reasons), torch_macro_f1,
                         measured)
    difference = measured[precision] - torch_macro_f1
    summary = (f"{precision} macro-F1 {measured[precision]:.4f} vs torch {torch_macro_f1:.4f} "
               f"(difference {difference:+.4f}, tolerance {tolerance}) on {len(evaluation)} "
               "evaluation posts")
    reasons = [summary, *failures]
    if len(measured) > 1:
        reasons.append(f"tried {scores}")
    return OnnxCheck(model_name, version, precision, "; ".join(reasons), torch_macro_f1,
                     measured)


def _prepare_precision(model_folder: Path, exported: Path, precision: str,
                       classifier: TextClassifierModel, uri: str,
                       threads: int) -> OnnxClassifier:
    """Write the model folder of one precision from the fp32 export and load it."""
    model_folder.mkdir()
    if precision == INT8:
        quantize_int8(exported, model_folder / MODEL_FILE)
    else:
        exported.replace(model_folder / MODEL_FILE)  # fp32 is tried last, so the export can move
    add_tokenizer_and_metadata(model_folder, classifier, precision, uri)
    return OnnxClassifier(model_folder, threads)


def macro_f1(evaluation: pd.DataFrame, predictions: pd.DataFrame, labels: list[str]) -> float:
    """Return the macro-F1 (scikit-learn) of classifier output on an evaluation set.

    Single-label: the ``label`` column against ``evaluation["label"]``. Multi-label: the
    ``labels`` JSON arrays against ``evaluation["labels"]``. The metrics are those of the
    promotion gate.
    """
    from tasks.evaluate.classification import (
        classification_metrics,
        multi_label_output_metrics,
    )

    if "labels" in predictions.columns:
        return multi_label_output_metrics(evaluation, predictions, labels)["macro_f1"]
    return classification_metrics(list(evaluation["label"]), list(predictions["label"]),
                                  labels)["macro_f1"]


def record_check(client: Any, check: OnnxCheck, settings: Settings) -> OnnxCheck:
    """Write ``check`` onto its model version as tags, replacing an earlier decision."""
    tags = {
        RUNTIME_TAG: check.runtime,
        REASON_TAG: check.reason[:4000],
        QUANTIZE_TAG: _flag(settings.score.onnx_quantize),
        TOLERANCE_TAG: str(settings.score.onnx_tolerance),
        CHECKED_AT_TAG: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if check.torch_macro_f1 is not None:
        tags[TORCH_MACRO_F1_TAG] = f"{check.torch_macro_f1:.4f}"
    if check.onnx_macro_f1 is not None:
        tags[ONNX_MACRO_F1_TAG] = f"{check.onnx_macro_f1:.4f}"
    if check.delta is not None:
        tags[DELTA_TAG] = f"{check.delta:+.4f}"
    for precision, value in check.macro_f1.items():
        tags[precision_tag(precision)] = f"{value:.4f}"
    if check.artifact:
        tags[ARTIFACT_TAG] = check.artifact

    stale = {TORCH_MACRO_F1_TAG, ONNX_MACRO_F1_TAG, DELTA_TAG, ARTIFACT_TAG,
             *(precision_tag(precision) for precision in PRECISIONS)} - set(tags)
    existing = client.get_model_version(check.model, check.version).tags or {}
    for key in sorted(stale & set(existing)):
        client.delete_model_version_tag(check.model, check.version, key)
    for key, value in tags.items():
        client.set_model_version_tag(check.model, check.version, key, value)
    log.info("%s v%s: ONNX runtime %s: %s", check.model, check.version, check.runtime,
             check.reason)
    return check


def _evaluation_set(client: Any, run_id: str) -> pd.DataFrame | None:
    """Return the run's frozen evaluation set, or None when the run logged none."""
    from tasks.registry.promotion import load_evaluation_set

    folder = EVALUATION_ARTIFACT.rsplit("/", 1)[0]
    if EVALUATION_ARTIFACT not in {item.path for item in client.list_artifacts(run_id, folder)}:
        return None
    return load_evaluation_set(run_id)


def _log_model_folder(client: Any, model_version: Any, folder: Path) -> str:
    """Log an accepted model folder with the version's run; return its artifact URI.

    The path names the model and version, because several versions (and models) can share
    one run.
    """
    path = f"{ARTIFACT_ROOT}/{model_version.name}/v{model_version.version}"
    client.log_artifacts(model_version.run_id, str(folder), path)
    return f"runs:/{model_version.run_id}/{path}"


def _artifact_exists(client: Any, artifact: str | None) -> bool:
    if not artifact or not artifact.startswith("runs:/"):
        return False
    run_id, path = artifact.removeprefix("runs:/").split("/", 1)
    files = client.list_artifacts(run_id, path)
    return f"{path}/{MODEL_FILE}" in {item.path for item in files}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None

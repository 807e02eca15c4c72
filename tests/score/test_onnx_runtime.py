"""ONNX Runtime scoring: export, accuracy check, decision tags and scoring.

One sentiment model is trained per module (about 20 s on two CPU cores) and shared by the
tests. Tests that need a decision of their own register a copy of its version, with the
evaluation set they need, so the order of the tests does not matter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pandas as pd
import pydantic
import pytest

from tasks import cli, storage
from tasks.collect.sample import generate_posts
from tasks.collect.stage import CLEAN
from tasks.registry import promotion
from tasks.registry.tracking import configure_mlflow
from tasks.score import batch, onnx_runtime
from tasks.score.inference import predict_probabilities
from tasks.settings import ScoreSettings, Settings, reload_settings
from tasks.train.pipeline import _log_model

MODEL = "social-pulse-sentiment"
LABELS = ["negative", "neutral", "positive"]


def _write_labeled(path: Path, day: dt.date, count: int) -> None:
    rows = [{"text": p.text, "label": p.label} for p in generate_posts(day, count=count)]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once with `pulse train sentiment` and yield the settings of its home."""
    folder = tmp_path_factory.mktemp("onnx")
    _write_labeled(folder / "train.jsonl", dt.date(2026, 1, 1), 96)
    _write_labeled(folder / "validation.jsonl", dt.date(2026, 1, 2), 40)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(folder / "home"))
        settings = reload_settings()
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(["train", "sentiment", "--train", str(folder / "train.jsonl"),
                             "--validation", str(folder / "validation.jsonl")])
        assert code == 0
        yield settings
    reload_settings()


def _with_score(settings: Settings, **changes) -> Settings:
    """Return ``settings`` with the ``score`` fields in ``changes`` replaced."""
    return settings.model_copy(update={"score": settings.score.model_copy(update=changes)})


def _register_copy(settings: Settings, evaluation: pd.DataFrame | None) -> str:
    """Register a new version with version 1's model files and the given evaluation set.

    Its run logs the ``labels`` param and, unless ``evaluation`` is None, the evaluation
    set where training logs it. Returns the new version number.
    """
    client = configure_mlflow(settings)
    original = client.get_model_version(MODEL, "1")
    with mlflow.start_run() as run:
        mlflow.log_param("labels", ",".join(LABELS))
        if evaluation is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "validation.parquet"
                evaluation.to_parquet(path, index=False)
                mlflow.log_artifact(str(path), "evaluation")
    return str(client.create_model_version(MODEL, original.source,
                                           run_id=run.info.run_id).version)


def _classifier(settings: Settings, version: str = "1"):
    configure_mlflow(settings)
    return mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}").unwrap_python_model()


def _onnx_classifier(classifier, folder: Path, precision: str) -> onnx_runtime.OnnxClassifier:
    """Export ``classifier`` into ``folder`` at ``precision`` the way the check does."""
    exported = folder / "export.onnx"
    onnx_runtime.export_onnx(classifier.model, classifier.tokenizer, exported)
    model_folder = folder / precision
    model_folder.mkdir()
    if precision == onnx_runtime.INT8:
        onnx_runtime.quantize_int8(exported, model_folder / onnx_runtime.MODEL_FILE)
    else:
        exported.replace(model_folder / onnx_runtime.MODEL_FILE)
    onnx_runtime.add_tokenizer_and_metadata(model_folder, classifier, precision, "test")
    return onnx_runtime.OnnxClassifier(model_folder)


@pytest.fixture(scope="module")
def fp32_model(trained, tmp_path_factory):
    """Return version 1's pyfunc classifier, its fp32 ONNX export and the export's path."""
    classifier = _classifier(trained)
    folder = tmp_path_factory.mktemp("fp32")
    onnx_model = _onnx_classifier(classifier, folder, onnx_runtime.FP32)
    return classifier, onnx_model, folder / onnx_runtime.FP32 / onnx_runtime.MODEL_FILE


@pytest.fixture(scope="module")
def accepted(trained):
    """Check a copy of version 1 with fp32 only and tolerance 0.01, return version and check."""
    settings = _with_score(trained, runtime="onnx", onnx_quantize=False, onnx_tolerance=0.01)
    run_id = configure_mlflow(settings).get_model_version(MODEL, "1").run_id
    version = _register_copy(settings, promotion.load_evaluation_set(run_id))
    return version, onnx_runtime.check_version(settings, MODEL, version)


def _write_posts(settings: Settings, day: dt.date, count: int) -> storage.Store:
    store = storage.open_store(settings.store)
    texts = [post.text for post in generate_posts(day, count=count, seed=7)]
    posts = pd.DataFrame({"id": [f"p{i}" for i in range(len(texts))], "text": texts})
    storage.write_frame(store, CLEAN, day, posts)
    return store


# Settings and the decision rule


def test_settings_defaults_keep_torch():
    score = ScoreSettings()
    assert score.runtime == "torch"
    assert score.onnx_quantize is True
    assert score.onnx_tolerance == 0.01


@pytest.mark.parametrize("fields", [{"onnx_tolerance": -0.01}, {"onnx_tolerance": 0.0},
                                    {"runtime": "tensorrt"}])
def test_settings_reject_invalid_values(fields):
    with pytest.raises(pydantic.ValidationError):
        ScoreSettings(**fields)


@pytest.mark.parametrize(("torch_f1", "measured", "tolerance", "expected"), [
    (0.5, {"int8": 0.5, "fp32": 0.5}, 0.001, "int8"),
    (0.5, {"int8": 0.25, "fp32": 0.5}, 0.125, "fp32"),
    (0.5, {"int8": 0.25, "fp32": 0.25}, 0.125, None),
    (0.5, {"fp32": 0.75}, 0.25, None),  # a difference equal to the tolerance fails
    (0.5, {"fp32": 0.625}, 0.25, "fp32"),
    (0.5, {"fp32": 0.75}, 0.125, None),  # higher than torch counts as a difference too
    (0.5, {}, 1.0, None),
])
def test_choose_precision(torch_f1, measured, tolerance, expected):
    assert onnx_runtime.choose_precision(torch_f1, measured, tolerance) == expected


# Export


def test_export_has_dynamic_axes(fp32_model):
    graph = onnx.load(str(fp32_model[2])).graph
    inputs = {item.name: [dim.dim_param for dim in item.type.tensor_type.shape.dim]
              for item in graph.input}
    assert inputs == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"],
                      "token_type_ids": ["batch", "sequence"]}
    assert [output.name for output in graph.output] == ["logits"]
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_fp32_probabilities_match_torch(fp32_model, batch_size):
    classifier, onnx_model, _ = fp32_model
    # Lengths from one word to past max_length, so batches pad and truncate differently.
    texts = ["ok", "great day 😍", "the bus was late again and nobody told us why " * 3,
             "awful service", "word " * 200, "今天天气很好", "meh"]

    expected = predict_probabilities(classifier.model, classifier.tokenizer, texts,
                                     batch_size=batch_size)
    actual = onnx_model.predict_probabilities(texts, batch_size=batch_size)

    assert actual.shape == (len(texts), len(LABELS))
    assert np.abs(actual - expected).max() < 1e-4


def test_onnx_output_columns_match_pyfunc(fp32_model):
    classifier, onnx_model, _ = fp32_model
    texts = pd.DataFrame({"text": ["great day", "awful service", "ok"]})

    expected = classifier.predict(None, texts)
    actual = onnx_model.predict(list(texts["text"]))

    assert list(actual.columns) == list(expected.columns)
    assert list(actual["label"]) == list(expected["label"])


# The accuracy check and its tags


def test_check_accepts_fp32_and_tags_version(trained, accepted):
    version, check = accepted
    client = configure_mlflow(trained)
    model_version = client.get_model_version(MODEL, version)
    tags = model_version.tags
    torch_f1 = promotion.measure_classifier(f"models:/{MODEL}/{version}",
                                            model_version.run_id)["macro_f1"]

    assert check.runtime == "fp32"
    assert tags["onnx_runtime"] == "fp32"
    assert tags["torch_macro_f1"] == f"{torch_f1:.4f}"
    assert abs(float(tags["onnx_macro_f1_delta"])) <= 0.01
    assert tags["onnx_macro_f1"] == tags["onnx_fp32_macro_f1"]
    assert "onnx_int8_macro_f1" not in tags
    assert tags["onnx_quantize"] == "false"
    assert tags["onnx_tolerance"] == "0.01"
    assert tags["onnx_artifact"] == check.artifact


def test_accepted_model_logged_with_run(trained, accepted):
    version, check = accepted
    client = configure_mlflow(trained)

    copy_run = client.get_model_version(MODEL, version).run_id
    folder = f"onnx/{MODEL}/v{version}"
    files = {item.path for item in client.list_artifacts(copy_run, folder)}
    assert check.artifact == f"runs:/{copy_run}/{folder}"
    assert f"{folder}/model.onnx" in files
    assert f"{folder}/onnx_classifier.json" in files
    assert f"{folder}/tokenizer.json" in files
    loaded = onnx_runtime.load_classifier(check.artifact)
    assert loaded.precision == "fp32"
    assert loaded.labels == LABELS


def test_int8_rejected_falls_back_to_fp32(trained, tmp_path):
    """int8 fails on an evaluation set made of the posts where its label differs from torch's.

    Every post is scored alone (batch size 1), because dynamic quantization scales the
    activations of a whole batch, so int8 labels depend on the other posts in the batch.
    """
    classifier = _classifier(trained)
    int8_model = _onnx_classifier(classifier, tmp_path, onnx_runtime.INT8)
    texts = [post.text for post in generate_posts(dt.date(2026, 1, 3), count=300)]
    params = {"batch_size": 1}
    torch_labels = classifier.predict(None, pd.DataFrame({"text": texts}), params)["label"]
    int8_labels = int8_model.predict(texts, params)["label"]
    differ = [i for i in range(len(texts)) if torch_labels[i] != int8_labels[i]]
    assert differ, f"int8 and torch agree on all {len(texts)} posts: use more or other posts"
    evaluation = pd.DataFrame({"text": [texts[i] for i in differ],
                               "label": [torch_labels[i] for i in differ]})
    settings = _with_score(trained, runtime="onnx", onnx_quantize=True, onnx_tolerance=0.05,
                           batch_size=1)
    version = _register_copy(settings, evaluation)

    check = onnx_runtime.check_version(settings, MODEL, version)

    tags = configure_mlflow(settings).get_model_version(MODEL, version).tags
    assert float(tags["torch_macro_f1"]) > 0.0
    assert float(tags["onnx_int8_macro_f1"]) == 0.0  # every int8 label is wrong here
    assert check.runtime == "fp32"
    assert tags["onnx_runtime"] == "fp32"
    assert tags["onnx_macro_f1"] == tags["onnx_fp32_macro_f1"]
    assert "tried int8" in tags["onnx_reason"]


def test_version_without_evaluation_set_rejected(trained):
    settings = _with_score(trained, runtime="onnx")
    version = _register_copy(settings, None)

    check = onnx_runtime.check_version(settings, MODEL, version)

    tags = configure_mlflow(settings).get_model_version(MODEL, version).tags
    assert check.runtime == "rejected"
    assert tags["onnx_runtime"] == "rejected"
    assert "no evaluation set" in tags["onnx_reason"]
    assert "onnx_artifact" not in tags


def test_failed_export_rejected(trained, monkeypatch):
    settings = _with_score(trained, runtime="onnx", onnx_quantize=False)
    run_id = configure_mlflow(settings).get_model_version(MODEL, "1").run_id
    version = _register_copy(settings, promotion.load_evaluation_set(run_id))

    def fail(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_runtime, "export_onnx", fail)
    check = onnx_runtime.check_version(settings, MODEL, version)

    assert check.runtime == "rejected"
    assert check.reason == "ONNX export failed: unsupported operator"
    assert check.torch_macro_f1 is not None


def test_failed_quantization_falls_back_to_fp32(trained, monkeypatch):
    settings = _with_score(trained, runtime="onnx", onnx_quantize=True, onnx_tolerance=0.01)
    run_id = configure_mlflow(settings).get_model_version(MODEL, "1").run_id
    version = _register_copy(settings, promotion.load_evaluation_set(run_id))

    def fail(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_runtime, "quantize_int8", fail)
    check = onnx_runtime.check_version(settings, MODEL, version)

    assert check.runtime == "fp32"
    assert "int8 failed: unsupported operator" in check.reason
    assert list(check.macro_f1) == ["fp32"]


def test_decision_reused_until_settings_change(trained, monkeypatch):
    settings = _with_score(trained, runtime="onnx", onnx_quantize=False, onnx_tolerance=0.02)
    client = configure_mlflow(settings)
    run_id = client.get_model_version(MODEL, "1").run_id
    version = _register_copy(settings, promotion.load_evaluation_set(run_id))
    first = onnx_runtime.ensure_checked(settings, MODEL, version)
    checked_at = client.get_model_version(MODEL, version).tags["onnx_checked_at"]
    exports = []
    monkeypatch.setattr(onnx_runtime, "export_onnx", lambda *args: exports.append(args))

    again = onnx_runtime.ensure_checked(settings, MODEL, version)

    assert first.runtime == "fp32"
    assert again.runtime == "fp32"
    assert again.artifact == first.artifact
    assert exports == []
    assert client.get_model_version(MODEL, version).tags["onnx_checked_at"] == checked_at

    onnx_runtime.ensure_checked(_with_score(settings, onnx_tolerance=0.03), MODEL, version)

    assert len(exports) == 1


# Scoring


def test_scoring_onnx_matches_torch_labels(trained):
    day = dt.date(2026, 2, 1)
    settings = _with_score(trained, onnx_quantize=False, onnx_tolerance=0.01)
    client = configure_mlflow(settings)
    client.set_registered_model_alias(MODEL, "champion", "1")
    store = _write_posts(settings, day, 150)

    on_torch = batch.score_partition(store, day, settings, ["sentiment"])
    torch_scores = storage.read_frame(store, "scores", day)
    on_onnx = batch.score_partition(store, day, _with_score(settings, runtime="onnx"),
                                    ["sentiment"])
    onnx_scores = storage.read_frame(store, "scores", day)

    assert on_torch["runtimes"] == {"sentiment": "torch"}
    assert on_onnx["runtimes"] == {"sentiment": "onnx-fp32"}
    assert json.loads(torch_scores["model_runtimes"][0]) == {"sentiment": "torch"}
    assert json.loads(onnx_scores["model_runtimes"][0]) == {"sentiment": "onnx-fp32"}
    assert list(onnx_scores["id"]) == list(torch_scores["id"])
    agreement = (onnx_scores["label"] == torch_scores["label"]).mean()
    assert agreement >= 0.95
    columns = [f"prob_{label}" for label in LABELS]
    assert np.abs(onnx_scores[columns].to_numpy() - torch_scores[columns].to_numpy()).max() < 1e-4
    assert store.exists(storage.partition_key("validations", day, "predictions_sentiment.json"))


def test_scoring_rejected_version_uses_torch(trained, caplog):
    day = dt.date(2026, 2, 2)
    settings = _with_score(trained, runtime="onnx")
    client = configure_mlflow(settings)
    version = _register_copy(settings, None)
    client.set_registered_model_alias(MODEL, "champion", version)
    store = _write_posts(settings, day, 20)

    with caplog.at_level(logging.INFO, logger="tasks.score.batch"):
        result = batch.score_partition(store, day, settings, ["sentiment", "entities"])

    scores = storage.read_frame(store, "scores", day)
    assert result["runtimes"] == {"sentiment": "torch"}
    assert json.loads(scores["model_runtimes"][0]) == {"sentiment": "torch"}
    assert scores["label"].isin(LABELS).all()
    assert any("runs on torch: the ONNX check rejected it" in message
               for message in caplog.messages)


def test_torch_runtime_checks_nothing(trained):
    day = dt.date(2026, 2, 3)
    settings = _with_score(trained, runtime="torch")
    client = configure_mlflow(settings)
    version = _register_copy(settings, None)
    client.set_registered_model_alias(MODEL, "champion", version)
    _write_posts(settings, day, 5)

    plan = batch.plan_scoring(storage.open_store(settings.store), day, settings, ["sentiment"])

    assert plan["runtimes"] == {"sentiment": "torch"}
    assert plan["onnx_models"] == {}
    assert "onnx_runtime" not in client.get_model_version(MODEL, version).tags


# Multi-label


def test_multi_label_check_uses_sigmoid(settings, tmp_path):
    """A multi-label classifier is exported and checked, with an untrained head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    topics = ["food", "sport", "weather"]
    folder = tmp_path / "model"
    AutoTokenizer.from_pretrained(settings.base_model_path).save_pretrained(folder)
    AutoModelForSequenceClassification.from_pretrained(
        settings.base_model_path, num_labels=len(topics),
        problem_type="multi_label_classification", id2label=dict(enumerate(topics)),
        label2id={label: i for i, label in enumerate(topics)}).save_pretrained(folder)
    evaluation = pd.DataFrame({
        "text": ["pizza and football", "rain all day", "reading a book", "snow and soup"],
        "labels": [["food", "sport"], ["weather"], [], ["food", "weather"]]})
    name = "social-pulse-topics"
    client = configure_mlflow(settings)
    with mlflow.start_run():
        mlflow.log_param("labels", ",".join(topics))
        path = tmp_path / "validation.parquet"
        evaluation.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), "evaluation")
        info = _log_model(folder, name, evaluation, topics, threshold=0.5)
    version = str(info.registered_model_version)
    onnx_settings = _with_score(settings, runtime="onnx", onnx_quantize=False)

    check = onnx_runtime.check_version(onnx_settings, name, version)

    assert check.runtime == "fp32"
    assert client.get_model_version(name, version).tags["onnx_runtime"] == "fp32"
    onnx_model = onnx_runtime.load_classifier(check.artifact)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    expected = pyfunc.predict(evaluation[["text"]])
    actual = onnx_model.predict(list(evaluation["text"]))
    assert onnx_model.multi_label
    assert list(actual.columns) == list(expected.columns)
    assert list(actual["labels"]) == list(expected["labels"])
    columns = [f"prob_{topic}" for topic in topics]
    assert np.abs(actual[columns].to_numpy() - expected[columns].to_numpy()).max() < 1e-4

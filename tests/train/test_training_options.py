"""Training options: LoRA, any label set, class weights, vocabulary extension."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tasks import cli
from tasks.commands import resolve_labels
from tasks.registry.tracking import configure_mlflow
from tasks.settings import TrainSettings, reload_settings
from tasks.train.classifier import _class_weights, training_arguments
from tasks.train.vocabulary import extend_vocabulary, unknown_token_rate

EMOTIONS = ["anger", "joy", "sadness"]
TEXTS = {
    "anger": ["this makes me furious", "so angry at the delay", "I am livid right now"],
    "joy": ["what a wonderful day", "so happy with the result", "loving this sunshine"],
    "sadness": ["I miss you so much", "feeling down today", "such a sad ending"],
}


def _write(path: Path, repeat: int) -> Path:
    rows = [{"text": f"{text} {n}", "label": label}
            for n in range(repeat) for label, texts in TEXTS.items() for text in texts]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_labels_from_data(tmp_path, settings):
    path = _write(tmp_path / "train.jsonl", 1)
    assert resolve_labels("emotion", None, path, settings) == EMOTIONS


def test_labels_from_settings(tmp_path, settings):
    path = _write(tmp_path / "train.jsonl", 1)
    assert resolve_labels("sentiment", None, path, settings) == ["negative", "neutral", "positive"]


def test_class_weights_inverse_frequency():
    train = pd.DataFrame({"label": ["a"] * 6 + ["b"] * 2})
    weights = _class_weights(train, ["a", "b"])
    assert weights == pytest.approx([8 / 12, 8 / 4])


def test_cpu_arguments_use_fp32(tmp_path):
    arguments = training_arguments(TrainSettings(gradient_accumulation_steps=4), 100, tmp_path)
    assert arguments.gradient_accumulation_steps == 4
    assert not arguments.fp16
    assert not arguments.bf16


def test_vocabulary_extension_covers_chinese(settings):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["今天的演唱会太棒了", "地铁又晚点了真让人生气", "今天天气很好"] * 3
    tokenizer = AutoTokenizer.from_pretrained(settings.base_model_path)
    model = AutoModelForSequenceClassification.from_pretrained(settings.base_model_path, num_labels=2)
    before = unknown_token_rate(tokenizer, texts)
    added = extend_vocabulary(tokenizer, model, texts, min_count=3)
    assert before > 0.5
    assert added > 5
    assert unknown_token_rate(tokenizer, texts) == 0.0
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)


@pytest.fixture(scope="module")
def lora_version(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora")
    train, validation = _write(folder / "t.jsonl", 4), _write(folder / "v.jsonl", 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(folder / "home"))
        patch.setenv("PULSE_TRAIN__METHOD", "lora")
        patch.setenv("PULSE_TRAIN__CLASS_WEIGHTS", "true")
        settings = reload_settings()
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = cli.main(["train", "emotion", "--train", str(train), "--validation", str(validation)])
        yield settings, code, output.getvalue().strip().splitlines()[-1]
    reload_settings()


def test_lora_registers_task_model(lora_version):
    _, code, uri = lora_version
    assert code == 0
    assert uri == "models:/social-pulse-emotion/1"


def test_lora_run_records_method(lora_version):
    settings, _, _ = lora_version
    client = configure_mlflow(settings)
    run = client.get_run(client.get_model_version("social-pulse-emotion", "1").run_id)
    assert run.data.params["method"] == "lora"
    assert run.data.params["labels"] == ",".join(EMOTIONS)


def test_lora_model_predicts_labels(lora_version):
    settings, _, uri = lora_version
    configure_mlflow(settings)
    output = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"text": ["so happy today"]}))
    assert list(output.columns) == ["label", "confidence", "prob_anger", "prob_joy", "prob_sadness"]

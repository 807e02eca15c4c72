"""Multi-label classification: label-list files, metrics, and a short real training run.

The training set is built from topic words (weather, sport, food) mixed so that a post
carries zero, one or two topics. One model is trained per module and shared by the tests.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import logging
import random
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from tasks import cli, commands, storage
from tasks.collect.stage import CLEAN
from tasks.commands import read_multi_labeled_file, resolve_labels
from tasks.evaluate.classification import multi_label_metrics, multi_label_output_metrics
from tasks.registry import promotion
from tasks.registry.tracking import configure_mlflow
from tasks.score import batch
from tasks.settings import reload_settings
from tasks.train.classifier import WeightedTrainer
from tasks.train.multilabel import InvalidLabelRow, parse_label_list, positive_weights

TOPICS = ["food", "sport", "weather"]
WORDS = {
    "weather": ["rain", "storm", "snow", "thunder", "sunshine", "fog"],
    "sport": ["football", "goal", "tennis", "match", "league", "referee"],
    "food": ["pizza", "pasta", "burger", "soup", "noodles", "cake"],
}
FILLERS = ["my phone battery died", "reading a book at home", "the meeting ran late",
           "new shoes arrived", "watching the clock"]
MODEL = "social-pulse-topics"


def _post(rng: random.Random, topics: list[str]) -> dict:
    """Return a post mentioning two words of each topic, or a filler sentence for none."""
    words = [word for topic in topics for word in rng.sample(WORDS[topic], 2)]
    rng.shuffle(words)
    text = " and ".join(words) if words else rng.choice(FILLERS)
    return {"text": f"{text} {rng.randint(1, 999)}", "labels": sorted(topics)}


def _topic_sets() -> list[list[str]]:
    """Return the eight topic sets of one round: two with no topic, three singles, three pairs."""
    singles = [[topic] for topic in TOPICS]
    pairs = [[a, b] for i, a in enumerate(TOPICS) for b in TOPICS[i + 1:]]
    return [[], [], *singles, *pairs]


def _write_posts(path: Path, seed: int, repeat: int) -> Path:
    rng = random.Random(seed)
    rows = [_post(rng, topics) for _ in range(repeat) for topics in _topic_sets()]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# Reading label lists


def test_parse_label_list_formats():
    assert parse_label_list(["sport", "food"]) == ["sport", "food"]
    assert parse_label_list("sport|food") == ["sport", "food"]
    assert parse_label_list("sport, food") == ["sport", "food"]
    assert parse_label_list('["sport", "food"]') == ["sport", "food"]
    assert parse_label_list("sport|sport") == ["sport"]
    assert parse_label_list([]) == []
    assert parse_label_list("") == []


@pytest.mark.parametrize("value", [None, 3, [1, 2], '["sport"', {"sport": 1}])
def test_parse_label_list_rejects(value):
    with pytest.raises(InvalidLabelRow):
        parse_label_list(value)


def test_read_jsonl_label_fields(tmp_path, caplog):
    path = tmp_path / "topics.jsonl"
    rows = [
        {"text": "rain and pizza", "labels": ["weather", "food"]},
        {"text": "rain again", "label": ["weather"]},
        {"text": "goal!", "labels": "sport|food"},
        {"text": "just a phone call", "labels": []},
        {"text": "hail", "labels": ["weather", "hail"]},
        {"text": "", "labels": ["food"]},
        {"text": "no labels field"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "{broken\n")
    with caplog.at_level(logging.WARNING, logger="tasks.commands"):
        frame = read_multi_labeled_file(path, TOPICS)

    assert frame["text"].tolist() == ["rain and pizza", "rain again", "goal!", "just a phone call"]
    assert frame["labels"].tolist() == [["weather", "food"], ["weather"], ["sport", "food"], []]
    assert frame["line"].tolist() == [1, 2, 3, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert warnings[0].startswith(
        "topics.jsonl line 5 skipped: label 'hail' is not in the label set")
    assert "add 'hail' to the label set with --labels" in warnings[0]
    assert warnings[1].startswith("topics.jsonl line 6 skipped: text is missing or empty")
    assert warnings[2].startswith("topics.jsonl line 7 skipped: labels are missing")
    assert warnings[3].startswith("topics.jsonl line 8 skipped: invalid JSON")


def test_read_csv_label_strings(tmp_path, caplog):
    path = tmp_path / "topics.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "labels"])
        writer.writerow(["rain and pizza", "weather|food"])
        writer.writerow(["a goal\nin the rain", "sport,weather"])
        writer.writerow(["nothing here", ""])
        writer.writerow(["tacos", "food|tacos"])
    with caplog.at_level(logging.WARNING, logger="tasks.commands"):
        frame = read_multi_labeled_file(path, TOPICS)

    assert frame["labels"].tolist() == [["weather", "food"], ["sport", "weather"], []]
    assert frame["line"].tolist() == [2, 3, 5]
    assert frame["text"][1] == "a goal in the rain"
    assert any("topics.csv line 6 skipped: label 'tacos'" in m for m in caplog.messages)


def test_read_rejects_label_studio_json(tmp_path):
    path = tmp_path / "export.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match="JSONL or CSV"):
        read_multi_labeled_file(path, TOPICS)


def test_read_without_valid_rows_fails(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "x", "labels": ["other"]}) + "\n")
    with pytest.raises(ValueError, match="no valid rows"):
        read_multi_labeled_file(path, TOPICS)


def test_labels_from_multi_label_data(tmp_path, settings):
    path = _write_posts(tmp_path / "train.jsonl", seed=1, repeat=1)
    assert resolve_labels("topics", None, path, settings, multi_label=True) == TOPICS


def test_positive_weights_from_frequencies():
    weights = positive_weights([["a"], ["a", "b"], [], ["a"]], ["a", "b", "c"])
    assert weights == pytest.approx([1 / 3, 3.0, 4.0])


def test_weighted_loss_multi_label():
    """With class weights, the multi-label loss is BCE whose positives weigh pos_weight."""
    logits = torch.tensor([[2.0, -1.0]])
    trainer = SimpleNamespace(class_weights=[3.0, 1.0], multi_label=True)
    inputs = {"input_ids": torch.tensor([[1, 2]]), "labels": torch.tensor([[1.0, 0.0]])}
    loss = WeightedTrainer.compute_loss(trainer, lambda **_: SimpleNamespace(logits=logits),
                                        inputs)
    # (3 * -log(sigmoid(2)) + -log(1 - sigmoid(-1))) / 2 = (3 * 0.126928 + 0.313262) / 2
    assert float(loss) == pytest.approx(0.347023, abs=1e-5)


# Metrics on hand-computed multi-hot examples


def test_multi_label_metrics_by_hand():
    truth = [["a"], [], ["a", "b"], ["b"]]
    predicted = [["a"], [], ["a"], ["b", "c"]]
    metrics = multi_label_metrics(truth, predicted, ["a", "b", "c"])

    # Counts over all labels: tp 3 (a, a, b), fp 1 (c), fn 1 (b).
    assert metrics["micro_precision"] == pytest.approx(3 / 4)
    assert metrics["micro_recall"] == pytest.approx(3 / 4)
    assert metrics["micro_f1"] == pytest.approx(3 / 4)
    # Per label: a 1.0; b precision 1, recall 1/2, F1 2/3; c never true, F1 0.
    assert metrics["f1_a"] == pytest.approx(1.0)
    assert metrics["f1_b"] == pytest.approx(2 / 3)
    assert metrics["f1_c"] == 0.0
    assert metrics["recall_b"] == pytest.approx(0.5)
    assert metrics["support_b"] == 2.0
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert metrics["macro_precision"] == pytest.approx((1 + 1 + 0) / 3)
    assert metrics["macro_recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    # Per post: 1, 1 (nothing true and nothing predicted), 2/3, 2/3.
    assert metrics["samples_f1"] == pytest.approx((1 + 1 + 2 / 3 + 2 / 3) / 4)
    assert metrics["subset_accuracy"] == pytest.approx(0.5)


def test_multi_label_metrics_perfect_and_empty():
    truth = [["a", "b"], [], ["b"]]
    metrics = multi_label_metrics(truth, truth, ["a", "b"])
    assert metrics["macro_f1"] == 1.0
    assert metrics["samples_f1"] == 1.0
    nothing = multi_label_metrics(truth, [[], [], []], ["a", "b"])
    assert nothing["micro_f1"] == 0.0
    assert nothing["samples_f1"] == pytest.approx(1 / 3)


def test_output_metrics_read_json_and_parquet_arrays():
    parquet_lists = [np.array(["a", "b"], dtype=object), np.array([], dtype=object)]
    evaluation = pd.DataFrame({"text": ["x", "y"], "labels": parquet_lists})
    predictions = pd.DataFrame({"labels": ['["a"]', "[]"]})
    metrics = multi_label_output_metrics(evaluation, predictions, ["a", "b"])
    assert metrics["micro_recall"] == pytest.approx(0.5)
    assert metrics["micro_precision"] == 1.0
    assert metrics["samples_f1"] == pytest.approx((2 / 3 + 1) / 2)


# A short real training run, registration and prediction


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once with `pulse train topics --multi-label`; yield settings, exit code and URI."""
    folder = tmp_path_factory.mktemp("multi")
    train = _write_posts(folder / "train.jsonl", seed=1, repeat=7)
    validation = _write_posts(folder / "validation.jsonl", seed=2, repeat=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(folder / "home"))
        patch.setenv("PULSE_TRAIN__EPOCHS", "2")
        patch.setenv("PULSE_TRAIN__LEARNING_RATE", "5e-4")
        patch.setenv("PULSE_TRAIN__BATCH_SIZE", "8")
        patch.setenv("PULSE_TRAIN__MAX_LENGTH", "24")
        settings = reload_settings()
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = cli.main(["train", "topics", "--multi-label", "--labels", ",".join(TOPICS),
                             "--train", str(train), "--validation", str(validation)])
        yield {"settings": settings, "code": code, "folder": folder,
               "uri": output.getvalue().strip().splitlines()[-1]}
    reload_settings()


def test_multi_label_training_registers(trained):
    assert trained["code"] == 0
    assert trained["uri"] == f"models:/{MODEL}/1"


def test_multi_label_run_metrics(trained):
    client = configure_mlflow(trained["settings"])
    version = client.get_model_version(MODEL, "1")
    run = client.get_run(version.run_id)
    assert run.data.params["multi_label"] == "True"
    assert run.data.params["labels"] == "food,sport,weather"
    for key in ("macro_f1", "micro_f1", "samples_f1", "micro_precision", "macro_recall",
                "f1_food", "f1_sport", "f1_weather"):
        assert key in run.data.metrics
    assert run.data.metrics["macro_f1"] >= 0.8
    assert version.tags["validation_micro_f1"] == f"{run.data.metrics['micro_f1']:.4f}"
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/label_confusion.png" in artifacts


def test_multi_label_pyfunc_output(trained):
    configure_mlflow(trained["settings"])
    model = mlflow.pyfunc.load_model(trained["uri"])
    texts = ["pizza and storm and rain and soup", "tennis and goal", "reading a book at home"]
    output = model.predict(pd.DataFrame({"text": texts}))

    assert list(output.columns) == ["labels", "prob_food", "prob_sport", "prob_weather"]
    assert [json.loads(row) for row in output["labels"]] == [["food", "weather"], ["sport"], []]
    assert output["prob_food"][0] > 0.5
    assert output["prob_sport"][2] < 0.5
    forced = model.predict(pd.DataFrame({"text": texts[:1]}), params={"threshold": 0.0})
    assert json.loads(forced["labels"][0]) == TOPICS


def test_multi_label_predict_cli(trained, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "noodles and cake and thunder and fog"})
                      + "\n" + json.dumps({"id": "b", "text": "the meeting ran late"}) + "\n"
                      + json.dumps({"id": "c"}) + "\n")
    target = tmp_path / "out.jsonl"
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["predict", "topics", "--input", str(source), "--output", str(target),
                         "--model", trained["uri"]])
    rows = [json.loads(line) for line in target.read_text().splitlines()]

    assert code == 0
    assert rows[0]["labels"] == ["food", "weather"]
    assert rows[1]["labels"] == []
    assert "label" not in rows[0]
    assert set(rows[0]["probabilities"]) == set(TOPICS)
    assert "text" in rows[2]["error"]


def test_multi_label_promotion_evaluates(trained):
    configure_mlflow(trained["settings"])
    client = mlflow.MlflowClient()
    run_id = client.get_model_version(MODEL, "1").run_id
    evaluation = promotion.load_evaluation_set(run_id)
    metrics = promotion.evaluate_model(trained["uri"], evaluation, TOPICS)
    logged = client.get_run(run_id).data.metrics
    assert len(evaluation) == 16
    assert metrics["macro_f1"] == pytest.approx(logged["macro_f1"], abs=1e-6)
    assert metrics["samples_f1"] == pytest.approx(logged["samples_f1"], abs=1e-6)


def test_multi_label_batch_scoring(trained):
    """Batch scoring writes the task's labels as a JSON array column, with no extra flag."""
    settings = trained["settings"]
    client = configure_mlflow(settings)
    client.set_registered_model_alias(MODEL, "champion", "1")
    day = dt.date(2026, 3, 1)
    store = storage.open_store(settings.store)
    posts = pd.DataFrame({"id": ["p1", "p2"],
                          "text": ["tennis and match and soup and cake", "new shoes arrived"]})
    storage.write_frame(store, CLEAN, day, posts)

    result = batch.score_partition(store, day, settings, ["topics"])

    scores = storage.read_frame(store, "scores", day)
    assert result["models"] == {"topics": "1"}
    assert [json.loads(row) for row in scores["topics_labels"]] == [["food", "sport"], []]
    assert {"topics_prob_food", "topics_prob_sport", "topics_prob_weather"} <= set(scores.columns)


def test_multi_label_task_from_settings(tmp_path, monkeypatch):
    """A task listed in multi_label_tasks trains as multi-label without --multi-label."""
    calls = []

    def record_call(train, validation, labels, settings, name, tags, multi_label=False):
        calls.append({"labels": labels, "multi_label": multi_label,
                      "rows": train["labels"].tolist()})
        raise RuntimeError("stop before training")

    monkeypatch.setenv("PULSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PULSE_MULTI_LABEL_TASKS", '["topics"]')
    reload_settings()
    monkeypatch.setattr(commands, "train_and_register", record_call)
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"text": "rain and pizza", "labels": "weather|food"}) + "\n"
                    + json.dumps({"text": "goal", "labels": ["sport"]}) + "\n")
    try:
        code = cli.main(["train", "topics", "--train", str(path), "--validation", str(path)])
    finally:
        monkeypatch.undo()
        reload_settings()

    assert code == 1
    assert calls == [{"labels": TOPICS, "multi_label": True,
                      "rows": [["weather", "food"], ["sport"]]}]


def test_multi_label_flag_rejected_for_entities(tmp_path, caplog):
    path = tmp_path / "t.conll"
    path.write_text("")
    code = cli.main(["train", "entities", "--multi-label", "--train", str(path),
                     "--validation", str(path)])
    assert code == 2
    assert any("--multi-label applies to classification tasks" in m for m in caplog.messages)


@pytest.mark.parametrize("task", ["entities", "retrieval"])
def test_label_set_rejected_for_entities_and_retrieval(tmp_path, caplog, task):
    path = tmp_path / "t.conll"
    path.write_text("")
    code = cli.main(["train", task, "--labels", "a,b", "--train", str(path),
                     "--validation", str(path)])
    assert code == 2
    assert any(f"--labels applies to classification tasks, not {task}" in m
               for m in caplog.messages)

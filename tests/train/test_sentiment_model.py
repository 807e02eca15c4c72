"""Training, registration, prediction and the promotion gate on a tiny real training run.

One model is trained per module (about 20 s on two CPU cores) and shared by the tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re

import mlflow
import pandas as pd
import pytest

from tasks import cli, storage
from tasks.collect.sample import generate_posts
from tasks.collect.stage import CLEAN
from tasks.registry import promotion
from tasks.registry.tracking import champion_version, configure_mlflow
from tasks.score import batch
from tasks.settings import reload_settings
from tasks.train.pipeline import EVALUATION_ARTIFACT

MODEL = "social-pulse-sentiment"


def _write_labeled(path, day: dt.date, count: int) -> None:
    rows = [{"text": p.text, "label": p.label} for p in generate_posts(day, count=count)]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once with `pulse train sentiment`; yield the settings and the printed URI."""
    folder = tmp_path_factory.mktemp("train")
    _write_labeled(folder / "train.jsonl", dt.date(2026, 1, 1), 96)
    _write_labeled(folder / "validation.jsonl", dt.date(2026, 1, 2), 40)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(folder / "home"))
        settings = reload_settings()
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = cli.main(["train", "sentiment", "--train", str(folder / "train.jsonl"),
                             "--validation", str(folder / "validation.jsonl")])
        yield {"settings": settings, "code": code, "stdout": output.getvalue(), "folder": folder}
    reload_settings()


def test_train_prints_uri_last(trained):
    assert trained["code"] == 0
    last_line = trained["stdout"].strip().splitlines()[-1]
    assert re.fullmatch(r"models:/social-pulse-sentiment/\d+", last_line)


def test_version_tagged_with_data_and_code(trained):
    client = configure_mlflow(trained["settings"])
    version = client.get_model_version(MODEL, "1")
    assert version.tags["data.train_file"].endswith("train.jsonl")
    assert version.tags["data.train_size"] == "96"
    assert version.tags["code_version"]
    assert 0.0 <= float(version.tags["validation_macro_f1"]) <= 1.0


def test_run_logs_metrics_and_plots(trained):
    client = configure_mlflow(trained["settings"])
    run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "f1_negative"):
        assert key in run.data.metrics
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in artifacts
    assert EVALUATION_ARTIFACT in artifacts


def test_pyfunc_outputs_probabilities(trained):
    configure_mlflow(trained["settings"])
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
    output = model.predict(pd.DataFrame({"text": ["great day 😍", "awful service", "ok"]}))
    assert list(output.columns) == ["label", "confidence", "prob_negative", "prob_neutral",
                                    "prob_positive"]
    sums = output[["prob_negative", "prob_neutral", "prob_positive"]].sum(axis=1)
    assert sums.round(4).tolist() == [1.0, 1.0, 1.0]
    assert set(output["label"]) <= {"negative", "neutral", "positive"}


def test_predict_cli_keeps_ids_and_reports_bad_lines(trained, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "p1", "text": "love it", "user": "x"}) + "\n"
        + "{not json\n"
        + json.dumps({"id": "p3"}) + "\n"
        + json.dumps({"text": "no id here"}) + "\n"
    )
    target = tmp_path / "out.jsonl"
    code = cli.main(["predict", "sentiment", "--input", str(source), "--output", str(target),
                     "--model", f"models:/{MODEL}/1"])
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert code == 0
    assert [row["id"] for row in rows] == ["p1", 2, "p3", 4]
    assert rows[0]["input_fields"] == {"user": "x"}
    assert set(rows[0]["probabilities"]) == {"negative", "neutral", "positive"}
    assert "invalid JSON" in rows[1]["error"]
    assert "text" in rows[2]["error"]
    assert rows[3]["label"] in {"negative", "neutral", "positive"}


def test_predict_csv_uses_line_numbers(trained, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('text,extra\n"multi\nline post",1\nsecond,2\n')
    target = tmp_path / "out.jsonl"
    cli.main(["predict", "sentiment", "--input", str(source), "--output", str(target),
              "--model", f"models:/{MODEL}/1"])
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["id"] for row in rows] == [2, 4]  # the first row spans lines 2 and 3


def test_predict_without_champion_fails_clearly(trained, tmp_path, caplog):
    configure_mlflow(trained["settings"])
    client = mlflow.MlflowClient()
    if champion_version(client, MODEL, "champion") is not None:
        client.delete_registered_model_alias(MODEL, "champion")
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "hi"}) + "\n")
    code = cli.main(["predict", "sentiment", "--input", str(source),
                     "--output", str(tmp_path / "out.jsonl")])
    assert code != 0


def test_gate_first_version_then_regression(trained, register_candidate):
    settings = trained["settings"]
    client = configure_mlflow(settings)
    for alias in ("champion",):
        if champion_version(client, MODEL, alias) is not None:
            client.delete_registered_model_alias(MODEL, alias)

    first = promotion.promote_latest(settings, MODEL)
    assert first.promoted
    assert "first version: no champion to compare with" in first.reasons
    assert "training data quality passed" in first.reasons
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == first.candidate

    worse = register_candidate(client, MODEL, {"macro_f1": 0.0})
    decision = promotion.promote_latest(settings, MODEL)
    assert decision.candidate == worse
    assert not decision.promoted
    assert any("regression" in reason for reason in decision.reasons)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == first.candidate
    assert client.get_model_version(MODEL, worse).tags["promotion_decision"] == "rejected"


def test_gate_floor_rejects(trained, monkeypatch, register_candidate):
    monkeypatch.setenv("PULSE_REGISTRY__MACRO_F1_FLOOR", "0.99")
    settings = reload_settings()
    client = configure_mlflow(settings)
    candidate = register_candidate(client, MODEL, {"macro_f1": 0.5})
    decision = promotion.promote_latest(settings, MODEL)
    assert decision.candidate == candidate
    assert not decision.promoted
    assert "floor 0.99" in decision.reasons[0]
    assert "rejected" in client.get_model_version(MODEL, candidate).description


def test_gate_skips_decided_version(trained):
    settings = reload_settings()
    decision = promotion.promote_latest(settings, MODEL)
    assert not decision.promoted
    assert "already decided" in decision.reasons[0]


def test_gate_rejects_one_class_far_below_champion(trained, register_candidate):
    settings = reload_settings()
    client = configure_mlflow(settings)
    champion = client.get_run(client.get_model_version(MODEL, "1").run_id).data.metrics
    # Same macro-F1 as the champion, but one class 0.3 lower (tolerance 0.1).
    candidate = register_candidate(client, MODEL, {
        "macro_f1": champion["macro_f1"], "f1_negative": champion["f1_negative"] - 0.3,
        "f1_neutral": champion["f1_neutral"], "f1_positive": champion["f1_positive"]})
    decision = promotion.promote_latest(settings, MODEL)
    assert decision.candidate == candidate
    assert decision.status == "rejected"
    assert any(reason.startswith("per-class F1 more than 0.1 below the champion: negative")
               for reason in decision.reasons), decision.reasons


def test_gate_rejects_failed_training_data(trained, register_candidate):
    settings = reload_settings()
    client = configure_mlflow(settings)
    candidate = register_candidate(client, MODEL, {"macro_f1": 1.0})
    run_id = client.get_model_version(MODEL, candidate).run_id
    client.set_tag(run_id, "data_quality", "failed: label is not in the task's label set")
    decision = promotion.promote_latest(settings, MODEL)
    assert decision.status == "rejected"
    assert ("training data quality failed: label is not in the task's label set"
            in decision.reasons)
    assert client.get_model_version(MODEL, candidate).tags["promotion_decision"] == "rejected"


def test_deploy_then_rollback(trained, register_candidate):
    settings = reload_settings()
    client = configure_mlflow(settings)
    before = str(client.get_model_version_by_alias(MODEL, "champion").version)
    metrics = client.get_run(client.get_model_version(MODEL, "1").run_id).data.metrics
    candidate = register_candidate(client, MODEL, {
        key: value for key, value in metrics.items() if key == "macro_f1" or key.startswith("f1_")})

    checked = promotion.validate_latest(settings, MODEL)
    assert checked.status == "challenger"
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == candidate
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == before

    deployed = promotion.deploy_challenger(settings, MODEL)
    assert deployed.promoted and deployed.champion_after == candidate
    assert deployed.reasons[-1] == f"deployed: champion moved from v{before} to v{candidate}"
    version = client.get_model_version(MODEL, candidate)
    assert version.tags["previous_champion"] == before
    assert version.description.startswith("promoted: ")
    assert champion_version(client, MODEL, "challenger") is None

    code = cli.main(["rollback", "sentiment", "--reason", "complaints about neutral posts"])
    assert code == 0
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == before
    rolled = client.get_model_version(MODEL, candidate)
    assert rolled.tags["promotion_decision"] == "rolled back"
    assert rolled.tags["rollback_reason"] == "complaints about neutral posts"
    assert "after a rollback from v" in client.get_model_version(MODEL, before).description
    # The restored version 1 was the first champion, so a second rollback has nowhere to go.
    assert before == "1"
    assert cli.main(["rollback", "sentiment", "--reason", "again"]) == 2


def test_predict_keeps_line_field_and_null_id(trained, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": None, "text": "fine", "line": 999}) + "\n")
    target = tmp_path / "out.jsonl"
    cli.main(["predict", "sentiment", "--input", str(source), "--output", str(target),
              "--model", f"models:/{MODEL}/1"])
    row = json.loads(target.read_text())
    assert row["id"] == 1
    assert row["input_fields"] == {"line": 999}


def test_predict_unknown_version_fails_clearly(trained, tmp_path, caplog):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "hi"}) + "\n")
    code = cli.main(["predict", "sentiment", "--input", str(source),
                     "--output", str(tmp_path / "out.jsonl"), "--model", f"models:/{MODEL}/99"])
    assert code == 2
    assert any("could not be loaded" in message for message in caplog.messages)


def test_predict_output_folder_rejected(trained, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "hi"}) + "\n")
    code = cli.main(["predict", "sentiment", "--input", str(source), "--output", str(tmp_path),
                     "--model", f"models:/{MODEL}/1"])
    assert code == 2


def test_scores_hold_every_classifier(trained):
    """A second classification task's champion adds prefixed columns beside sentiment's."""
    settings = trained["settings"]
    client = configure_mlflow(settings)
    source = client.get_model_version(MODEL, "1")
    client.create_registered_model("social-pulse-emotion")
    emotion = client.create_model_version("social-pulse-emotion", source.source,
                                          run_id=source.run_id)
    client.set_registered_model_alias("social-pulse-emotion", "champion", emotion.version)
    client.set_registered_model_alias(MODEL, "champion", "1")
    day = dt.date(2026, 2, 1)
    store = storage.open_store(settings.store)
    posts = pd.DataFrame({"id": ["x", "y"], "text": ["great day!", "awful service"]})
    storage.write_frame(store, CLEAN, day, posts)

    result = batch.score_partition(store, day, settings, ["sentiment", "emotion", "entities"])

    scores = storage.read_frame(store, "scores", day)
    assert result["models"] == {"sentiment": "1", "emotion": str(emotion.version)}
    assert {"label", "confidence", "emotion_label", "emotion_confidence",
            "emotion_prob_positive"} <= set(scores.columns)
    assert "entities" not in scores.columns
    # The same model under two names predicts the same labels.
    assert list(scores["label"]) == list(scores["emotion_label"])
    assert scores["embedding_position"].isna().all()  # no index was built for this day
    assert list(scores["model_version"]) == ["1", "1"]
    for suite in ("scores", "predictions_sentiment", "predictions_emotion"):
        assert store.exists(storage.partition_key("validations", day, f"{suite}.json"))


def test_score_shard_ignores_ambient_registry(trained, tmp_path, monkeypatch):
    """A shard loads models from the configured registry, not from MLFLOW_* variables."""
    settings = trained["settings"]
    client = configure_mlflow(settings)
    client.set_registered_model_alias(MODEL, "champion", "1")
    day = dt.date(2026, 2, 2)
    store = storage.open_store(settings.store)
    posts = pd.DataFrame({"id": ["a", "b", "c"], "text": ["nice", "bad", "ok then"]})
    storage.write_frame(store, CLEAN, day, posts)
    plan = batch.plan_scoring(store, day, settings)
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", elsewhere)
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)

    try:
        result = batch.score_shard(store, day, settings, plan, 0)
    finally:
        configure_mlflow(settings)

    assert result["count"] == 3

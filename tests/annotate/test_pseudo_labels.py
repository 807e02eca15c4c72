"""Pseudo labels: confidence filter, per-class caps, their own dataset, and training with them."""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pandas as pd
import pytest

from tasks import jobs, storage
from tasks.annotate.labels import LABELS, import_labels, load_all_labels
from tasks.annotate.preannotate import Champion
from tasks.annotate.pseudo import (
    PSEUDO_COLUMNS,
    PSEUDO_LABELS,
    create_pseudo_labels,
    load_pseudo_labels,
    pseudo_labels_for_training,
    select_pseudo_labels,
    unlabeled_posts,
)
from tasks.collect.sample import generate_posts
from tasks.collect.stage import CLEAN
from tasks.train.classifier import split_by_hash
from tasks.train.pipeline import train_and_register

DAY = dt.date(2024, 3, 1)
LABEL_SET = ["negative", "neutral", "positive"]

# Post id -> probabilities (negative, neutral, positive).
PREDICTIONS = {
    "n1": [0.92, 0.05, 0.03],
    "n2": [0.99, 0.005, 0.005],
    "n3": [0.95, 0.03, 0.02],
    "p1": [0.02, 0.01, 0.97],
    "p2": [0.05, 0.06, 0.89],  # below 0.9
    "u1": [0.30, 0.60, 0.10],  # neutral, not confident
    "x1": [0.05, 0.05, 0.90],  # exactly at the threshold
}


def posts_frame(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "text": [f"post {post_id}" for post_id in ids],
                         "lang": ["en"] * len(ids)})


def predicted(ids: list[str]) -> np.ndarray:
    return np.array([PREDICTIONS[post_id] for post_id in ids])


class FakeSentimentModel:
    """Stands in for a sentiment pyfunc: probabilities looked up by the post id in the text."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        rows = np.array([PREDICTIONS[text.removeprefix("post ")] for text in frame["text"]])
        return pd.DataFrame(rows, columns=[f"prob_{label}" for label in LABEL_SET])


@pytest.fixture
def store(tmp_path) -> storage.LocalStore:
    return storage.LocalStore(tmp_path / "store")


# filtering and caps


def test_threshold_and_balance_cap(caplog):
    ids = list(PREDICTIONS)

    with caplog.at_level(logging.WARNING, logger="tasks.annotate.pseudo"):
        pseudo = select_pseudo_labels(posts_frame(ids), predicted(ids), LABEL_SET, 0.9,
                                      model_version="social-pulse-sentiment/2")

    # Confident: n1, n2, n3 (negative), p1 and x1 (positive). Positive is the rarest, with 2.
    assert list(pseudo.columns) == PSEUDO_COLUMNS
    assert list(pseudo["post_id"]) == ["n2", "n3", "p1", "x1"]
    assert list(pseudo["label"]) == ["negative", "negative", "positive", "positive"]
    assert list(pseudo["confidence"]) == pytest.approx([0.99, 0.95, 0.97, 0.90])
    assert set(pseudo["model_version"]) == {"social-pulse-sentiment/2"}
    assert any("['neutral']" in record.getMessage() for record in caplog.records)


def test_fixed_cap_per_class():
    ids = list(PREDICTIONS)

    pseudo = select_pseudo_labels(posts_frame(ids), predicted(ids), LABEL_SET, 0.9,
                                  max_per_class=1)

    assert list(pseudo["post_id"]) == ["n2", "p1"]


def test_high_cap_keeps_all_confident():
    ids = list(PREDICTIONS)

    pseudo = select_pseudo_labels(posts_frame(ids), predicted(ids), LABEL_SET, 0.9,
                                  max_per_class=100)

    assert list(pseudo["post_id"]) == ["n2", "n3", "n1", "p1", "x1"]


def test_no_confident_prediction():
    pseudo = select_pseudo_labels(posts_frame(["u1", "p2"]), predicted(["u1", "p2"]),
                                  LABEL_SET, 0.9)

    assert pseudo.empty
    assert list(pseudo.columns) == PSEUDO_COLUMNS


def test_probability_shape_checked():
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        select_pseudo_labels(posts_frame(["n1", "n2"]), np.ones((2, 2)), LABEL_SET, 0.9)


def test_unlabeled_excludes_ids_and_texts():
    posts = pd.DataFrame({"id": ["a", "b", "c", "d"],
                          "text": ["Great game", "rainy day", "RT @user: Great  GAME", "new post"]})
    labeled = pd.DataFrame({"post_id": ["b", None], "text": ["something else", "great game"]})

    remaining = unlabeled_posts(posts, labeled)

    assert list(remaining["id"]) == ["d"]


# the separate dataset


def test_create_writes_own_dataset(store):
    clean = posts_frame(list(PREDICTIONS))
    storage.write_frame(store, CLEAN, DAY, clean)
    storage.write_frame(store, LABELS, DAY, pd.DataFrame(
        {"post_id": ["n2"], "text": ["post n2"], "label": ["neutral"]}))
    labels_before = store.read_bytes(storage.partition_key(LABELS, DAY))
    champion = Champion("social-pulse-sentiment", "4", FakeSentimentModel())

    summary = create_pseudo_labels(store, DAY, champion, LABEL_SET, threshold=0.9)

    stored = storage.read_frame(store, PSEUDO_LABELS, DAY)
    assert summary["candidates"] == 6
    assert summary["stored"] == 4
    assert summary["by_class"] == {"negative": 2, "neutral": 0, "positive": 2}
    assert list(stored["post_id"]) == ["n3", "n1", "p1", "x1"]
    assert set(stored["model_version"]) == {"social-pulse-sentiment/4"}
    assert store.read_bytes(storage.partition_key(LABELS, DAY)) == labels_before
    assert list(load_all_labels(store)["post_id"]) == ["n2"]


def test_human_label_wins_in_training(store):
    first = pd.DataFrame({"post_id": ["n1", "p1"], "text": ["post n1", "post p1"],
                          "label": ["negative", "positive"], "confidence": [0.92, 0.97],
                          "model_version": "m/1"})
    second = first.assign(label=["neutral", "positive"], model_version="m/2")
    storage.write_frame(store, PSEUDO_LABELS, DAY, first)
    storage.write_frame(store, PSEUDO_LABELS, DAY + dt.timedelta(days=1), second)
    human = pd.DataFrame({"post_id": ["p1"], "text": ["post p1"], "label": ["negative"]})

    loaded = load_pseudo_labels(store)
    usable = pseudo_labels_for_training(loaded, human)

    assert list(loaded["post_id"]) == ["n1", "p1"]
    assert list(loaded["model_version"]) == ["m/2", "m/2"]
    assert list(usable["post_id"]) == ["n1"]
    assert list(usable["label"]) == ["neutral"]
    assert load_pseudo_labels(store, DAY)["model_version"].tolist() == ["m/1", "m/1"]


def test_multi_label_rejects_pseudo(settings):
    frame = pd.DataFrame({"text": ["a", "b"], "labels": [["x"], ["y"]]})
    pseudo = pd.DataFrame({"text": ["c"], "label": ["x"]})

    with pytest.raises(ValueError, match="multi-label task cannot use them"):
        train_and_register(frame, frame, ["x", "y"], settings, "m", {}, multi_label=True,
                           pseudo_labels=pseudo)


# training with pseudo labels


def import_human_labels(store, folder) -> pd.DataFrame:
    rows = [{"post_id": post.id, "text": post.text, "label": post.label, "annotator": "ann"}
            for post in generate_posts(DAY, count=30)]
    path = folder / "human.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    import_labels(store, DAY, [path], LABEL_SET)
    return load_all_labels(store, DAY)


@pytest.mark.slow
def test_training_adds_pseudo_labels(settings, tmp_path):
    import mlflow

    store = storage.open_store(settings.store)
    human = import_human_labels(store, tmp_path)
    pseudo = pd.DataFrame({
        "post_id": ["q1", "q2", "q3", "q4", "q5", human["post_id"][0]],
        "text": ["awful queue again", "meh, it is tuesday", "loved the show",
                 "the worst update", "best coffee in town", human["text"][0]],
        "label": ["negative", "neutral", "positive", "negative", "positive", "positive"],
        "confidence": [0.95] * 6, "model_version": "social-pulse-sentiment/1"})
    storage.write_frame(store, PSEUDO_LABELS, DAY, pseudo)
    tiny = settings.model_copy(update={"train": settings.train.model_copy(
        update={"use_pseudo_labels": True, "epochs": 1.0, "max_length": 32})})

    result = jobs.train_sentiment(DAY, tiny)

    human_train, _ = split_by_hash(human, tiny.train.validation_percent)
    client = mlflow.MlflowClient(tiny.tracking_uri)
    run = client.get_run(client.get_model_version("social-pulse-sentiment",
                                                  result["version"]).run_id)
    assert result["pseudo_labels"] == 5
    assert run.data.params["pseudo_labels.used"] == "5"
    assert run.data.params["pseudo_labels.used.negative"] == "2"
    assert run.data.params["pseudo_labels.used.neutral"] == "1"
    assert run.data.params["pseudo_labels.used.positive"] == "2"
    assert run.data.params["train_size"] == str(len(human_train) + 5)
    assert run.data.params["train.use_pseudo_labels"] == "True"
    assert run.data.tags["data.pseudo_labels_size"] == "5"
    assert run.data.tags["data.train_size"] == str(len(human_train))
    assert len(load_all_labels(store, DAY)) == 30


def test_pseudo_label_job_skips_unless_enabled(settings, monkeypatch):
    from tasks import jobs
    from tasks.settings import reload_settings

    assert jobs.pseudo_label("2026-03-01", settings) == {
        "skipped": "train.use_pseudo_labels is off"}
    monkeypatch.setenv("PULSE_TRAIN__USE_PSEUDO_LABELS", "true")
    enabled = reload_settings()
    assert jobs.pseudo_label("2026-03-01", enabled) == {
        "skipped": "the sentiment model has no champion to pseudo-label with"}

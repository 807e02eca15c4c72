"""Choosing posts to label: uncertainty measures, strategies, budget and export metadata."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math

import numpy as np
import pandas as pd
import pytest

from tasks import jobs, storage
from tasks.annotate.export import ANNOTATION_TASKS, export_for_labeling
from tasks.annotate.preannotate import Champion
from tasks.annotate.select import (
    entropy_scores,
    margin_scores,
    pick_diverse,
    select_posts,
)
from tasks.collect.stage import CLEAN

DAY = dt.date(2024, 3, 1)
LABEL_SET = ["negative", "neutral", "positive"]

# Entropy ranks "broad" above "tied", but margin ranks "tied" (two classes at 0.45) first.
BROAD = [0.5, 0.25, 0.25]
TIED = [0.45, 0.45, 0.10]
CERTAIN = [0.98, 0.01, 0.01]

# Two groups of posts, far apart in embedding space, with their uncertainty.
GROUP_A = {"a1": 0.9, "a2": 0.8, "a3": 0.7}
GROUP_B = {"b1": 0.3, "b2": 0.2, "b3": 0.1}


def posts_frame(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "text": [f"text of {post_id}" for post_id in ids],
                         "lang": ["en"] * len(ids)})


def two_groups() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Posts of GROUP_A and GROUP_B, their uncertainty, and embeddings near [1, 0] or [0, 1]."""
    ids = [*GROUP_A, *GROUP_B]
    scores = np.array([*GROUP_A.values(), *GROUP_B.values()])
    embeddings = np.array([[1.0, 0.01 * n] if post_id.startswith("a") else [0.01 * n, 1.0]
                           for n, post_id in enumerate(ids)])
    return posts_frame(ids), scores, embeddings


def probabilities_with_entropy(scores: np.ndarray) -> np.ndarray:
    """Return two-class probability rows whose normalized entropy is ``scores`` (0.5..1)."""
    rows = []
    for score in scores:
        low, high = 1e-9, 0.5
        for _ in range(60):  # bisect p in (0, 0.5], where the binary entropy rises
            middle = (low + high) / 2
            entropy = -(middle * math.log(middle) + (1 - middle) * math.log(1 - middle))
            low, high = (middle, high) if entropy / math.log(2) < score else (low, middle)
        rows.append([low, 1 - low])
    return np.array(rows)


class FakeSentimentModel:
    """Stands in for a sentiment pyfunc: fixed probabilities per text."""

    def __init__(self, probabilities: dict[str, list[float]]):
        self.probabilities = probabilities

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        rows = np.array([self.probabilities[text] for text in frame["text"]])
        output = pd.DataFrame(rows, columns=[f"prob_{label}" for label in LABEL_SET])
        output.insert(0, "confidence", rows.max(axis=1))
        output.insert(0, "label", [LABEL_SET[i] for i in rows.argmax(axis=1)])
        return output


# uncertainty measures


def test_entropy_scores_known_values():
    scores = entropy_scores(np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]]))

    assert scores[0] == pytest.approx(0.0)
    assert scores[1] == pytest.approx(1.0)
    assert scores[2] == pytest.approx(math.log(2) / math.log(3))


def test_margin_scores_known_values():
    scores = margin_scores(np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]]))

    assert list(scores) == pytest.approx([0.5, 1.0, 0.0])


def test_measures_rank_differently():
    assert entropy_scores(np.array([BROAD]))[0] == pytest.approx(0.9464, abs=1e-4)
    assert entropy_scores(np.array([TIED]))[0] == pytest.approx(0.8637, abs=1e-4)
    assert margin_scores(np.array([BROAD]))[0] == pytest.approx(0.75)
    assert margin_scores(np.array([TIED]))[0] == pytest.approx(1.0)


def test_single_class_rejected():
    with pytest.raises(ValueError, match="classes >= 2"):
        entropy_scores(np.array([[1.0], [1.0]]))


# strategies


@pytest.mark.parametrize(("measure", "expected"), [("entropy", ["broad", "tied"]),
                                                   ("margin", ["tied", "broad"])])
def test_uncertainty_order_by_measure(measure, expected):
    posts = posts_frame(["certain", "tied", "broad"])

    chosen = select_posts(posts, 2, "uncertainty", measure=measure,
                          probabilities=np.array([CERTAIN, TIED, BROAD]))

    assert list(chosen["id"]) == expected
    assert list(chosen["selected_by"]) == ["uncertainty", "uncertainty"]


def test_uncertainty_scores_recorded():
    posts = posts_frame(["certain", "tied", "broad"])

    chosen = select_posts(posts, 1, "uncertainty", measure="margin",
                          probabilities=np.array([CERTAIN, TIED, BROAD]))

    assert list(chosen["uncertainty"]) == pytest.approx([1.0])


def test_uncertainty_picks_one_group():
    posts, scores, _ = two_groups()

    chosen = select_posts(posts, 2, "uncertainty", probabilities=probabilities_with_entropy(scores))

    assert list(chosen["id"]) == ["a1", "a2"]
    assert list(chosen["uncertainty"]) == pytest.approx([0.9, 0.8], abs=1e-6)


def test_active_spreads_over_clusters():
    posts, scores, embeddings = two_groups()
    by_text = dict(zip(posts["text"], embeddings))

    chosen = select_posts(posts, 2, "active", probabilities=probabilities_with_entropy(scores),
                          embed=lambda texts: np.array([by_text[t] for t in texts]),
                          pool_factor=3)

    assert list(chosen["id"]) == ["a1", "b1"]
    assert list(chosen["selected_by"]) == ["active", "active"]


def test_active_embeds_only_pool():
    posts, scores, embeddings = two_groups()
    by_text = dict(zip(posts["text"], embeddings))
    embedded: list[str] = []

    def embed(texts):
        embedded.extend(texts)
        return np.array([by_text[t] for t in texts])

    chosen = select_posts(posts, 2, "active", probabilities=probabilities_with_entropy(scores),
                          embed=embed, pool_factor=1)

    assert embedded == ["text of a1", "text of a2"]
    assert list(chosen["id"]) == ["a1", "a2"]


def test_round_robin_over_clusters():
    # Only two distinct embeddings, so two clusters for a budget of four.
    scores = np.array([*GROUP_A.values(), *GROUP_B.values()])
    embeddings = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)

    chosen = pick_diverse(scores, embeddings, budget=4, seed=0)

    assert list(chosen) == [0, 3, 1, 4]


def test_active_without_encoder_uses_uncertainty(caplog):
    posts, scores, _ = two_groups()

    with caplog.at_level(logging.INFO, logger="tasks.annotate.select"):
        chosen = select_posts(posts, 2, "active", probabilities=probabilities_with_entropy(scores))

    assert list(chosen["id"]) == ["a1", "a2"]
    assert list(chosen["selected_by"]) == ["uncertainty", "uncertainty"]
    assert any("no text encoder" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("strategy", ["random", "uncertainty", "active"])
def test_budget_respected(strategy):
    ids = [f"p{n:02d}" for n in range(40)]
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=40)
    embeddings = rng.normal(size=(40, 8))
    by_text = dict(zip(posts_frame(ids)["text"], embeddings))

    chosen = select_posts(posts_frame(ids), 7, strategy, probabilities=probabilities,
                          embed=lambda texts: np.array([by_text[t] for t in texts]))

    assert len(chosen) == 7
    assert chosen["id"].is_unique
    assert set(chosen["selected_by"]) == {strategy}


def test_budget_covers_all_posts():
    chosen = select_posts(posts_frame(["p1", "p2", "p3"]), 5, "active")

    assert list(chosen["id"]) == ["p1", "p2", "p3"]
    assert list(chosen["selected_by"]) == ["all", "all", "all"]


def test_random_reproducible_by_seed():
    posts = posts_frame([f"p{n:02d}" for n in range(50)])

    first = select_posts(posts, 10, "random", seed=7)
    again = select_posts(posts, 10, "random", seed=7)
    other = select_posts(posts, 10, "random", seed=8)

    assert list(first["id"]) == list(again["id"])
    assert list(first["id"]) != list(other["id"])
    assert first["uncertainty"].isna().all()


def test_no_champion_falls_back_to_random(caplog):
    posts = posts_frame([f"p{n:02d}" for n in range(20)])

    with caplog.at_level(logging.INFO, logger="tasks.annotate.select"):
        chosen = select_posts(posts, 5, "active", seed=7)

    assert list(chosen["id"]) == list(select_posts(posts, 5, "random", seed=7)["id"])
    assert set(chosen["selected_by"]) == {"random"}
    messages = [record.getMessage() for record in caplog.records]
    assert any("no champion classifier probabilities" in m for m in messages)


@pytest.mark.parametrize(("options", "message"), [
    ({"strategy": "smart"}, "unknown selection strategy"),
    ({"measure": "variance"}, "unknown uncertainty measure"),
    ({"budget": -1}, "budget must be 0 or more"),
    ({"probabilities": np.full((2, 3), 1 / 3)}, "2 probability rows for 3 posts"),
])
def test_invalid_options_rejected(options, message):
    arguments = {"budget": 1, **options}
    with pytest.raises(ValueError, match=message):
        select_posts(posts_frame(["p1", "p2", "p3"]), **arguments)


# export metadata


@pytest.fixture
def store(tmp_path) -> storage.LocalStore:
    return storage.LocalStore(tmp_path / "store")


def read_export(store, name: str) -> bytes:
    return store.read_bytes(storage.partition_key(ANNOTATION_TASKS, DAY, name))


def fake_champion(posts: pd.DataFrame, rows: list[list[float]]) -> Champion:
    return Champion("social-pulse-sentiment", "3",
                    FakeSentimentModel(dict(zip(posts["text"], rows))))


def test_export_records_selection(store):
    posts = posts_frame(["certain", "tied", "broad", "sure"])
    champion = fake_champion(posts, [CERTAIN, TIED, BROAD, CERTAIN])

    result = export_for_labeling(store, DAY, posts, 2, LABEL_SET, formats=["label_studio", "doccano"],
                                 champions={"sentiment": champion}, strategy="uncertainty",
                                 measure="margin")

    tasks = json.loads(read_export(store, "sentiment.label_studio.json"))
    lines = [json.loads(line) for line in read_export(store, "sentiment.doccano.jsonl").splitlines()]
    assert result["selected_by"] == "uncertainty"
    assert [task["data"]["post_id"] for task in tasks] == ["broad", "tied"]
    assert [task["data"]["selected_by"] for task in tasks] == ["uncertainty", "uncertainty"]
    assert [task["data"]["uncertainty"] for task in tasks] == [0.75, 1.0]
    assert [(line["post_id"], line["selected_by"], line["uncertainty"]) for line in lines] == [
        ("broad", "uncertainty", 0.75), ("tied", "uncertainty", 1.0)]
    assert [task["predictions"][0]["model_version"] for task in tasks] == [
        "social-pulse-sentiment/3"] * 2


def test_export_all_posts_scored(store):
    posts = posts_frame(["certain", "tied"])
    champion = fake_champion(posts, [CERTAIN, TIED])

    result = export_for_labeling(store, DAY, posts, 10, LABEL_SET,
                                 champions={"sentiment": champion}, measure="margin")

    tasks = json.loads(read_export(store, "sentiment.label_studio.json"))
    assert result["selected_by"] == "all"
    assert [task["data"]["uncertainty"] for task in tasks] == [0.03, 1.0]


def test_export_without_champion_random(store):
    posts = posts_frame([f"p{n:02d}" for n in range(20)])

    result = export_for_labeling(store, DAY, posts, 4, LABEL_SET, formats=["doccano"])

    lines = [json.loads(line) for line in read_export(store, "sentiment.doccano.jsonl").splitlines()]
    assert result["selected_by"] == "random"
    assert len(lines) == 4
    assert {line["selected_by"] for line in lines} == {"random"}
    assert [line["uncertainty"] for line in lines] == [None] * 4


def test_export_job_budget_setting(settings, caplog):
    store = storage.open_store(settings.store)
    storage.write_frame(store, CLEAN, DAY, posts_frame([f"p{n:02d}" for n in range(12)]))
    limited = settings.model_copy(update={"annotation": settings.annotation.model_copy(
        update={"export_size": 5, "export_formats": ["doccano"]})})

    with caplog.at_level(logging.INFO, logger="tasks.annotate.select"):
        result = jobs.export_annotations(DAY, limited)

    assert limited.annotation.selection_strategy == "active"
    assert result["count"] == 5
    assert result["selected_by"] == "random"
    messages = [record.getMessage() for record in caplog.records]
    assert any("instead of by active" in m for m in messages)

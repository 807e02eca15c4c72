"""A tiny real retrieval training run on CrisisLexT26 tweets, its registration and serving.

One model is trained per module on 10 tweets of each of the 20 events (1 epoch, about a
minute on two CPU cores) and shared by the tests. The module skips without the data file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tasks import jobs, storage
from tasks.collect.stage import CLEAN
from tasks.registry.tracking import champion_version, configure_mlflow
from tasks.retrieve import commands
from tasks.retrieve.config import RetrievalSettings
from tasks.settings import reload_settings

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CRISISLEX = SHARED_DATA / "crisislex-t26" / "tweets.jsonl"
MODEL = "social-pulse-retrieval"
DAY = dt.date(2026, 5, 2)
POSTS = [
    ("a", "Evacuation ordered as the flood reaches the town centre, shelters open at the school"),
    ("b", "Train derailed near the station, several carriages overturned and passengers hurt"),
    ("c", "Loving the sunshine at the beach with friends today"),
    ("d", "Strong earthquake felt across the island, churches collapsed and roads cracked"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once on 10 tweets per event; yield the settings, the model URI and the folder."""
    if not CRISISLEX.is_file():
        pytest.skip(f"CrisisLexT26 tweets not found at {CRISISLEX}")
    folder = tmp_path_factory.mktemp("retrieval")
    tweets = pd.read_json(CRISISLEX, lines=True).groupby("event").head(10)
    tweets.to_json(folder / "tweets.jsonl", orient="records", lines=True)
    config = RetrievalSettings(batch_size=8, max_length=32, queries_per_group=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(folder / "home"))
        settings = reload_settings()
        uri = commands.train_retrieval_from_file(folder / "tweets.jsonl", settings, "event", config)
        yield {"settings": settings, "uri": uri, "folder": folder}
    reload_settings()


def _set_champion(settings, version: str | None) -> None:
    client = configure_mlflow(settings)
    if version is not None:
        client.set_registered_model_alias(MODEL, "champion", version)
    elif champion_version(client, MODEL, "champion") is not None:
        client.delete_registered_model_alias(MODEL, "champion")


def _write_posts(settings) -> None:
    store = storage.open_store(settings.store)
    storage.write_frame(store, CLEAN, DAY, pd.DataFrame(POSTS, columns=["id", "text"]))


def test_train_returns_version_uri(trained):
    assert re.fullmatch(r"models:/social-pulse-retrieval/\d+", trained["uri"])


def test_version_tagged_with_data_and_code(trained):
    client = configure_mlflow(trained["settings"])
    version = client.get_model_version(MODEL, trained["uri"].rsplit("/", 1)[1])
    assert version.tags["data.file"].endswith("tweets.jsonl")
    assert version.tags["data.group_field"] == "event"
    assert version.tags["code_version"]
    assert 0.0 <= float(version.tags["validation_recall_at_10"]) <= 1.0
    assert 0.0 <= float(version.tags["base_recall_at_10"]) <= 1.0


def test_run_logs_tuned_and_base_metrics(trained):
    client = configure_mlflow(trained["settings"])
    run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    for name in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr", "ndcg_at_10"):
        assert 0.0 <= run.data.metrics[name] <= 1.0
        assert 0.0 <= run.data.metrics[f"base_{name}"] <= 1.0
    assert run.data.params["retrieval.batch_size"] == "8"
    assert run.data.params["loss"] == "MultipleNegativesRankingLoss"
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/recall_at_k.png", "evaluation/validation.parquet",
            "evaluation/split.json", "evaluation/metrics.json"} <= artifacts


def test_validation_events_unseen_in_training(trained):
    configure_mlflow(trained["settings"])
    run_id = mlflow.MlflowClient().get_model_version(MODEL, "1").run_id
    split = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/split.json")
    assert len(split["train_groups"]) == 14
    assert len(split["validation_groups"]) == 6
    assert not set(split["train_groups"]) & set(split["validation_groups"])


def test_pyfunc_returns_unit_embeddings(trained):
    configure_mlflow(trained["settings"])
    model = mlflow.pyfunc.load_model(trained["uri"])
    output = model.predict(pd.DataFrame({"text": ["flood in the city 😱", "earthquake", "hi"]}))
    vectors = np.array(list(output["embedding"]))
    assert list(output.columns) == ["embedding"]
    assert all(isinstance(value, float) for value in output["embedding"][0])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert model.metadata.get_input_schema().input_names() == ["text"]


def test_search_without_champion_uses_base(trained, caplog):
    settings = trained["settings"]
    _set_champion(settings, None)
    _write_posts(settings)
    with caplog.at_level(logging.WARNING, logger="tasks.retrieve.commands"):
        manifest = commands.build_index(DAY, settings)
    hits = commands.search_posts("train derailed near the station, passengers hurt", None, 2,
                                 settings)
    assert manifest["model"] == settings.base_model_path
    assert "no 'champion' version" in caplog.text
    assert "untuned base model" in caplog.text
    assert hits[0][0] == "b"
    assert len(hits) == 2


def test_search_with_champion(trained):
    settings = trained["settings"]
    _set_champion(settings, "1")
    _write_posts(settings)
    manifest = commands.build_index(DAY.isoformat(), settings)
    hits = commands.search_posts("evacuation ordered, flood reaches the town centre",
                                 DAY.isoformat(), 1, settings)
    assert manifest["model"] == f"models:/{MODEL}/1"
    assert hits[0][0] == "a"
    assert hits[0][2] == POSTS[0][1]


def test_stale_index_searched_with_its_model(trained, caplog):
    settings = trained["settings"]
    _set_champion(settings, None)
    _write_posts(settings)
    commands.build_index(DAY, settings)
    _set_champion(settings, "1")
    with caplog.at_level(logging.WARNING, logger="tasks.retrieve"):
        hits = commands.search_posts("strong earthquake, churches collapsed", DAY, 1, settings)
    assert hits[0][0] == "d"
    assert f"not the serving model models:/{MODEL}/1" in caplog.text
    assert "was built with" in caplog.text


def test_manifest_is_json(trained):
    store = storage.open_store(trained["settings"].store)
    manifest = json.loads(store.read_bytes(f"embeddings/date={DAY.isoformat()}/manifest.json"))
    assert manifest["dimension"] == 384
    assert manifest["posts"] == len(POSTS)


def test_gate_checks_base_model_and_champion(trained, register_candidate, monkeypatch):
    settings = trained["settings"]
    _set_champion(settings, None)
    client = configure_mlflow(settings)
    run = client.get_run(client.get_model_version(MODEL, "1").run_id).data.metrics

    # The tiny run may or may not beat the base model; a wide tolerance isolates the floor.
    monkeypatch.setenv("PULSE_REGISTRY__REGRESSION_TOLERANCE", "1.0")
    monkeypatch.setenv("PULSE_REGISTRY__RECALL_AT_10_FLOOR", "0.0")
    first = jobs.promote("retrieval", reload_settings())
    assert first["promoted"], first["reasons"]
    assert first["metrics"]["candidate_recall_at_10"] == pytest.approx(run["recall_at_10"],
                                                                       abs=1e-4)
    assert first["metrics"]["base_recall_at_10"] == pytest.approx(run["base_recall_at_10"],
                                                                  abs=1e-4)
    assert "champion_recall_at_10" not in first["metrics"]
    assert "untuned base model" in first["reasons"][1]
    assert first["reasons"][2] == "first version: no champion to compare with"
    assert first["reasons"][3].startswith("training data not checked")
    assert first["reasons"][-1] == "deployed: champion moved from unset to v1"

    # A candidate reporting recall@10 of 0 against the base model's value is rejected, and
    # the champion is measured again on the candidate's rebuilt queries.
    monkeypatch.setenv("PULSE_REGISTRY__REGRESSION_TOLERANCE", "0.0")
    candidate = register_candidate(client, MODEL, {"recall_at_10": 0.0,
                                                   "base_recall_at_10": run["base_recall_at_10"]})
    decision = jobs.promote("retrieval", reload_settings())
    assert decision["candidate"] == candidate
    assert not decision["promoted"]
    assert decision["metrics"]["champion_recall_at_10"] == pytest.approx(run["recall_at_10"],
                                                                         abs=1e-4)
    assert "regression" in decision["reasons"][1]
    assert "regression" in decision["reasons"][2]
    assert str(champion_version(client, MODEL, "champion").version) == "1"

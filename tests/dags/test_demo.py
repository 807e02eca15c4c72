"""`pulse demo` on the built-in sample: the main job, end to end through Airflow."""

from __future__ import annotations

import datetime as dt

import pytest

from tasks import storage
from tasks.demo import run_demo, summarize

DAY = dt.date(2026, 12, 2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(home))
        # As for a user: no floor set, so the demo lowers it for its generated labels.
        patch.delenv("PULSE_REGISTRY__MACRO_F1_FLOOR", raising=False)
        summary = run_demo(DAY)
        from tasks.settings import get_settings

        yield summary, storage.open_store(get_settings().store)
    from tasks.settings import reload_settings

    reload_settings()


def test_demo_runs_every_dag(airflow_db, demo):
    summary, _ = demo
    assert set(summary["dag_runs"].values()) == {"success"}


def test_demo_counts_add_up(airflow_db, demo):
    counts = demo[0]["counts"]
    assert counts["collected"] == counts["clean"] + counts["duplicates"] + counts["quarantined"]
    assert counts["quarantined"] >= 6


def test_demo_scores_sample(airflow_db, demo):
    _, store = demo
    scores = storage.read_frame(store, "scores", DAY)
    clean = storage.read_frame(store, "clean_posts", DAY)
    assert len(scores) == len(clean)
    assert set(scores["label"]) <= {"negative", "neutral", "positive"}


def test_demo_lowers_floor_and_names_scores(airflow_db, demo):
    summary, _ = demo
    assert summary["promotion_floor"] == 0.0
    assert summary["outputs"]["scores"].endswith(f"scores/date={DAY.isoformat()}/part-0.parquet")


def test_summary_says_when_no_scores(settings):
    store = storage.open_store(settings.store)
    manifest = {"collected": 3, "clean": 2, "duplicates": 1, "quarantined": 0}
    storage.write_json(store, storage.partition_key("manifests", DAY, "collect.json"), manifest)

    summary = summarize(settings, DAY, {"score_posts": "success"})

    assert summary["outputs"]["scores"].startswith("not written: no model version passed")
    assert summary["counts"] == manifest


def test_demo_labels_from_simulated_annotator(airflow_db, demo):
    _, store = demo
    labels = storage.read_frame(store, "labels", DAY)
    assert len(labels) > 100
    assert set(labels["annotator"]) == {"demo-annotator"}


def test_demo_writes_validation_reports(airflow_db, demo):
    _, store = demo
    keys = store.list_keys(f"validations/date={DAY.isoformat()}/")
    names = {key.rsplit("/", 1)[-1] for key in keys}
    assert {"raw_posts.json", "raw_posts.html", "clean_posts.json", "scores.json"} <= names


def test_demo_rejects_date_before_start(settings):
    with pytest.raises(ValueError, match="before the DAGs' start_date"):
        run_demo(dt.date(2019, 6, 1), settings=settings)


def test_demo_posts_need_labels(settings, tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"text": "hello"}\n')
    with pytest.raises(ValueError, match="--posts needs --labels"):
        run_demo(DAY, posts=posts, settings=settings)

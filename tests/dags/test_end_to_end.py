"""Every DAG, run with dag.test() on a migrated SQLite database, on real tweets.

Labels come from a slice of sentiment-en/train.jsonl, the day's posts from a slice of
validation.jsonl plus records that must be quarantined.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tasks import storage
from tasks.collect import stage
from tasks.demo import run_demo
from tasks.registry.tracking import champion_version, configure_mlflow

DAY = dt.date(2026, 11, 30)
BAD_LINES = [
    b'{"text": "unterminated',                       # invalid JSON
    b'{"label": "neutral"}',                         # text missing
    b'{"text": ""}',                                 # empty text
    b'{"text": "bad bytes \xff\xfe here"}',          # not UTF-8
    json.dumps({"text": "a" * 50_000}).encode(),     # too long
]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("e2e")
    labels = folder / "labels.jsonl"
    labels.write_text("".join((shared_data / "sentiment-en/train.jsonl").read_text()
                              .splitlines(keepends=True)[:240]))
    posts = folder / "posts.jsonl"
    good = (shared_data / "sentiment-en/validation.jsonl").read_bytes().splitlines()[:120]
    posts.write_bytes(b"\n".join(good + BAD_LINES) + b"\n")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(folder / "home"))
        summary = run_demo(DAY, labels=labels, posts=posts)
        from tasks.settings import get_settings

        settings = get_settings()
        yield {"summary": summary, "settings": settings,
               "store": storage.open_store(settings.store), "good": len(good)}
    from tasks.settings import reload_settings

    reload_settings()


def test_all_dag_runs_succeed(airflow_db, real_run):
    assert real_run["summary"]["dag_runs"] == {
        "collect_posts": "success", "annotation": "success",
        "train_sentiment": "success", "score_posts": "success",
    }


def test_counts_add_up(airflow_db, real_run):
    counts = real_run["summary"]["counts"]
    assert counts["collected"] == real_run["good"] + len(BAD_LINES)
    assert counts["collected"] == counts["clean"] + counts["duplicates"] + counts["quarantined"]
    assert counts["quarantined"] == len(BAD_LINES)


def test_champion_exists(airflow_db, real_run):
    settings = real_run["settings"]
    client = configure_mlflow(settings)
    champion = champion_version(client, settings.registry.sentiment_model, "champion")
    assert champion is not None
    assert champion.tags["data.labels_partitions"] == DAY.isoformat()


def test_every_clean_post_scored(airflow_db, real_run):
    store = real_run["store"]
    clean = storage.read_frame(store, stage.CLEAN, DAY)
    scores = storage.read_frame(store, "scores", DAY)
    assert set(scores["id"]) == set(clean["id"])
    assert len(scores) == len(clean)
    assert scores["model_version"].notna().all()


def test_quarantine_names_lines(airflow_db, real_run):
    quarantine = storage.read_frame(real_run["store"], stage.QUARANTINE, DAY)
    first_bad = real_run["good"] + 1
    assert sorted(quarantine["line"]) == list(range(first_bad, first_bad + len(BAD_LINES)))
    assert all(f"line {line}" in reason
               for line, reason in zip(quarantine["line"], quarantine["reason"]))


def test_labels_imported_from_file(airflow_db, real_run):
    labels = storage.read_frame(real_run["store"], "labels", DAY)
    assert len(labels) == 240
    assert set(labels["label"]) == {"negative", "neutral", "positive"}


def _score_run_states(day: dt.date) -> dict[str, str]:
    import pendulum

    from tasks.demo import load_dags

    dag = load_dags()["score_posts"]
    run = dag.test(logical_date=pendulum.datetime(day.year, day.month, day.day, tz="UTC"),
                   run_conf={"date": day.isoformat()})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return {"run": str(run.state), **states}


def test_rejected_candidate_skips_deploy_not_the_run(airflow_db, real_run, register_candidate):
    settings = real_run["settings"]
    name = settings.registry.sentiment_model
    client = configure_mlflow(settings)
    champion = str(champion_version(client, name, "champion").version)
    candidate = register_candidate(client, name, {"macro_f1": 0.0}, version=champion)

    states = _score_run_states(DAY)

    assert states["run"] == "success"
    assert states["promote_sentiment.validate"] == "success"
    assert states["promote_sentiment.deploy"] == "skipped"
    # No entity or retrieval model is registered: nothing to deploy, nothing failed.
    assert states["promote_entities.deploy"] == "skipped"
    assert states["promote_retrieval.deploy"] == "skipped"
    assert states["index_posts"] == "success"
    assert states["plan_scoring"] == "success"
    assert states["score_shard"] == "success"  # one shard: 120 posts < score.shard_size
    assert states["score"] == "success"
    assert str(champion_version(client, name, "champion").version) == champion
    version = client.get_model_version(name, candidate)
    assert version.tags["promotion_decision"] == "rejected"
    assert version.description.startswith("rejected: macro-F1 0.0000 ")
    assert f"vs champion v{champion} " in version.description
    assert "regression (tolerance 0.0)" in version.description

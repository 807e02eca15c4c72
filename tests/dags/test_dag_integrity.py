"""The DAG files import cleanly and are wired as the pipeline expects."""

from __future__ import annotations

import pytest

from tasks.airflow_env import DAGS_FOLDER

EXPECTED_DAGS = {"collect_posts", "annotation", "train_sentiment", "score_posts"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}


def test_dags_present(dagbag):
    assert set(dagbag.dag_ids) == EXPECTED_DAGS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_documented_and_tagged(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and dag.doc_md.strip().startswith("###")
    assert "social-pulse" in dag.tags
    assert dag.catchup is False


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_tasks_have_docs(dagbag, dag_id):
    undocumented = [t.task_id for t in dagbag.dags[dag_id].tasks if not t.doc_md]
    assert undocumented == []


def test_collect_chain_order(dagbag):
    dag = dagbag.dags["collect_posts"]
    assert dag.get_task("validate_raw").upstream_task_ids >= {"collect_raw"}
    assert dag.get_task("clean").upstream_task_ids >= {"validate_raw"}
    assert dag.get_task("write_manifest").upstream_task_ids >= {"clean"}


def test_assets_link_the_dags(dagbag):
    producers = {
        outlet.name: dag.dag_id
        for dag in dagbag.dags.values() for task in dag.tasks for outlet in task.outlets
    }
    assert producers["social_pulse.clean_posts"] == "collect_posts"
    assert producers["social_pulse.labels"] == "annotation"
    assert producers["social_pulse.sentiment_model"] == "train_sentiment"
    assert producers["social_pulse.scores"] == "score_posts"


def test_training_uses_own_queue(dagbag):
    assert dagbag.dags["train_sentiment"].get_task("train").queue == "training"


def test_partition_date_prefers_param():
    import datetime as dt

    from pulse_airflow import partition_date

    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    context = {"params": {"date": "2026-12-03"}, "data_interval_start": start}
    assert partition_date(context) == "2026-12-03"


def test_partition_date_from_asset_events():
    import datetime as dt
    from types import SimpleNamespace

    from pulse_airflow import partition_date

    events = {"clean": [SimpleNamespace(extra={"date": "2026-12-02"}),
                        SimpleNamespace(extra={"date": "2026-12-04"})]}
    context = {"params": {"date": None}, "triggering_asset_events": events,
               "data_interval_start": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)}
    assert partition_date(context) == "2026-12-04"


def test_partition_date_from_interval():
    import datetime as dt

    from pulse_airflow import partition_date

    context = {"params": {}, "data_interval_start": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)}
    assert partition_date(context) == "2026-12-01"


def test_tokens_from_connections(airflow_db, monkeypatch):
    from pulse_airflow import export_platform_tokens

    monkeypatch.setenv("PULSE_X_BEARER_TOKEN", "")  # registered, so the test restores it
    monkeypatch.setenv("PULSE_MASTODON_TOKEN", "already-set")
    monkeypatch.setenv("AIRFLOW_CONN_PULSE_X", '{"conn_type": "http", "password": "secret-x"}')
    monkeypatch.setenv("AIRFLOW_CONN_PULSE_MASTODON", '{"conn_type": "http", "password": "other"}')
    used = export_platform_tokens()
    import os

    assert used == ["pulse_x"]
    assert os.environ["PULSE_X_BEARER_TOKEN"] == "secret-x"
    assert os.environ["PULSE_MASTODON_TOKEN"] == "already-set"

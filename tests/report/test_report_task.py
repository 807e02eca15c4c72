"""The score_posts DAG builds the daily report after scoring."""

from __future__ import annotations

import pytest

from tasks.airflow_env import DAGS_FOLDER


@pytest.fixture(scope="module")
def score_dag():
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=str(DAGS_FOLDER / "score_posts.py"))
    assert dagbag.import_errors == {}
    return dagbag.dags["score_posts"]


def test_report_downstream_of_score(score_dag):
    assert "score" in score_dag.get_task("report").upstream_task_ids


def test_report_runs_when_scoring_skipped(score_dag):
    assert score_dag.get_task("report").trigger_rule == "none_failed"


def test_report_is_last(score_dag):
    assert score_dag.get_task("report").downstream_task_ids == set()

"""The annotation DAG: its params, and one run with dag.test() on a day of sample posts."""

from __future__ import annotations

import datetime as dt

import pytest

from tasks import jobs, storage
from tasks.annotate.export import ANNOTATION_TASKS
from tasks.annotate.labels import LABELS, agreement_key
from tasks.demo import load_dags, run_dag
from tasks.settings import reload_settings

DAY = dt.date(2026, 2, 3)


@pytest.fixture(scope="module")
def annotation_dag():
    return load_dags()["annotation"]


def test_export_formats_param(annotation_dag):
    schema = annotation_dag.params.get_param("export_formats").schema

    assert annotation_dag.params["export_formats"] is None
    assert schema["items"]["enum"] == ["label_studio", "doccano", "conll"]


def test_task_order(annotation_dag):
    assert annotation_dag.get_task("import_labels").upstream_task_ids == {
        "resolve_date", "simulate_annotator"}
    assert annotation_dag.get_task("pseudo_label").upstream_task_ids == {
        "resolve_date", "import_labels"}
    # Training, which publish_labels triggers, reads the pseudo labels of the same run.
    assert annotation_dag.get_task("publish_labels").upstream_task_ids == {
        "resolve_date", "import_labels", "pseudo_label"}
    assert annotation_dag.get_task("publish_labels").trigger_rule == "none_failed"


@pytest.mark.slow
def test_run_exports_and_imports(airflow_db, annotation_dag, settings, monkeypatch):
    monkeypatch.setenv("PULSE_COLLECT__SAMPLE_SIZE", "40")
    monkeypatch.setenv("PULSE_ANNOTATION__EXPORT_SIZE", "30")
    settings = reload_settings()
    jobs.collect_day(DAY, "sample", settings)

    state = run_dag(annotation_dag, DAY, {"simulate_annotator": True,
                                          "export_formats": ["label_studio", "conll"]})

    store = storage.open_store(settings.store)
    folder = f"{ANNOTATION_TASKS}/date={DAY.isoformat()}/"
    labels = storage.read_frame(store, LABELS, DAY)
    report = storage.read_json(store, agreement_key(DAY))
    assert state == "success"
    assert sorted(key.removeprefix(folder) for key in store.list_keys(folder)) == [
        "entities.conll", "entities.label_studio.json", "entities.label_studio.xml",
        "part-0.parquet", "sentiment.label_studio.json", "sentiment.label_studio.xml"]
    assert len(labels) == 30
    assert set(labels["annotator"]) == {"demo-annotator"}
    assert set(labels["status"]) == {"single"}
    assert report["tasks"]["sentiment"]["annotators"] == ["demo-annotator"]
    assert report["tasks"]["sentiment"]["kappa"] is None

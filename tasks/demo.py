"""``pulse demo``: run every DAG for one date through Airflow's ``dag.test()``.

Uses the embedded defaults unless the settings override them: Airflow and MLflow on
SQLite under the project's ``.pulse`` folder, the store in ``.pulse/store``, the built-in
sample as source and the bundled base model.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tasks.airflow_env import apply_airflow_environment
from tasks.settings import Settings, reload_settings

log = logging.getLogger(__name__)

PIPELINE = ("collect_posts", "annotation", "train_sentiment", "score_posts")
# The DAGs' start_date: a run for an earlier logical date gets no task instances.
FIRST_DATE = dt.date(2020, 1, 1)
FLOOR_VARIABLE = "PULSE_REGISTRY__MACRO_F1_FLOOR"


class DagRunFailedError(RuntimeError):
    """A DAG run ended in a state other than success."""


def migrate_airflow_db(environment: dict[str, str]) -> None:
    """Create or upgrade the Airflow metadata database (idempotent)."""
    airflow = Path(sys.executable).with_name("airflow")
    command = [str(airflow) if airflow.exists() else "airflow", "db", "migrate"]
    log.info("migrating the Airflow database at %s", environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    subprocess.run(command, env={**os.environ, **environment}, check=True,
                   stdout=subprocess.DEVNULL)


def load_dags() -> dict[str, Any]:
    """Parse the project's DAG files and fail on any import error."""
    from airflow.dag_processing.dagbag import DagBag

    from tasks.airflow_env import DAGS_FOLDER

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        details = "\n".join(f"{path}: {error}" for path, error in bag.import_errors.items())
        raise RuntimeError(f"DAG files failed to import:\n{details}")
    return bag.dags


def run_dag(dag: Any, day: dt.date, conf: dict[str, Any]) -> str:
    """Run ``dag`` once for ``day`` with ``dag.test()`` and return the run's state."""
    import pendulum

    logical = pendulum.datetime(day.year, day.month, day.day, tz="UTC")
    log.info("running DAG %s for %s", dag.dag_id, day)
    run = dag.test(logical_date=logical, run_conf={"date": day.isoformat(), **conf})
    state = str(getattr(run, "state", "unknown"))
    # A run whose logical date precedes the DAG's start_date gets no task instances and is
    # still marked successful, so check that tasks really ran.
    if not run.get_task_instances():
        raise DagRunFailedError(f"DAG {dag.dag_id} created no task instances for {day}")
    if state != "success":
        raise DagRunFailedError(f"DAG {dag.dag_id} for {day} ended in state {state}; "
                                f"see the task logs above")
    return state


def prepare_inputs(settings: Settings, labels: Path | None, posts: Path | None) -> dict[str, Any]:
    """Point collection at ``posts`` and put ``labels`` into the label inbox, when given."""
    conf: dict[str, Any] = {}
    if labels is not None:
        if not labels.is_file():
            raise FileNotFoundError(f"labels file {labels} not found")
        settings.label_inbox.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(labels, settings.label_inbox / labels.name)
    if posts is not None:
        if not posts.exists():
            raise FileNotFoundError(f"posts file or folder {posts} not found")
        conf["source"] = str(posts.resolve())
    return conf


def run_demo(day: dt.date, labels: Path | None = None, posts: Path | None = None,
             settings: Settings | None = None) -> dict[str, Any]:
    """Run collect_posts, annotation, train_sentiment and score_posts for ``day``."""
    settings = settings or reload_settings()
    if day < FIRST_DATE:
        raise ValueError(f"date {day} is before the DAGs' start_date {FIRST_DATE}: pick a later date")
    if posts is not None and labels is None and not _has_labels(settings):
        raise ValueError("--posts needs --labels: without the built-in sample there are no "
                         "labels to train on (pass a JSONL/CSV with text and label)")
    collect_conf = prepare_inputs(settings, labels, posts)
    if labels is None and posts is None:
        settings = _demo_floor(settings)
    environment = apply_airflow_environment(settings)
    migrate_airflow_db(environment)
    dags = load_dags()

    states = {}
    for dag_id in PIPELINE:
        conf = {
            "collect_posts": collect_conf,
            "annotation": {"simulate_annotator": labels is None and posts is None},
        }.get(dag_id, {})
        states[dag_id] = run_dag(dags[dag_id], day, conf)
    return summarize(settings, day, states)


def _demo_floor(settings: Settings) -> Settings:
    """Lower the promotion floor for the built-in sample, unless the user set one.

    The sample's model trains on about 160 generated labels for one epoch and reaches a
    macro-F1 of roughly 0.3 to 0.6, often under the default floor of 0.40. The demo lowers
    the floor to 0 so that it shows scoring too; real data keeps the configured floor.
    """
    if FLOOR_VARIABLE in os.environ:
        return settings
    log.warning("demo on the built-in sample: promotion floor set to 0 (registry.macro_f1_floor "
                "is %s) because the demo model trains on a few generated labels; set %s to "
                "keep a floor", settings.registry.macro_f1_floor, FLOOR_VARIABLE)
    os.environ[FLOOR_VARIABLE] = "0"
    return reload_settings()


def _has_labels(settings: Settings) -> bool:
    from tasks import storage

    store = storage.open_store(settings.store, settings.s3_endpoint_url or None)
    return bool(storage.list_partitions(store, "labels"))


def summarize(settings: Settings, day: dt.date, states: dict[str, str]) -> dict[str, Any]:
    """Collect where the outputs are and how to open the UIs."""
    from tasks import storage

    store = storage.open_store(settings.store, settings.s3_endpoint_url or None)
    manifest_key = storage.partition_key("manifests", day, "collect.json")
    manifest = storage.read_json(store, manifest_key)
    scores_key = storage.partition_key("scores", day)
    scores = store.uri(scores_key) if store.exists(scores_key) else (
        "not written: no model version passed the promotion gate (its reasons are in the "
        "model version's promotion_reasons tag in MLflow)")
    return {
        "date": day.isoformat(),
        "dag_runs": states,
        "counts": {k: manifest[k] for k in ("collected", "clean", "duplicates", "quarantined")},
        "outputs": {
            "manifest": store.uri(manifest_key),
            "clean_posts": store.uri(storage.partition_key("clean_posts", day)),
            "quarantine": store.uri(storage.partition_key("quarantine", day)),
            "scores": scores,
            "validation_reports": store.uri(f"validations/date={day.isoformat()}/"),
        },
        "promotion_floor": settings.registry.macro_f1_floor,
        "airflow_ui": ".venv/bin/pulse airflow standalone   # then open http://localhost:8080",
        "mlflow_ui": f".venv/bin/pulse mlflow ui   # tracking URI {settings.tracking_uri}",
    }


def format_summary(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2)

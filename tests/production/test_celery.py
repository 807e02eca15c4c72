"""The daily DAGs on Airflow's CeleryExecutor, checked against a LocalExecutor run.

PostgreSQL and Redis come from PULSE_TEST_POSTGRES_URL and PULSE_TEST_REDIS_URL, or else
from ``scripts/services.sh``. Each executor gets a fresh metadata database and PULSE_HOME,
and real components as subprocesses on loopback: the scheduler, the dag-processor, the API
server and, for Celery, two workers. One worker takes the queues ``default`` and
``training``, the other only ``default``, so the training task must land on the first.

The test triggers collect_posts, annotation (with the simulated annotator, because training
needs labels), train_sentiment and score_posts for one date through the REST API v2. The
scheduler creates no other runs (``use_job_schedule`` is off), so each DAG runs once, in this
order, under both executors. Timings and the worker of each task go to
``test-artifacts/celery/summary.json``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from airflow_deployment import Deployment, Worker

from tasks import storage
from tasks.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

DAY = dt.date(2026, 11, 3)
PIPELINE = (
    ("collect_posts", {}),
    ("annotation", {"simulate_annotator": True}),
    ("train_sentiment", {}),
    ("score_posts", {}),
)
TRAINING_WORKER = Worker("pulse-training", "default,training")
DEFAULT_WORKER = Worker("pulse-default", "default")
TRAINING_QUEUE = "training"
# A Redis database number for this test alone; the test flushes it before and after.
REDIS_DB = 13
# About 400 sample posts pass cleaning, so scoring runs as two mapped score_shard tasks.
EXTRA_ENV = {"PULSE_SCORE__SHARD_SIZE": "200"}
STARTUP_TIMEOUT_S = 300
RUN_TIMEOUT_S = 600
SERVICES_SCRIPT = PROJECT_ROOT / "scripts" / "services.sh"
SUMMARY_PATH = PROJECT_ROOT / "test-artifacts" / "celery" / "summary.json"
COUNT_KEYS = ("collected", "clean", "duplicates", "quarantined")


@dataclass
class PipelineResult:
    """What one executor's pipeline produced: run states, task instances and outputs."""

    executor: str
    states: dict[str, str] = field(default_factory=dict)
    task_instances: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


def parse_exports(text: str) -> dict[str, str]:
    """Read ``export NAME=VALUE`` lines, as printed by scripts/services.sh."""
    variables = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            variables[name] = value
    return variables


@pytest.fixture(scope="module")
def services() -> dict[str, str]:
    """Return the PostgreSQL and Redis URLs, starting the services when none are given."""
    if importlib.util.find_spec("asyncpg") is None:
        pytest.fail("asyncpg is not installed: Airflow 3.3 opens a second, async connection to "
                    "a PostgreSQL metadata database through it; add asyncpg to the project's "
                    "dependencies")
    names = ("PULSE_TEST_POSTGRES_URL", "PULSE_TEST_REDIS_URL")
    urls = {name: os.environ.get(name, "") for name in names}
    if not all(urls.values()):
        result = subprocess.run(["bash", str(SERVICES_SCRIPT)], check=False, capture_output=True,
                                text=True, timeout=900)
        if result.returncode != 0:
            pytest.skip(f"{SERVICES_SCRIPT} could not provide PostgreSQL and Redis "
                        f"(exit code {result.returncode}):\n{result.stderr[-2000:]}")
        urls = {name: parse_exports(result.stdout).get(name, "") for name in names}
        missing = [name for name, url in urls.items() if not url]
        assert not missing, f"{SERVICES_SCRIPT} printed no {missing}:\n{result.stdout}"
    return {"postgres": urls[names[0]], "redis": with_redis_db(urls[names[1]], REDIS_DB)}


def with_redis_db(url: str, db: int) -> str:
    """Add database ``db`` to a Redis URL that names none (``redis://host:port``)."""
    parts = urlsplit(url)
    if parts.path.strip("/"):
        return url
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    """Timings and task placement of both executors, written to SUMMARY_PATH at the end."""
    data: dict[str, Any] = {"date": DAY.isoformat(), "executors": {}}
    yield data
    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\n{SUMMARY_PATH}:\n{json.dumps(data, indent=2)}")


def run_pipeline(deployment: Deployment, record: dict[str, Any]) -> PipelineResult:
    """Trigger each DAG of PIPELINE in turn, wait for it and collect its task instances.

    Stops at the first run that does not succeed, after printing its failed tasks' logs.
    """
    result = PipelineResult(deployment.executor)
    record["runs"] = {}
    record["tasks_by_worker"] = {}
    for dag_id, conf in PIPELINE:
        started = time.monotonic()
        run_id = deployment.trigger(dag_id, DAY, conf)
        run = deployment.wait_for_run(dag_id, run_id, RUN_TIMEOUT_S)
        instances = deployment.task_instances(dag_id, run_id)
        result.states[dag_id] = run["state"]
        result.task_instances.extend({"dag_id": dag_id, **ti} for ti in instances)
        record["runs"][dag_id] = {
            "state": run["state"],
            "wall_s": round(time.monotonic() - started, 1),
            "airflow_duration_s": run.get("duration"),
            "tasks": [placement(ti) for ti in instances],
        }
        for ti in instances:
            name = f"{dag_id}.{placement(ti)['task']}"
            record["tasks_by_worker"].setdefault(ti["hostname"] or "none", []).append(name)
        if run["state"] != "success":
            failed = {ti["task_id"] for ti in instances if ti["state"] != "success"}
            deployment.print_task_logs(dag_id, run_id, failed)
            break
    return result


def placement(ti: dict[str, Any]) -> dict[str, Any]:
    """The summary entry of one task instance: where and how long it ran."""
    name = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
    return {"task": name, "state": ti["state"], "queue": ti["queue"], "hostname": ti["hostname"],
            "duration_s": None if ti["duration"] is None else round(ti["duration"], 1)}


def read_outputs(store_uri: str) -> dict[str, Any]:
    """Read the day's clean posts, manifest counts and scores from a run's store."""
    store = storage.open_store(store_uri)
    clean = storage.read_frame(store, "clean_posts", DAY)
    manifest = storage.read_json(store, storage.partition_key("manifests", DAY, "collect.json"))
    scores = storage.read_frame(store, "scores", DAY)
    return {
        "clean_posts": dict(zip(clean["id"].astype(str), clean["text"])),
        "counts": {key: manifest[key] for key in COUNT_KEYS},
        "score_ids": sorted(scores["id"].astype(str)),
        "score_rows": len(scores),
        "sentiment": dict(zip(scores["id"].astype(str), scores["label"])),
    }


def run_executor(executor: str, workers: tuple[Worker, ...], services: dict[str, str],
                 root: Path, summary: dict[str, Any]) -> tuple[PipelineResult, Deployment]:
    """Run the pipeline on a fresh deployment of ``executor`` and stop it, also on failure."""
    short = "celery" if executor == "CeleryExecutor" else "local"
    deployment = Deployment(
        executor=executor, root=root, postgres_url=services["postgres"],
        database=f"pulse_celery_{os.getpid()}_{short}",
        broker_url=services["redis"] if workers else "", workers=workers, extra_env=EXTRA_ENV,
    )
    record = summary["executors"].setdefault(executor, {})
    record["timings"] = deployment.timings
    started = time.monotonic()
    try:
        deployment.create_database()
        deployment.migrate()
        deployment.start([dag_id for dag_id, _ in PIPELINE], STARTUP_TIMEOUT_S)
        result = run_pipeline(deployment, record)
        deployment.timings["pipeline_s"] = round(
            sum(run["wall_s"] for run in record["runs"].values()), 1)
        if set(result.states.values()) == {"success"}:
            result.outputs = read_outputs(deployment.store_uri)
        else:
            deployment.print_component_logs()
    except Exception:
        deployment.print_component_logs()
        raise
    finally:
        deployment.stop()
        deployment.drop_database()
        deployment.timings["total_s"] = round(time.monotonic() - started, 1)
        print(f"\n{executor}: timings {deployment.timings}")
    return result, deployment


def deployment_fixture(executor: str, workers: tuple[Worker, ...], services, summary,
                       tmp_path_factory, request):
    """Yield one executor's result; print its component logs at the end if a test failed."""
    failed_before = request.session.testsfailed
    result, deployment = run_executor(executor, workers, services,
                                      tmp_path_factory.mktemp(executor.lower()), summary)
    yield result
    if request.session.testsfailed > failed_before:
        deployment.print_component_logs()


@pytest.fixture(scope="module")
def celery_run(services, summary, tmp_path_factory, request) -> PipelineResult:
    yield from deployment_fixture("CeleryExecutor", (TRAINING_WORKER, DEFAULT_WORKER),
                                  services, summary, tmp_path_factory, request)


@pytest.fixture(scope="module")
def local_run(services, summary, tmp_path_factory, request) -> PipelineResult:
    yield from deployment_fixture("LocalExecutor", (), services, summary, tmp_path_factory,
                                  request)


def assert_all_succeeded(result: PipelineResult) -> None:
    expected = {dag_id: "success" for dag_id, _ in PIPELINE}
    assert result.states == expected, f"{result.executor} DAG runs: {result.states}"
    failed = [(ti["dag_id"], ti["task_id"], ti["state"]) for ti in result.task_instances
              if ti["state"] not in {"success", "skipped"}]
    assert not failed, f"{result.executor} task instances not successful: {failed}"


def test_celery_runs_succeed(celery_run):
    assert_all_succeeded(celery_run)


def test_celery_tasks_ran_on_both_workers(celery_run):
    ran = [ti for ti in celery_run.task_instances if ti["state"] == "success"]
    hostnames = {ti["hostname"] for ti in ran}

    assert TRAINING_WORKER.name in hostnames, f"hostnames of finished tasks: {hostnames}"
    assert DEFAULT_WORKER.name in hostnames, f"hostnames of finished tasks: {hostnames}"


def test_training_ran_on_training_worker(celery_run):
    training = [ti for ti in celery_run.task_instances if ti["queue"] == TRAINING_QUEUE]

    assert [ti["task_id"] for ti in training] == ["train"]
    assert {ti["hostname"] for ti in training} == {TRAINING_WORKER.name}


def test_local_executor_runs_succeed(local_run):
    assert_all_succeeded(local_run)


def test_clean_posts_match_local_executor(celery_run, local_run):
    celery_posts = celery_run.outputs["clean_posts"]
    local_posts = local_run.outputs["clean_posts"]

    assert sorted(celery_posts) == sorted(local_posts)
    assert celery_posts == local_posts


def test_counts_match_local_executor(celery_run, local_run):
    assert celery_run.outputs["counts"] == local_run.outputs["counts"]


def test_scores_match_local_executor(celery_run, local_run, summary):
    celery_outputs, local_outputs = celery_run.outputs, local_run.outputs
    same_labels = sum(label == local_outputs["sentiment"].get(post_id)
                      for post_id, label in celery_outputs["sentiment"].items())
    summary["comparison"] = {
        "clean_posts": len(celery_outputs["clean_posts"]),
        "counts": celery_outputs["counts"],
        "score_rows": celery_outputs["score_rows"],
        "sentiment_labels_equal": same_labels,
    }

    assert celery_outputs["score_rows"] == local_outputs["score_rows"]
    assert celery_outputs["score_ids"] == local_outputs["score_ids"]
    assert celery_outputs["score_rows"] == len(celery_outputs["clean_posts"])


def test_sentiment_labels_match_local_executor(celery_run, local_run):
    # Training seeds its split, sampling and initialisation with train.seed. On a 2-core CPU
    # both executors trained identical models, so every label must agree.
    celery_labels = celery_run.outputs["sentiment"]
    local_labels = local_run.outputs["sentiment"]
    different = {post_id: (label, local_labels.get(post_id))
                 for post_id, label in celery_labels.items() if label != local_labels.get(post_id)}

    assert not different, f"{len(different)} posts labeled differently (Celery, Local): {different}"

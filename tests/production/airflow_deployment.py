"""An Airflow deployment of real components on loopback, for the production tests.

A :class:`Deployment` owns one PostgreSQL metadata database, one PULSE_HOME, and the
scheduler, dag-processor, API server and (CeleryExecutor only) Celery workers started for it.
Each component runs in its own process group, so stopping the group also stops what the
component forked: task supervisors and task processes, uvicorn workers, Celery pool processes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
from conftest import free_port, stop_process_groups
from sqlalchemy.engine import make_url

from tasks.airflow_env import airflow_environment
from tasks.settings import reload_settings

AIRFLOW = Path(sys.executable).with_name("airflow")
HERE = Path(__file__).resolve().parent
USERNAME = "pulse"
POLL_S = 2.0
REQUEST_TIMEOUT_S = 30
STOP_GRACE_S = 20.0
LOG_TAIL_LINES = 40
TERMINAL_RUN_STATES = {"success", "failed"}


class DeploymentError(RuntimeError):
    """A component exited early, timed out or returned an error."""


@dataclass(frozen=True)
class Worker:
    """A Celery worker: its name (also its task-instance hostname) and its queues."""

    name: str
    queues: str


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log_path: Path


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return f"({path} not found)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Deployment:
    """Airflow with ``executor`` on a fresh PostgreSQL database, with its own PULSE_HOME.

    ``postgres_url`` names a maintenance database that the user may create databases from,
    e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``. ``broker_url`` is the Redis
    database of the Celery broker; it is flushed before the workers start and after they stop.
    """

    executor: str
    root: Path
    postgres_url: str
    database: str
    broker_url: str = ""
    workers: tuple[Worker, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    components: list[Component] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    logs_printed: bool = False

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.log_dir = self.root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.session = requests.Session()
        self.env, self.store_uri = self._environment()

    # -- set-up and tear-down ------------------------------------------------------------

    def _environment(self) -> tuple[dict[str, str], str]:
        """Build the components' environment from the project's Airflow environment helper.

        The helper keeps variables that are already set, and the test session has set
        AIRFLOW_HOME and the SQLite database for itself, so they are removed first. So are
        MLFLOW_* variables, which mlflow.set_tracking_uri and set_registry_uri set for any home.
        """
        with pytest.MonkeyPatch.context() as patch:
            for name in [name for name in os.environ if name.startswith(("AIRFLOW", "MLFLOW_"))]:
                patch.delenv(name)
            patch.setenv("PULSE_HOME", str(self.home))
            for name, value in self.extra_env.items():
                patch.setenv(name, value)
            settings = reload_settings()
            environment = {**os.environ, **airflow_environment(settings)}
            store_uri = settings.store
        reload_settings()

        passwords = self.root / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({USERNAME: self.password}))
        # SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3, which is not installed, so
        # both URLs name psycopg2.
        sync_url = make_url(self.postgres_url).set(
            drivername="postgresql+psycopg2", database=self.database,
        ).render_as_string(hide_password=False)
        environment.update({
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sync_url,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            # Every component signs or checks JWTs with these secrets, so all get the same values.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            # Only the test's REST calls create runs: no time- or asset-triggered runs.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # Parse each DAG file once, because re-parsing every 30 s (the default) takes CPU
            # from the tasks.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
        })
        if self.executor == "CeleryExecutor":
            environment.update({
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sync_url,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            })
        return environment, store_uri

    def _execute_admin(self, statement: str) -> None:
        """Run one statement on the maintenance database, outside a transaction."""
        connection = psycopg2.connect(self.postgres_url)
        connection.autocommit = True  # CREATE and DROP DATABASE cannot run in a transaction block
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def create_database(self) -> None:
        self.drop_database()
        self._execute_admin(f'CREATE DATABASE "{self.database}"')

    def drop_database(self) -> None:
        # WITH (FORCE), PostgreSQL 13 and later, ends sessions that a killed component left.
        self._execute_admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def flush_broker(self) -> None:
        if not self.broker_url:
            return
        import redis

        client = redis.Redis.from_url(self.broker_url)
        try:
            client.flushdb()
        finally:
            client.close()

    def migrate(self) -> float:
        """Run ``airflow db migrate`` and return its duration in seconds."""
        started = time.monotonic()
        log_path = self.log_dir / "db-migrate.log"
        with open(log_path, "wb") as log_file:
            result = subprocess.run([str(AIRFLOW), "db", "migrate"], check=False, env=self.env,
                                    cwd=self.root, stdout=log_file, stderr=subprocess.STDOUT,
                                    timeout=600)
        if result.returncode != 0:
            raise DeploymentError(f"airflow db migrate failed with exit code "
                                  f"{result.returncode}:\n{tail(log_path)}")
        self.timings["migrate_s"] = round(time.monotonic() - started, 1)
        return self.timings["migrate_s"]

    def _spawn(self, name: str, arguments: list[str],
               extra_env: dict[str, str] | None = None) -> None:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [str(AIRFLOW), *arguments], env={**self.env, **(extra_env or {})}, cwd=self.root,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.components.append(Component(name, process, log_path))

    def start(self, dag_ids: list[str], timeout_s: float) -> float:
        """Start every component, wait until all are ready and return the seconds it took.

        Ready means: the API server reports a healthy metadata database, scheduler and
        dag-processor, ``dag_ids`` are parsed without import errors, and each Celery
        worker has logged that it is ready.
        """
        started = time.monotonic()
        self.flush_broker()
        self._spawn("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)])
        self._spawn("dag-processor", ["dag-processor"])
        self._spawn("scheduler", ["scheduler", "--skip-serve-logs"])
        python_path = os.pathsep.join(filter(None, [str(HERE), self.env.get("PYTHONPATH")]))
        for worker in self.workers:
            self._spawn(f"worker-{worker.name}", [
                "celery", "worker", "--celery-hostname", f"{worker.name}@%h",
                "--queues", worker.queues, "--skip-serve-logs",
            ], extra_env={
                "PULSE_TEST_WORKER_NAME": worker.name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.worker_hostname",
                "PYTHONPATH": python_path,
            })

        deadline = time.monotonic() + timeout_s
        self._wait_until("the API server's health check", self._healthy, deadline)
        self._log_in()
        self._wait_until(f"DAGs {dag_ids}", lambda: self._dags_parsed(dag_ids), deadline)
        for worker in self.workers:
            log_path = self.log_dir / f"worker-{worker.name}.log"
            self._wait_until(f"Celery worker {worker.name}",
                             lambda path=log_path: " ready." in path.read_text(errors="replace"),
                             deadline)
        self.timings["startup_s"] = round(time.monotonic() - started, 1)
        return self.timings["startup_s"]

    def stop(self) -> None:
        """Stop every component's process group and flush the broker database."""
        started = time.monotonic()
        stop_process_groups({c.name: c.process for c in self.components}, STOP_GRACE_S)
        self.flush_broker()
        self.timings["stop_s"] = round(time.monotonic() - started, 1)

    def check_alive(self) -> None:
        for component in self.components:
            if component.process.poll() is not None:
                raise DeploymentError(
                    f"{component.name} exited with code {component.process.returncode}; "
                    f"the last lines of {component.log_path}:\n{tail(component.log_path)}")

    def _wait_until(self, what: str, ready, deadline: float) -> Any:
        while True:
            self.check_alive()
            result = ready()
            if result:
                return result
            if time.monotonic() > deadline:
                raise DeploymentError(f"timed out waiting for {what}")
            time.sleep(POLL_S)

    # -- REST API v2 ---------------------------------------------------------------------

    def _healthy(self) -> bool:
        try:
            response = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return False
        if response.status_code != 200:
            return False
        health = response.json()
        return all((health.get(part) or {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "dag_processor"))

    def _log_in(self) -> None:
        """Get a JWT from the simple auth manager's token endpoint for the test user."""
        response = requests.post(f"{self.base_url}/auth/token", timeout=REQUEST_TIMEOUT_S,
                                 json={"username": USERNAME, "password": self.password})
        if response.status_code != 201:
            raise DeploymentError(
                f"POST /auth/token returned {response.status_code}: {response.text}")
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}/api/v2{path}",
                                        timeout=REQUEST_TIMEOUT_S, **kwargs)
        if not response.ok:
            raise DeploymentError(f"{method} /api/v2{path} returned {response.status_code}: "
                                  f"{response.text}")
        return response.json()

    def _dags_parsed(self, dag_ids: list[str]) -> bool:
        errors = self.api("GET", "/importErrors")["import_errors"]
        if errors:
            details = "\n".join(f"{error['filename']}: {error['stack_trace']}" for error in errors)
            raise DeploymentError(f"DAG files failed to import:\n{details}")
        parsed = {dag["dag_id"] for dag in self.api("GET", "/dags", params={"limit": 100})["dags"]}
        return set(dag_ids) <= parsed

    def trigger(self, dag_id: str, day: dt.date, conf: dict[str, Any]) -> str:
        """Unpause ``dag_id`` if needed, create a manual run for ``day`` and return its run id."""
        if self.api("GET", f"/dags/{dag_id}")["is_paused"]:
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={
            "dag_run_id": f"pulse_test__{dag_id}__{day.isoformat()}",
            "logical_date": f"{day.isoformat()}T00:00:00+00:00",
            "conf": {"date": day.isoformat(), **conf},
        })
        return run["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float) -> dict[str, Any]:
        """Poll the run until it succeeds or fails, and return it.

        Raises DeploymentError with the task states when ``timeout_s`` passes first.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                states = {f"{ti['task_id']}[{ti['map_index']}]": ti["state"]
                          for ti in self.task_instances(dag_id, run_id)}
                raise DeploymentError(f"DAG run {dag_id}/{run_id} still {run['state']} after "
                                      f"{timeout_s:.0f} s; task states: {states}")
            time.sleep(POLL_S)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                        params={"limit": 100})["task_instances"]

    # -- diagnostics ---------------------------------------------------------------------

    def print_component_logs(self) -> None:
        """Print the end of each component's log, once per deployment."""
        if self.logs_printed:
            return
        self.logs_printed = True
        for component in self.components:
            print(f"\n----- {self.executor} {component.name}: last lines of {component.log_path}")
            print(tail(component.log_path))

    def print_task_logs(self, dag_id: str, run_id: str, task_ids: set[str]) -> None:
        """Print the end of each log file of ``task_ids`` in one run."""
        run_folder = self.env["AIRFLOW_HOME"] + f"/logs/dag_id={dag_id}/run_id={run_id}"
        for path in sorted(Path(run_folder).rglob("*.log")):
            if any(f"task_id={task_id}" in path.as_posix() for task_id in task_ids):
                print(f"\n----- {self.executor} task log {path}")
                print(tail(path))

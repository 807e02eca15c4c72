"""Test set-up: every test session gets its own Social Pulse home, Airflow and MLflow.

The environment is set at import time, before any test imports Airflow, because Airflow
reads its configuration once on import.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SESSION_HOME = Path(tempfile.mkdtemp(prefix="pulse-tests-"))
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
MOTO_BUCKET = "pulse-test"
SERVER_START_TIMEOUT_S = 30
# Dummy credentials for moto only. AWS_EC2_METADATA_DISABLED stops boto3 from querying the
# instance metadata address.
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1",
    "no_proxy": "127.0.0.1",
}

os.environ.update({
    "PULSE_HOME": str(SESSION_HOME),
    "PULSE_CONFIG": str(SESSION_HOME / "absent.toml"),
    # Small, fast training for tests; the defaults are for real runs.
    "PULSE_TRAIN__EPOCHS": "1",
    "PULSE_TRAIN__MAX_LENGTH": "48",
    "PULSE_TRAIN__BATCH_SIZE": "16",
    "PULSE_TRAIN__WARMUP_STEPS": "0",
    "PULSE_TRAIN__LEARNING_RATE": "1e-4",
    "PULSE_REGISTRY__MACRO_F1_FLOOR": "0.0",
    "GX_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
})
for variable in [name for name in os.environ if name.startswith("AIRFLOW")]:
    del os.environ[variable]

from tasks.airflow_env import apply_airflow_environment
from tasks.settings import reload_settings

apply_airflow_environment(reload_settings())


@pytest.fixture(scope="session")
def airflow_db() -> dict[str, str]:
    """Migrate the session's SQLite Airflow database once and return the environment."""
    from tasks.airflow_env import airflow_environment
    from tasks.demo import migrate_airflow_db

    environment = airflow_environment(reload_settings())
    migrate_airflow_db(environment)
    return environment


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings whose home (store, MLflow, inbox) is a fresh folder for this test."""
    monkeypatch.setenv("PULSE_HOME", str(tmp_path / "home"))
    yield reload_settings()
    monkeypatch.undo()
    reload_settings()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The labeled public data sets beside the repository; tests using them skip without."""
    if not (SHARED_DATA / "sentiment-en" / "train.jsonl").is_file():
        pytest.skip(f"labeled data not found under {SHARED_DATA}")
    return SHARED_DATA


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_groups(processes: Mapping[str, subprocess.Popen], grace_s: float) -> None:
    """Send SIGTERM to the process group led by each process, then SIGKILL after ``grace_s``.

    Each process must have been started with ``start_new_session=True``. A group can outlive
    its leader (a forked task process, for example), so the check is on the group.
    """
    for process in processes.values():
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(map(_group_alive, processes.values())):
        time.sleep(0.5)
    for name, process in processes.items():
        if _group_alive(process):
            print(f"{name}: still running {grace_s:.0f} s after SIGTERM, sending SIGKILL")
            _signal_group(process, signal.SIGKILL)
    for name, process in processes.items():
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            print(f"{name}: pid {process.pid} did not exit after SIGKILL")


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _group_alive(process: subprocess.Popen) -> bool:
    process.poll()  # reap the leader: a zombie still counts as a group member
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"moto_server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"moto_server did not listen on 127.0.0.1:{port} within {timeout_s} s")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    """Start moto_server on a free local port, create the test bucket and yield its URL."""
    if not MOTO_SERVER.is_file():
        pytest.skip(f"moto_server not found at {MOTO_SERVER}: install the dev extras")

    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENVIRONMENT.items():
            patch.setenv(name, value)
        for name in ["AWS_PROFILE", "AWS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
                     "http_proxy", "https_proxy"]:
            patch.delenv(name, raising=False)
        aws_folder = tmp_path_factory.mktemp("aws")
        patch.setenv("AWS_CONFIG_FILE", str(aws_folder / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_folder / "credentials"))

        port = free_port()
        log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log_file, stderr=subprocess.STDOUT, env=os.environ.copy(),
            )
        try:
            wait_for_port(port, process, SERVER_START_TIMEOUT_S)
            endpoint = f"http://127.0.0.1:{port}"
            import boto3

            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=MOTO_BUCKET)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# Run params the promotion gate reads to rebuild a candidate's evaluation set.
GATE_PARAMS = ("labels", "mode", "retrieval.queries_per_group", "retrieval.seed")


@pytest.fixture
def register_candidate():
    """Return a function that registers a copy of a model version reporting chosen metrics.

    The copy reuses the original version's model files, its logged evaluation set (so the
    promotion gate can measure the champion on it) and its data-quality tag, while the
    copy's run reports ``metrics`` instead of the original's.
    """
    import mlflow

    def register(client, model: str, metrics: dict[str, float], version: str = "1") -> str:
        original = client.get_model_version(model, version)
        source = client.get_run(original.run_id).data
        params = source.params
        with tempfile.TemporaryDirectory() as folder:
            evaluation = mlflow.artifacts.download_artifacts(
                run_id=original.run_id, artifact_path="evaluation", dst_path=folder)
            tags = {key: source.tags[key] for key in ("data_quality",) if key in source.tags}
            with mlflow.start_run(tags=tags) as run:
                mlflow.log_metrics(metrics)
                mlflow.log_params({key: params[key] for key in GATE_PARAMS if key in params})
                mlflow.log_artifacts(evaluation, "evaluation")
        return str(client.create_model_version(model, original.source,
                                               run_id=run.info.run_id).version)

    return register

"""The scripts that the containers run, against real local services.

docker/init/prepare.py runs against the moto S3 server on 127.0.0.1 (tests/conftest.py).
docker/postgres/init-databases.sh runs against a throwaway PostgreSQL cluster that listens on
a Unix socket only; that test skips where initdb is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
PREPARE = REPO / "docker" / "init" / "prepare.py"
INIT_DATABASES = REPO / "docker" / "postgres" / "init-databases.sh"
INSTALL_SCRIPT = REPO / "docker" / "install-python-deps.sh"
POSTGRES_TIMEOUT_S = 60


def _load_prepare():
    spec = importlib.util.spec_from_file_location("docker_init_prepare", PREPARE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["docker_init_prepare"] = module
    spec.loader.exec_module(module)
    return module


prepare = _load_prepare()


# --- docker/init/prepare.py ----------------------------------------------------------------

def test_bucket_names_from_uris():
    uris = ["s3://social-pulse/store", "s3://mlflow/artifacts", "s3://mlflow/other", "/local/path", ""]
    assert prepare.bucket_names(uris) == ["mlflow", "social-pulse"]


def test_bucket_names_rejects_uri_without_bucket():
    with pytest.raises(ValueError, match="invalid S3 URI"):
        prepare.bucket_names(["s3:///prefix"])


def test_create_buckets_idempotent(moto_endpoint):
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    names = ["prepare-first", "prepare-second"]
    assert prepare.create_buckets(client, names) == names
    assert prepare.create_buckets(client, names) == []
    listed = {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}
    assert set(names) <= listed


def test_write_password_file(tmp_path):
    path = tmp_path / "auth" / "passwords.json"
    prepare.write_password_file(path, "admin", "first")
    prepare.write_password_file(path, "admin", "second")
    assert json.loads(path.read_text()) == {"admin": "second"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_password_file_requires_password(tmp_path):
    with pytest.raises(ValueError, match="AIRFLOW_ADMIN_PASSWORD"):
        prepare.write_password_file(tmp_path / "passwords.json", "admin", "")


def test_prepare_main_end_to_end(moto_endpoint, tmp_path, monkeypatch):
    passwords = tmp_path / "auth" / "passwords.json"
    monkeypatch.setenv("PULSE_STORE_URI", "s3://prepare-store/store")
    monkeypatch.setenv("PULSE_MLFLOW_ARTIFACT_ROOT", "s3://prepare-mlflow/artifacts")
    monkeypatch.setenv("PULSE_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("AIRFLOW_ADMIN_USER", "admin")
    monkeypatch.setenv("AIRFLOW_ADMIN_PASSWORD", "secret")

    assert prepare.main() == 0

    listed = {bucket["Name"] for bucket in
              boto3.client("s3", endpoint_url=moto_endpoint).list_buckets()["Buckets"]}
    assert {"prepare-store", "prepare-mlflow"} <= listed
    assert json.loads(passwords.read_text()) == {"admin": "secret"}


def test_prepare_main_fails_without_password(tmp_path, monkeypatch):
    monkeypatch.setenv("PULSE_STORE_URI", str(tmp_path / "store"))
    monkeypatch.setenv("PULSE_MLFLOW_ARTIFACT_ROOT", "")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
                       str(tmp_path / "passwords.json"))
    monkeypatch.delenv("AIRFLOW_ADMIN_PASSWORD", raising=False)
    assert prepare.main() == 1


# --- docker/install-python-deps.sh argument checks (no install) ---------------------------

@pytest.mark.parametrize(("arguments", "variant", "message"), [
    (["deps", str(REPO)], "rocm", "invalid VARIANT 'rocm'"),
    (["upgrade", str(REPO)], "cpu", "unknown step 'upgrade'"),
])
def test_install_script_rejects_bad_arguments(arguments, variant, message):
    result = subprocess.run(["bash", str(INSTALL_SCRIPT), *arguments], capture_output=True,
                            text=True, env={**os.environ, "VARIANT": variant, "PYTHON": "false"},
                            timeout=30, check=False)
    assert result.returncode == 2
    assert message in result.stderr


# --- docker/postgres/init-databases.sh ----------------------------------------------------

def _postgres_runner() -> list[str] | None:
    """Return the prefix that runs PostgreSQL server binaries here, or None to skip."""
    if not all(shutil.which(tool) for tool in ("initdb", "pg_ctl", "psql")):
        return None
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


@pytest.fixture
def postgres_socket():
    """Start a PostgreSQL cluster with password auth on a Unix socket only; yield its env."""
    runner = _postgres_runner()
    if runner is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) or a non-root user to run them "
                    "are not available")

    root = Path(tempfile.mkdtemp(prefix="pulse-postgres-"))
    data, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir()
    password_file = root / "superuser-password"
    password_file.write_text("super-secret\n")
    if runner:
        shutil.chown(root, "postgres")
        shutil.chown(socket_dir, "postgres")
        shutil.chown(password_file, "postgres")

    # Only names the socket file: the server listens on no TCP address.
    port = "54329"
    subprocess.run([*runner, "initdb", "--pgdata", str(data), "--username", "postgres",
                    "--auth", "scram-sha-256", "--pwfile", str(password_file), "--no-sync"],
                   check=True, capture_output=True, timeout=POSTGRES_TIMEOUT_S)
    options = f"-c listen_addresses='' -k {socket_dir} -p {port}"
    subprocess.run([*runner, "pg_ctl", "--pgdata", str(data), "--log", str(root / "server.log"),
                    "--options", options, "--wait", "start"],
                   check=True, capture_output=True, timeout=POSTGRES_TIMEOUT_S)

    environment = {**os.environ, "PGHOST": str(socket_dir), "PGPORT": port,
                   "PGPASSWORD": "super-secret", "POSTGRES_USER": "postgres",
                   "POSTGRES_DB": "postgres"}
    try:
        yield environment
    finally:
        subprocess.run([*runner, "pg_ctl", "--pgdata", str(data), "--mode", "immediate", "stop"],
                       capture_output=True, timeout=POSTGRES_TIMEOUT_S, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _psql(environment: dict, user: str, password: str, database: str, sql: str):
    return subprocess.run(
        ["psql", "--no-psqlrc", "--set", "ON_ERROR_STOP=1", "--username", user,
         "--dbname", database, "--command", sql],
        env={**environment, "PGPASSWORD": password}, capture_output=True, text=True,
        timeout=POSTGRES_TIMEOUT_S, check=False,
    )


def test_init_databases_creates_roles_and_databases(postgres_socket):
    # Quotes, a backslash and a dollar sign check that the passwords reach SQL as literals.
    airflow_password = "air'flow\"pa$$\\word"
    mlflow_password = "ml-flow_password"
    environment = {**postgres_socket, "AIRFLOW_DB_PASSWORD": airflow_password,
                   "MLFLOW_DB_PASSWORD": mlflow_password}

    for run in ("first", "second"):
        result = subprocess.run(["bash", str(INIT_DATABASES)], env=environment, capture_output=True,
                                text=True, timeout=POSTGRES_TIMEOUT_S, check=False)
        assert result.returncode == 0, f"{run} run: {result.stderr}"

    airflow = _psql(environment, "airflow", airflow_password, "airflow",
                    "CREATE TABLE probe (id int); DROP TABLE probe;")
    assert airflow.returncode == 0, airflow.stderr
    mlflow = _psql(environment, "mlflow", mlflow_password, "mlflow",
                   "CREATE TABLE probe (id int); DROP TABLE probe;")
    assert mlflow.returncode == 0, mlflow.stderr
    crossed = _psql(environment, "airflow", airflow_password, "mlflow", "SELECT 1")
    assert crossed.returncode != 0
    assert "permission denied" in crossed.stderr


def test_init_databases_requires_passwords():
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD")}
    result = subprocess.run(["bash", str(INIT_DATABASES)], env=environment, capture_output=True,
                            text=True, timeout=POSTGRES_TIMEOUT_S, check=False)
    assert result.returncode != 0
    assert "AIRFLOW_DB_PASSWORD is not set" in result.stderr

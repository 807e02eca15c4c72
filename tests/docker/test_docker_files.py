"""Static checks of docker/: compose file, env example, Dockerfile, pod templates.

No Docker engine is needed. `docker compose config` and the compose-spec schema run when
available and skip otherwise. The negative cases feed broken inputs to the same checks, so a
check that can no longer fail shows up here.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_check_docker():
    spec = importlib.util.spec_from_file_location("check_docker", REPO / "scripts" / "check_docker.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_docker"] = module
    spec.loader.exec_module(module)
    return module


check_docker = _load_check_docker()

EXPECTED_SERVICES = {
    "postgres", "redis", "minio", "mlflow", "airflow-init", "airflow-api-server",
    "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
    "airflow-worker-gpu",
}
AIRFLOW_SERVICES = {"airflow-init", "airflow-api-server", "airflow-scheduler",
                    "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
                    "airflow-worker-gpu"}


@pytest.fixture(scope="module")
def compose():
    return check_docker.load_compose()


@pytest.fixture(scope="module")
def env_example():
    return check_docker.read_env_file(check_docker.ENV_EXAMPLE)


# --- The committed files -----------------------------------------------------------------

def test_compose_has_expected_services(compose):
    assert set(compose["services"]) == EXPECTED_SERVICES


def test_compose_top_level_keys(compose):
    assert check_docker.check_compose_top_level(compose) == []


def test_every_service_image_or_build_exists(compose, env_example):
    assert check_docker.check_images(compose, env_example) == []


def test_compose_variables_match_env_example(compose, env_example):
    assert check_docker.check_variables_defined(compose, env_example) == []


def test_depends_on_targets_and_conditions(compose):
    assert check_docker.check_depends_on(compose) == []


def test_volumes_declared_and_bind_sources_exist(compose):
    assert check_docker.check_volumes(compose) == []


def test_published_ports_on_loopback(compose):
    assert check_docker.check_ports_on_loopback(compose) == []


def test_long_running_services_have_healthchecks(compose):
    assert check_docker.check_healthchecks(compose) == []


def test_pulse_variables_are_settings_fields(compose):
    assert check_docker.check_pulse_settings_names(compose) == []


def test_airflow_variables_are_options(compose):
    problems, _ = check_docker.check_airflow_option_names(compose)
    assert problems == []


def test_airflow_provider_variables_are_options(compose):
    _, unchecked = check_docker.check_airflow_option_names(compose)
    if unchecked:
        pytest.skip(f"providers of {unchecked} are not installed here; "
                    "scripts/check_docker.py --install checks them in the image's packages")


def test_dockerfile():
    assert check_docker.check_dockerfile() == []


def test_dockerfile_install_steps_in_order():
    steps = check_docker.install_steps(check_docker.parse_dockerfile())
    assert steps == ["deps", "project"]


@pytest.mark.parametrize("template", check_docker.POD_TEMPLATES, ids=lambda path: path.name)
def test_pod_template(template):
    assert check_docker.check_pod_template(template) == []


def test_pod_template_exists():
    names = {path.name for path in check_docker.POD_TEMPLATES}
    assert "pod_template.yaml" in names


def test_env_file_ignored_by_git():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "--quiet", "docker/.env"], cwd=REPO, check=False)
    example = subprocess.run(["git", "check-ignore", "--quiet", "docker/env.example"], cwd=REPO,
                             check=False)
    assert ignored.returncode == 0, "docker/.env must be in .gitignore"
    assert example.returncode == 1, "docker/env.example must not be ignored"


# --- What the stack wires together --------------------------------------------------------

def test_airflow_services_share_core_settings(compose):
    keys = ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__FERNET_KEY")
    reference = check_docker.environment_of(compose["services"]["airflow-scheduler"])
    for name in AIRFLOW_SERVICES:
        environment = check_docker.environment_of(compose["services"][name])
        for key in keys:
            assert environment.get(key) == reference[key], f"{name}: {key}"
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_execution_api_url_points_at_api_server(compose):
    environment = check_docker.environment_of(compose["services"]["airflow-worker"])
    url = environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    api_server = compose["services"]["airflow-api-server"]
    assert url == "http://airflow-api-server:8080/execution/"
    assert api_server["command"][-2:] == ["--port", "8080"]


def test_component_commands(compose):
    commands = {name: compose["services"][name]["command"][:3] for name in
                ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer", "airflow-worker")}
    assert commands["airflow-api-server"][:2] == ["airflow", "api-server"]
    assert commands["airflow-scheduler"] == ["airflow", "scheduler"]
    assert commands["airflow-dag-processor"] == ["airflow", "dag-processor"]
    assert commands["airflow-triggerer"] == ["airflow", "triggerer"]
    assert commands["airflow-worker"] == ["airflow", "celery", "worker"]


def test_gpu_worker_takes_training_queue_on_gpu(compose):
    worker = compose["services"]["airflow-worker-gpu"]
    command = worker["command"]
    assert command[command.index("--queues") + 1] == "training"
    assert worker["build"]["args"]["VARIANT"] == "cuda"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]


def test_training_queue_matches_dag():
    dag_text = (REPO / "dags" / "train_sentiment.py").read_text(encoding="utf-8")
    assert 'queue="training"' in dag_text


def test_cpu_worker_queues_default(compose, env_example):
    command = compose["services"]["airflow-worker"]["command"]
    queues = check_docker.interpolate(command[command.index("--queues") + 1], env_example)
    assert "default" in queues.split(",")


def test_store_and_artifacts_on_minio(compose, env_example):
    environment = check_docker.environment_of(compose["services"]["airflow-worker"])
    resolved = {key: check_docker.interpolate(value, env_example)
                for key, value in environment.items()}
    assert resolved["PULSE_STORE_URI"].startswith("s3://")
    assert resolved["PULSE_MLFLOW_ARTIFACT_ROOT"].startswith("s3://")
    assert resolved["PULSE_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert resolved["PULSE_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_mlflow_server_uses_postgres_and_s3(compose, env_example):
    environment = check_docker.environment_of(compose["services"]["mlflow"])
    assert environment["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://mlflow:")
    assert environment["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    artifact_root = check_docker.interpolate(environment["MLFLOW_DEFAULT_ARTIFACT_ROOT"], env_example)
    assert artifact_root.startswith("s3://")
    hosts = check_docker.interpolate(environment["MLFLOW_SERVER_ALLOWED_HOSTS"], env_example)
    assert "mlflow:5000" in hosts.split(",")


def test_init_service_migrates_and_creates_buckets(compose):
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    assert script.startswith(check_docker.IMAGE_PROJECT_DIR + "/")
    local = REPO / script.removeprefix(check_docker.IMAGE_PROJECT_DIR + "/")
    text = local.read_text(encoding="utf-8")
    assert "airflow db migrate" in text
    assert "prepare.py" in text
    assert str(init.get("restart")) == "no"


def test_postgres_init_script_mounted(compose):
    volumes = compose["services"]["postgres"]["volumes"]
    assert any(str(v).startswith("./postgres/init-databases.sh:/docker-entrypoint-initdb.d/")
               for v in volumes)


# --- Interpolation and .dockerignore helpers ----------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("${A}", "1"),
    ("$A-x", "1-x"),
    ("${MISSING:-fallback}", "fallback"),
    ("${EMPTY:-fallback}", "fallback"),
    ("${EMPTY-fallback}", ""),
    ("${A:+set}", "set"),
    ("$${HOSTNAME}", "${HOSTNAME}"),
    ("x$$y", "x$y"),
])
def test_interpolate(text, expected):
    assert check_docker.interpolate(text, {"A": "1", "EMPTY": ""}) == expected


def test_interpolate_required_missing():
    with pytest.raises(KeyError, match="required variable B"):
        check_docker.interpolate("${B:?set B}", {})


def test_variables_in_skips_escaped():
    assert check_docker.variables_in("$${HOSTNAME} ${A} $B ${C:-x}") == {"A", "B", "C"}


def test_read_env_file_rejects_malformed_line(tmp_path):
    path = tmp_path / "env"
    path.write_text("A=1\nnot a pair\n")
    with pytest.raises(ValueError, match="line 2"):
        check_docker.read_env_file(path)


@pytest.mark.parametrize(("path", "ignored"), [
    ("tasks/settings.py", False),
    ("tasks/__pycache__/settings.cpython-311.pyc", True),
    ("docker/init/prepare.py", False),
    ("docker/.env", True),
    ("docker/compose.yaml", True),
    (".venv/bin/python", True),
    (".git/config", True),
    ("pyproject.toml", False),
])
def test_dockerignore_rules(path, ignored):
    rules = check_docker.parse_dockerignore()
    assert check_docker.is_ignored(path, rules) is ignored


# --- Negative cases: the checks report broken input --------------------------------------

def test_undefined_and_unused_variables_reported(compose, env_example):
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["environment"]["EXTRA"] = "${NOT_IN_EXAMPLE}"
    problems = check_docker.check_variables_defined(broken, {**env_example, "UNUSED": "1"})
    assert any("NOT_IN_EXAMPLE" in problem for problem in problems)
    assert any("UNUSED" in problem for problem in problems)


def test_bad_depends_on_reported(compose):
    broken = copy.deepcopy(compose)
    services = broken["services"]
    services["redis"]["depends_on"] = {"nowhere": {"condition": "service_started"}}
    services["minio"]["depends_on"] = {"airflow-worker": {"condition": "service_started"}}
    services["mlflow"]["depends_on"]["airflow-init"] = {"condition": "service_healthy"}
    problems = check_docker.check_depends_on(broken)
    assert any("'nowhere', which is not a service" in problem for problem in problems)
    assert any("cycle" in problem for problem in problems)
    assert any("airflow-init has no healthcheck" in problem for problem in problems)


def test_undeclared_volume_and_missing_bind_reported(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["volumes"] = ["undeclared:/data", "./missing.conf:/etc/x.conf"]
    problems = check_docker.check_volumes(broken)
    assert any("'undeclared' is not declared" in problem for problem in problems)
    assert any("'./missing.conf' not found" in problem for problem in problems)
    assert any("'redis-data' is declared but no service mounts it" in problem for problem in problems)


def test_unpinned_image_and_public_port_reported(compose, env_example):
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["image"] = "redis"
    broken["services"]["redis"]["ports"] = ["6379:6379"]
    assert any("no pinned tag" in p for p in check_docker.check_images(broken, env_example))
    assert any("not bound to 127.0.0.1" in p for p in check_docker.check_ports_on_loopback(broken))


def test_unknown_settings_and_airflow_names_reported(compose):
    broken = copy.deepcopy(compose)
    environment = broken["services"]["airflow-scheduler"]["environment"]
    environment["PULSE_STORE"] = "s3://bucket/x"
    environment["AIRFLOW__CORE__NO_SUCH_OPTION"] = "1"
    assert any("PULSE_STORE matches no field" in p
               for p in check_docker.check_pulse_settings_names(broken))
    problems, _ = check_docker.check_airflow_option_names(broken)
    assert any("AIRFLOW__CORE__NO_SUCH_OPTION" in p for p in problems)


def test_broken_dockerfile_reported(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.12\n"
        "ARG VARIANT=cuda\n"
        "WORKDIR /opt/social-pulse\n"
        "COPY missing.txt ./\n"
        "COPY tasks/ tasks/\n"
        "ENV AIRFLOW__CORE__DAGS_FOLDER=/somewhere\n"
        "USER root\n"
    )
    ignore = tmp_path / "Dockerfile.dockerignore"
    ignore.write_text("tasks\n")
    problems = check_docker.check_dockerfile(dockerfile, REPO, ignore)
    expected = ["is not python:3.11-slim", "VARIANT must default to cpu",
                "'missing.txt' not found", "'tasks/' is excluded", "runs as root",
                "AIRFLOW_HOME is not set", "AIRFLOW__CORE__DAGS_FOLDER is '/somewhere'"]
    for fragment in expected:
        assert any(fragment in problem for problem in problems), fragment


def test_broken_pod_template_reported(tmp_path):
    template = tmp_path / "pod.yaml"
    template.write_text(
        "apiVersion: v1\nkind: Pod\nspec:\n  restartPolicy: Always\n  containers:\n"
        "    - name: main\n      image: x:1\n      volumeMounts:\n        - name: data\n"
        "          mountPath: /data\n"
    )
    problems = check_docker.check_pod_template(template)
    assert any("no container named 'base'" in problem for problem in problems)
    assert any("restartPolicy must be Never" in problem for problem in problems)
    assert any("'data' has no volume" in problem for problem in problems)


# --- External validators, when present ----------------------------------------------------

def test_compose_config_with_docker_client():
    command = check_docker.compose_cli()
    if command is None:
        pytest.skip("no working `docker compose` or `docker-compose` client on this machine")
    result = check_docker.run_compose_config(command)
    assert result.returncode == 0, result.stderr


def test_compose_schema(compose, env_example):
    schema = check_docker.find_compose_schema()
    if schema is None:
        pytest.skip("compose-spec schema not available offline: install check-jsonschema or "
                    "set PULSE_COMPOSE_SCHEMA to compose-spec.json")
    assert check_docker.check_compose_schema(compose, env_example, schema) == []


def test_compose_schema_rejects_unknown_key(compose, env_example):
    schema = check_docker.find_compose_schema()
    if schema is None:
        pytest.skip("compose-spec schema not available offline")
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["imagee"] = "redis:7.4"
    problems = check_docker.check_compose_schema(broken, env_example, schema)
    assert any("imagee" in problem for problem in problems)

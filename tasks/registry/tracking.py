"""MLflow set-up and the registry calls that training, promotion and scoring share."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tasks.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking and registry URI and create the experiment."""
    if settings.s3_endpoint_url:
        # MLflow's S3 artifact repository reads the endpoint from this variable only.
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.tracking_uri.startswith("sqlite:///"):
        Path(settings.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    name = settings.registry.experiment
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=_artifact_location(settings))
    mlflow.set_experiment(name)
    return client


def _artifact_location(settings: Settings) -> str:
    root = settings.artifact_root
    if "://" in root:
        return f"{root.rstrip('/')}/{settings.registry.experiment}"
    path = Path(root) / settings.registry.experiment
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve().as_uri()


def code_version() -> str:
    """Return the git commit of the project (with '-dirty' for local changes), if known."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
            text=True, check=True, timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return f"social-pulse {version('social-pulse')}"
    return f"{commit}-dirty" if status else commit


def champion_version(client: MlflowClient, name: str, alias: str) -> Any | None:
    """Return the model version that ``alias`` points to, or None when it is not set."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def latest_version(client: MlflowClient, name: str) -> Any | None:
    """Return the highest-numbered version of registered model ``name``, or None."""
    versions = client.search_model_versions(f"name='{name}'")
    return max(versions, key=lambda v: int(v.version), default=None)

"""Environment for running Airflow on the embedded defaults (no Airflow import here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tasks.settings import PROJECT_ROOT, Settings

DAGS_FOLDER = PROJECT_ROOT / "dags"
PLUGINS_FOLDER = PROJECT_ROOT / "plugins"


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Return the variables that point Airflow at this project; set ones are kept.

    SQLite under ``settings.airflow_dir`` unless AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is set,
    the project's dags/ and plugins/ folders, and no example DAGs.
    """
    home = settings.airflow_dir
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "GX_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
    }
    return {key: os.environ.get(key, value) for key, value in defaults.items()}


def apply_airflow_environment(settings: Settings) -> dict[str, str]:
    """Set the Airflow variables in this process (before Airflow is imported)."""
    environment = airflow_environment(settings)
    Path(environment["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(environment)
    for folder in (str(PLUGINS_FOLDER), str(DAGS_FOLDER)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    return environment

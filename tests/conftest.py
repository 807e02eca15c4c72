"""Test set-up: every test session gets its own Social Pulse home, Airflow and MLflow.

The environment is set at import time, before any test imports Airflow, because Airflow
reads its configuration once on import.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SESSION_HOME = Path(tempfile.mkdtemp(prefix="pulse-tests-"))
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

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

from tasks.airflow_env import apply_airflow_environment  # noqa: E402
from tasks.settings import reload_settings  # noqa: E402

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

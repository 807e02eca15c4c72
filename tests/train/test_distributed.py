"""`pulse train` under torchrun: two CPU processes (gloo) train one model, rank 0 registers it.

This is the multi-GPU launch path run on CPU; about 40 s on two cores.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tasks.collect.sample import generate_posts

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _write(path: Path, day: dt.date, count: int) -> None:
    rows = [{"text": p.text, "label": p.label} for p in generate_posts(day, count=count)]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def test_torchrun_two_processes_register_one_version(tmp_path):
    _write(tmp_path / "train.jsonl", dt.date(2026, 1, 1), 64)
    _write(tmp_path / "validation.jsonl", dt.date(2026, 1, 2), 24)
    environment = {**os.environ, "PULSE_HOME": str(tmp_path / "home"),
                   "PULSE_TRAIN__EPOCHS": "1", "PULSE_TRAIN__MAX_LENGTH": "32",
                   "PULSE_TRAIN__BATCH_SIZE": "8", "PULSE_TRAIN__EARLY_STOPPING_PATIENCE": "0"}

    done = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2",
         str(BIN / "pulse"), "train", "sentiment",
         "--train", "train.jsonl", "--validation", "validation.jsonl"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    # Only rank 0 prints the URI.
    assert [line for line in done.stdout.splitlines() if line.startswith("models:/")] == [
        "models:/social-pulse-sentiment/1"]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}")
    versions = client.search_model_versions("name='social-pulse-sentiment'")
    assert [str(v.version) for v in versions] == ["1"]
    runs = client.search_runs([client.get_experiment_by_name("social-pulse").experiment_id])
    assert [run.info.status for run in runs] == ["FINISHED"]
    assert "world size 2" in done.stderr

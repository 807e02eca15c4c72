"""The image's pip install steps in a fresh venv: opt-in, because it takes minutes.

    PULSE_CHECK_IMAGE_INSTALL=1 .venv/bin/python -m pytest tests/docker/test_image_install.py

Runs docker/install-python-deps.sh as docker/Dockerfile does, on the files the Dockerfile
copies, then imports the stack, checks the CLI options and Airflow option names of
docker/compose.yaml against the installed packages, parses the DAGs and checks that every
installed package is pinned. About 2.5 GB of disk under the system temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("PULSE_CHECK_IMAGE_INSTALL") != "1",
                       reason="set PULSE_CHECK_IMAGE_INSTALL=1 to run the image install check "
                              "(minutes, about 2.5 GB)"),
]


def _load_check_docker():
    spec = importlib.util.spec_from_file_location("check_docker", REPO / "scripts" / "check_docker.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_docker"] = module
    spec.loader.exec_module(module)
    return module


def test_image_install_steps(tmp_path_factory):
    check_docker = _load_check_docker()
    if shutil.which("python3.11") is None:
        pytest.skip("python3.11 is not on PATH")
    work_dir = tmp_path_factory.mktemp("image-install")

    result = check_docker.run_install_check(work_dir)

    print(f"image install timings (s): {result['timings']}, torch {result['torch']}")
    assert result["problems"] == []
    assert result["torch"].endswith("+cpu")
    shutil.rmtree(work_dir / "venv", ignore_errors=True)

"""The roles of the processes when training runs under torchrun or ``accelerate launch``.

Every launched process runs the whole ``pulse train`` command. All of them take part in
training (the HF Trainer wraps the model in DistributedDataParallel), but only the main
process (rank 0) evaluates, logs to MLflow and registers the model. The processes share
one work folder, so every rank loads the same best checkpoint at the end of training.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def rank() -> int:
    """Return this process's global rank: 0 outside a distributed launch."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True for the process that evaluates, logs and registers (rank 0)."""
    return rank() == 0


def world_size() -> int:
    """Return the number of launched training processes: 1 outside a distributed launch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextmanager
def work_folder(prefix: str) -> Iterator[Path]:
    """Yield a work folder for checkpoints, shared by every process of one launch.

    Outside a distributed launch it is a fresh temporary folder. Under torchrun its name
    comes from the launch's run id (or the rendezvous port), so all ranks on a machine use
    the same one. The main process removes it at the end.
    """
    if world_size() == 1:
        with tempfile.TemporaryDirectory(prefix=prefix) as folder:
            yield Path(folder)
        return
    launch = os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("MASTER_PORT", "0")
    folder = Path(tempfile.gettempdir()) / f"{prefix}{launch}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        if is_main_process():
            shutil.rmtree(folder, ignore_errors=True)

"""Sources of raw posts: the built-in sample and JSONL/CSV files in a local folder."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tasks.collect import sample

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
class RawFile:
    """The bytes of one source object, before any decoding."""

    name: str
    format: str
    data: bytes


class Source(Protocol):
    """Anything that returns the raw files of one day."""

    name: str

    def fetch(self, day: dt.date) -> list[RawFile]: ...


@dataclass
class SampleSource:
    """Built-in generator of realistic posts, deterministic per date."""

    size: int = 400
    seed: int = 0
    name: str = "sample"

    def fetch(self, day: dt.date) -> list[RawFile]:
        lines = sample.generate_raw_lines(day, count=self.size, seed=self.seed)
        return [RawFile(f"sample-{day.isoformat()}.jsonl", "jsonl", b"\n".join(lines) + b"\n")]


@dataclass
class FolderSource:
    """JSONL or CSV files in a folder, or one such file.

    When the folder has a ``date=YYYY-MM-DD`` subfolder for the day, only that subfolder is
    read; otherwise every supported file directly in the folder is.
    """

    path: Path
    name: str = "files"

    def fetch(self, day: dt.date) -> list[RawFile]:
        files = self._files_for(day)
        if not files:
            log.warning("no JSONL or CSV files for %s under %s", day, self.path)
        return [RawFile(p.name, SUPPORTED_SUFFIXES[p.suffix.lower()], p.read_bytes()) for p in files]

    def _files_for(self, day: dt.date) -> list[Path]:
        if not self.path.exists():
            raise FileNotFoundError(f"source {self.path} not found: check collect.source")
        if self.path.is_file():
            return [self.path] if self._supported(self.path) else []
        dated = self.path / f"date={day.isoformat()}"
        folder = dated if dated.is_dir() else self.path
        return sorted(p for p in folder.iterdir() if p.is_file() and self._supported(p))

    @staticmethod
    def _supported(path: Path) -> bool:
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            log.warning("skipping %s: not a .jsonl, .json, .ndjson or .csv file", path)
            return False
        return True


def open_source(spec: str, sample_size: int = 400) -> Source:
    """Return the source named by ``spec``: 'sample', or a folder or file path."""
    if spec == "sample":
        return SampleSource(size=sample_size)
    return FolderSource(Path(spec).expanduser().resolve())

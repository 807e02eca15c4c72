"""Date-partitioned datasets on a local folder or an S3 prefix.

Every stage reads and writes through a :class:`Store`. A partition of a dataset is one
object, ``<dataset>/date=YYYY-MM-DD/<file>``. Writing it again replaces it. Writes are
atomic: on local disk the bytes go to a temporary file in the same folder that is then
renamed over the target, and on S3 a single PUT makes an object visible whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

log = logging.getLogger(__name__)

_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it


class Store(Protocol):
    """Key-value object store; keys are ``/``-separated relative paths."""

    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def uri(self, key: str) -> str: ...


@dataclass
class LocalStore:
    """Store rooted at a local folder."""

    root: Path

    def _path(self, key: str) -> Path:
        return self.root / key

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            # mkstemp creates the file readable by its owner only; give it the usual mode.
            os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        """Return keys that start with ``prefix`` as a string, as S3 does."""
        base = self._path(prefix) if prefix.endswith("/") else self._path(prefix).parent
        if not base.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith("."))

    def uri(self, key: str) -> str:
        return str(self._path(key))


@dataclass
class S3Store:
    """Store under ``s3://bucket/prefix``, through boto3."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint_url or None)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey as error:
            raise FileNotFoundError(self.uri(key)) from error
        return response["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def exists(self, key: str) -> bool:
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1)
        return any(item["Key"] == self._key(key) for item in response.get("Contents", []))

    def list_keys(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(keys)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def open_store(uri: str, endpoint_url: str | None = None) -> Store:
    """Open the store at ``uri``: ``s3://bucket/prefix`` or a local folder."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"invalid store URI {uri!r}: expected s3://bucket[/prefix]")
        return S3Store(bucket=bucket, prefix=prefix.strip("/"), endpoint_url=endpoint_url)
    path = Path(uri.removeprefix("file://")).expanduser().resolve()
    return LocalStore(root=path)


def partition_key(dataset: str, day: dt.date, filename: str = "part-0.parquet") -> str:
    """Return the key of ``filename`` in the ``day`` partition of ``dataset``."""
    return f"{dataset}/date={day.isoformat()}/{filename}"


def list_partitions(store: Store, dataset: str) -> list[dt.date]:
    """Return the dates that have a partition of ``dataset``, oldest first."""
    days = set()
    for key in store.list_keys(f"{dataset}/"):
        match = _PARTITION.search(key)
        if match:
            days.add(dt.date.fromisoformat(match.group(1)))
    return sorted(days)


def write_frame(store: Store, dataset: str, day: dt.date, frame: pd.DataFrame) -> str:
    """Write ``frame`` as the ``day`` partition of ``dataset``, replacing it. Returns its URI."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    key = partition_key(dataset, day)
    store.write_bytes(key, buffer.getvalue())
    log.info("wrote %d rows to %s", len(frame), store.uri(key))
    return store.uri(key)


def read_frame(store: Store, dataset: str, day: dt.date) -> pd.DataFrame:
    """Read the ``day`` partition of ``dataset``.

    Raises FileNotFoundError naming the partition when it does not exist.
    """
    key = partition_key(dataset, day)
    try:
        data = store.read_bytes(key)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"partition {store.uri(key)} not found: run the stage that writes "
            f"'{dataset}' for {day.isoformat()} first"
        ) from error
    return pd.read_parquet(io.BytesIO(data))


def read_all_frames(store: Store, dataset: str, until: dt.date | None = None) -> pd.DataFrame:
    """Concatenate every partition of ``dataset`` up to ``until``, with a ``partition`` column."""
    frames = []
    for day in list_partitions(store, dataset):
        if until is None or day <= until:
            frames.append(read_frame(store, dataset, day).assign(partition=day.isoformat()))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_json(store: Store, key: str, payload: Any) -> str:
    """Write ``payload`` as indented JSON at ``key``. Returns its URI."""
    store.write_bytes(key, json.dumps(payload, indent=2, ensure_ascii=False, default=str).encode())
    return store.uri(key)


def read_json(store: Store, key: str) -> Any:
    return json.loads(store.read_bytes(key))

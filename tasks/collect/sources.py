"""Sources of raw posts: the built-in sample, a local folder or file, and an S3 prefix.

Folder and S3 sources read JSONL, CSV and Parquet files, each plain or gzipped. A source
that is not date-partitioned can record what it read in an :class:`IngestLedger`, so that
reruns read nothing twice and objects that arrive late are read by the next day's run. The
caller writes the ledger with ``commit`` once the fetched files are stored::

    files = source.fetch(day)
    ...  # split the files and write the raw partition
    source.commit(day)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tasks.collect import formats, sample
from tasks.storage import Store, read_json, write_json

log = logging.getLogger(__name__)

SUPPORTED_NAMES = ".jsonl, .ndjson, .json, .csv or .parquet, optionally with .gz"
LEDGER_VERSION = 1


@dataclass(frozen=True)
class RawFile:
    """The bytes of one source object, before any decompression or decoding."""

    name: str
    format: str
    data: bytes


class Source(Protocol):
    """Anything that returns the raw files of one day.

    ``commit(day)`` is called after the files of ``fetch(day)`` are stored. A source without
    an ingest ledger does nothing in it.
    """

    name: str

    def fetch(self, day: dt.date) -> list[RawFile]: ...

    def commit(self, day: dt.date) -> None: ...


@dataclass(frozen=True)
class SourceObject:
    """One file or S3 object as listed, before it is read.

    ``uri`` is the absolute path or ``s3://`` URI and identifies the object in the ledger.
    ``name`` is its path relative to the source root and becomes ``RawFile.name``.
    """

    uri: str
    name: str
    size: int
    modified: str
    etag: str | None = None


def _utc_iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


@dataclass
class SampleSource:
    """Built-in generator of realistic posts, deterministic per date."""

    size: int = 400
    seed: int = 0
    name: str = "sample"

    def fetch(self, day: dt.date) -> list[RawFile]:
        lines = sample.generate_raw_lines(day, count=self.size, seed=self.seed)
        return [RawFile(f"sample-{day.isoformat()}.jsonl", "jsonl", b"\n".join(lines) + b"\n")]

    def commit(self, day: dt.date) -> None:
        """Do nothing: the sample is generated from the date, so it needs no ledger."""


class IngestLedger:
    """Record of which source objects were ingested for which day, in the pipeline's store.

    The ledger is the JSON object at ``ingest/<source name>/ledger.json``. ``location`` is
    the folder, file or S3 prefix it belongs to. ``objects`` maps each object's URI to the day
    it was assigned to, with its size, modification time, ETag (S3 only) and the SHA-256 of
    the bytes read. ``days`` lists the committed days.

    Rules, applied by ``select``:

    - An object not in the ledger is assigned to the day being collected, unless that day was
      already committed. A rerun reads the same objects as the first run, so objects that
      arrive after a day's run wait for the next day.
    - An object assigned to the day is read again on a rerun.
    - An object assigned to another day is skipped, even if its size or ETag changed since,
      which is logged as a warning.

    ``select`` and ``record`` change only this object. ``commit`` writes the store.
    """

    def __init__(self, store: Store, source_name: str, location: str) -> None:
        self.store = store
        self.location = location
        self.key = f"ingest/{source_name}/ledger.json"
        self._pending: dict[str, dict[str, Any]] = {}
        self._pending_day: dt.date | None = None

    def load(self) -> dict[str, Any]:
        """Return the stored ledger, or an empty one when none was written yet.

        Raises ValueError when the stored ledger belongs to another location, because its
        committed days would otherwise hide the new location's objects.
        """
        if not self.store.exists(self.key):
            return {"version": LEDGER_VERSION, "location": self.location, "days": [],
                    "objects": {}}
        ledger = read_json(self.store, self.key)
        if ledger.get("location") != self.location:
            raise ValueError(
                f"ingest ledger {self.store.uri(self.key)} belongs to {ledger.get('location')}, "
                f"not {self.location}: give this source another name, or move the ledger "
                "away to ingest the new location from its first file"
            )
        return ledger

    def assigned(self, day: dt.date) -> list[str]:
        """Return the URIs of the objects assigned to ``day``, sorted."""
        objects = self.load()["objects"]
        return sorted(uri for uri, entry in objects.items() if entry["day"] == day.isoformat())

    def select(self, day: dt.date, listed: Iterable[SourceObject]) -> list[SourceObject]:
        """Return the objects of ``listed`` to read for ``day`` and start a new pending set."""
        ledger = self.load()
        rerun = day.isoformat() in ledger["days"]
        self._pending, self._pending_day = {}, day
        chosen, waiting = [], 0
        for item in listed:
            entry = ledger["objects"].get(item.uri)
            if entry is None:
                if rerun:
                    waiting += 1
                else:
                    chosen.append(item)
            elif entry["day"] == day.isoformat():
                _warn_if_changed(item, entry)
                chosen.append(item)
            else:
                _warn_if_changed(item, entry)
                log.debug("skipping %s: ingested for %s", item.uri, entry["day"])
        self._warn_missing(ledger, day, {item.uri for item in chosen})
        if waiting:
            log.info("%d new objects were not read because %s was already collected; "
                     "the next day's run reads them", waiting, day)
        return chosen

    def record(self, day: dt.date, item: SourceObject, data: bytes) -> None:
        """Add ``item``, read for ``day`` with bytes ``data``, to the pending assignments."""
        if self._pending_day != day:
            raise ValueError(f"record({day}) without select({day}) first")
        self._pending[item.uri] = {
            "day": day.isoformat(), "name": item.name, "size": item.size,
            "modified": item.modified, "etag": item.etag,
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def commit(self, day: dt.date) -> None:
        """Write the objects recorded for ``day`` and mark ``day`` as collected.

        The stored ledger is read again just before the write, so assignments that another
        run made since ``select`` are kept.
        """
        if self._pending_day != day:
            raise ValueError(f"commit({day}) without fetch({day}) first: nothing to commit")
        # NOTE: two runs that commit at the same moment can still overwrite each other's
        # assignments, because a store has no compare-and-swap. Run one day at a time.
        ledger = self.load()
        for uri, entry in self._pending.items():
            earlier = ledger["objects"].get(uri)
            if earlier is not None and earlier["day"] != entry["day"]:
                log.error("%s was ingested for both %s and %s by concurrent runs",
                          uri, earlier["day"], entry["day"])
            ledger["objects"][uri] = entry
        ledger["days"] = sorted(set(ledger["days"]) | {day.isoformat()})
        write_json(self.store, self.key, ledger)
        log.info("ingest ledger %s: %d objects for %s",
                 self.store.uri(self.key), len(self._pending), day)
        self._pending, self._pending_day = {}, None

    def _warn_missing(self, ledger: dict[str, Any], day: dt.date, found: set[str]) -> None:
        for uri, entry in ledger["objects"].items():
            if entry["day"] == day.isoformat() and uri not in found:
                log.warning("%s was ingested for %s but is no longer in the source", uri, day)


def _warn_if_changed(item: SourceObject, entry: dict[str, Any]) -> None:
    etag_changed = item.etag is not None and item.etag != entry.get("etag")
    if item.size != entry["size"] or etag_changed:
        log.warning("%s changed after it was ingested for %s (size %d, was %d)",
                    item.uri, entry["day"], item.size, entry["size"])


@dataclass
class _LedgeredSource:
    """Shared fetch and commit for sources that list objects and may keep a ledger.

    Subclasses list the objects of a day with ``_listing`` and read one with ``_read``.
    The ledger is used only when ``_listing`` reports that the source is not date-partitioned.
    """

    ledger: IngestLedger | None = field(default=None, kw_only=True)
    _committable: bool = field(default=False, init=False, repr=False)

    def fetch(self, day: dt.date) -> list[RawFile]:
        listed, partitioned = self._listing(day)
        ledger = None if partitioned else self.ledger
        if ledger is not None:
            listed = ledger.select(day, listed)
        files = []
        for item in listed:
            raw_file = self._raw_file(item)
            if raw_file is None:
                continue
            if ledger is not None:
                ledger.record(day, item, raw_file.data)
            files.append(raw_file)
        if not files:
            log.warning("no JSONL or CSV files and no Parquet files for %s in %s",
                        day, self.location)
        self._committable = ledger is not None
        return files

    def commit(self, day: dt.date) -> None:
        """Write the ingest ledger after a successful ``fetch(day)``, if this source has one."""
        if self.ledger is not None and self._committable:
            self.ledger.commit(day)
            self._committable = False

    def _raw_file(self, item: SourceObject) -> RawFile | None:
        format_name = formats.format_for_name(item.name)
        if format_name is None:
            return None
        data = self._read(item)
        reason = formats.unreadable_reason(format_name, data)
        if reason is not None:
            log.warning("skipping %s: %s", item.uri, reason)
            return None
        return RawFile(item.name, format_name, data)

    def _listing(self, day: dt.date) -> tuple[list[SourceObject], bool]:
        raise NotImplementedError

    def _read(self, item: SourceObject) -> bytes:
        raise NotImplementedError

    @property
    def location(self) -> str:
        """The folder, file or ``s3://`` prefix this source reads."""
        raise NotImplementedError


def _supported(name: str, uri: str) -> bool:
    if formats.format_for_name(name) is None:
        log.warning("skipping %s: not a %s file", uri, SUPPORTED_NAMES)
        return False
    return True


@dataclass
class FolderSource(_LedgeredSource):
    """Files in a local folder, or one file.

    When the folder has a ``date=YYYY-MM-DD`` subfolder for the day, only that subfolder is
    read. Otherwise every supported file directly in the folder is, and the ledger, when
    given, decides which files belong to the day.
    """

    path: Path
    name: str = "files"

    def _listing(self, day: dt.date) -> tuple[list[SourceObject], bool]:
        if not self.path.exists():
            raise FileNotFoundError(f"source {self.path} not found: check --source or the "
                                    "collect.source setting")
        if self.path.is_file():
            paths, partitioned = [self.path], False
        else:
            dated = self.path / f"date={day.isoformat()}"
            partitioned = dated.is_dir()
            folder = dated if partitioned else self.path
            paths = sorted(p for p in folder.iterdir() if p.is_file())
        listed = [_file_object(p) for p in paths if _supported(p.name, str(p))]
        return listed, partitioned

    def _read(self, item: SourceObject) -> bytes:
        return Path(item.uri).read_bytes()

    @property
    def location(self) -> str:
        return str(self.path)


def _file_object(path: Path) -> SourceObject:
    status = path.stat()
    modified = dt.datetime.fromtimestamp(status.st_mtime, tz=dt.UTC)
    return SourceObject(str(path), path.name, status.st_size, _utc_iso(modified))


@dataclass
class S3PrefixSource(_LedgeredSource):
    """Objects under ``s3://bucket/prefix/``, at any depth.

    When objects exist under ``prefix/date=YYYY-MM-DD/`` for the day, only those are read.
    Otherwise every supported object under the prefix is, except objects in any
    ``date=YYYY-MM-DD`` folder, and the ledger, when given, decides which belong to the day.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    name: str = "s3"
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint_url or None)
        return self._client

    def _listing(self, day: dt.date) -> tuple[list[SourceObject], bool]:
        dated = self._list(f"{self._folder()}date={day.isoformat()}/")
        if dated:
            return dated, True
        undated = [item for item in self._list(self._folder())
                   if not _in_date_folder(item.name)]
        return undated, False

    def _list(self, prefix: str) -> list[SourceObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        listed = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                item = self._object(entry)
                if not entry["Key"].endswith("/") and _supported(item.name, item.uri):
                    listed.append(item)
        return sorted(listed, key=lambda item: item.name)

    def _object(self, entry: dict[str, Any]) -> SourceObject:
        key = entry["Key"]
        return SourceObject(
            uri=f"s3://{self.bucket}/{key}", name=key[len(self._folder()):],
            size=int(entry["Size"]), modified=_utc_iso(entry["LastModified"]),
            etag=str(entry.get("ETag", "")).strip('"') or None,
        )

    def _read(self, item: SourceObject) -> bytes:
        key = item.uri[len(f"s3://{self.bucket}/"):]
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _folder(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self._folder()}"


def _in_date_folder(name: str) -> bool:
    return any(part.startswith("date=") and _is_iso_date(part[5:]) for part in name.split("/")[:-1])


def _is_iso_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def open_source(spec: str, sample_size: int = 400, *, store: Store | None = None,
                endpoint_url: str | None = None, name: str | None = None) -> Source:
    """Return the source named by ``spec``: 'sample', ``s3://bucket/prefix``, or a local path.

    With ``store``, the pipeline's store, folder and S3 sources keep an :class:`IngestLedger`
    in it; without, they read every file on every run. ``endpoint_url`` is the S3 endpoint
    for an ``s3://`` spec, None for AWS. ``name`` replaces the default source name ('files'
    or 's3'), which names the ledger.
    """
    if spec == "sample":
        return SampleSource(size=sample_size)
    if spec.startswith("s3://"):
        bucket, _, prefix = spec[len("s3://"):].partition("/")
        if not bucket:
            raise ValueError(f"invalid source {spec!r}: expected s3://bucket[/prefix]")
        source: FolderSource | S3PrefixSource = S3PrefixSource(
            bucket=bucket, prefix=prefix.strip("/"), endpoint_url=endpoint_url)
    else:
        source = FolderSource(Path(spec).expanduser().resolve())
    if name is not None:
        source.name = name
    if store is not None:
        source.ledger = IngestLedger(store, source.name, source.location)
    return source

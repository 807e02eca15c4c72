"""Common part of the API sources: watermarks, record encoding and malformed items.

A source's watermark is a JSON object at ``watermarks/<source name>.json`` in the store::

    {"source": "...", "day": "2024-03-01", "start_cursor": {...}, "next_cursor": {...},
     "records": 120, "updated_at": "2024-03-02T03:00:00Z"}

``next_cursor`` is where the next day's run starts (a since id, a timestamp or a fullname,
depending on the platform), and ``start_cursor`` is where the run of ``day`` started. A
rerun of the same day starts from ``start_cursor`` again, so an Airflow retry refetches
the same window, not an empty one. The file is written only after every page was fetched
and decoded, so a failed run leaves it unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tasks.collect.apis.http import ApiClient, HttpOptions, MalformedPageError, Page
from tasks.collect.sources import RawFile
from tasks.storage import Store, read_json, write_json

log = logging.getLogger(__name__)

Cursor = dict[str, Any]
Record = dict[str, Any]
SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Python joins valid surrogate pairs when it decodes JSON, so any surrogate left is alone.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedItemError(ValueError):
    """One item of a page lacks the shape the platform documents."""


@dataclass(kw_only=True)
class ApiSource:
    """Source that fetches the posts published since its watermark from a platform API.

    Subclasses set the class variables and implement ``default_name`` and ``collect``.
    """

    store: Store = field(repr=False)
    name: str = ""
    token: str | None = field(default=None, repr=False)
    max_pages: int = 10
    page_size: int = 0  # 0 selects max_page_size
    http: HttpOptions = field(default_factory=HttpOptions, repr=False)
    client: ApiClient = field(init=False, repr=False)

    platform: ClassVar[str] = ""
    token_variable: ClassVar[str] = ""
    token_required: ClassVar[bool] = False
    max_page_size: ClassVar[int] = 100

    def __post_init__(self) -> None:
        self.token = self.token or os.environ.get(self.token_variable) or None
        if self.token_required and not self.token:
            raise ValueError(f"the {self.platform} source requires a bearer token: pass token= "
                             f"or set {self.token_variable}")
        self.name = self.name or self.default_name()
        if not SOURCE_NAME.fullmatch(self.name):
            raise ValueError(f"invalid source name {self.name!r}: use letters, digits, '.', "
                             "'_' and '-', because it becomes part of a store key")
        if self.max_pages < 1:
            raise ValueError(f"max_pages must be at least 1, got {self.max_pages}")
        self.page_size = self.page_size or self.max_page_size
        if not 1 <= self.page_size <= self.max_page_size:
            raise ValueError(f"page_size for {self.platform} must be between 1 and "
                             f"{self.max_page_size}, got {self.page_size}")
        self.client = ApiClient(self.name, self.token, self.http)

    def default_name(self) -> str:
        """Return the source name used when none is given, unique per feed."""
        raise NotImplementedError

    def collect(self, cursor: Cursor | None) -> tuple[list[Record], Cursor | None]:
        """Fetch the pages after ``cursor`` and return the records and the next cursor.

        The next cursor is None when no post advanced the watermark.
        """
        raise NotImplementedError

    def fetch(self, day: dt.date) -> list[RawFile]:
        """Fetch the posts after the watermark as one JSONL file, then move the watermark."""
        state = read_watermark(self.store, self.name)
        start = select_start_cursor(state, day, self.name)
        log.info("source %s: fetching posts for %s after %s", self.name, day,
                 json.dumps(start) if start else "nothing (no watermark)")
        records, newest = self.collect(start)
        next_cursor = newest or start
        write_watermark(self.store, self.name, day, start, next_cursor, len(records))
        log.info("source %s: fetched %d records; the next run starts after %s", self.name,
                 len(records), json.dumps(next_cursor))
        return [RawFile(f"{self.name}-{day.isoformat()}.jsonl", "jsonl", encode_jsonl(records))]

    def convert_items(self, items: list[Any], convert: Callable[[Any], Record]) -> list[Record]:
        """Convert page items to records, keeping malformed items for quarantine."""
        return [self._convert_item(item, convert) for item in items]

    def _convert_item(self, item: Any, convert: Callable[[Any], Record]) -> Record:
        try:
            return convert(item)
        except MalformedItemError as error:
            log.warning("source %s: malformed item kept for quarantine: %s", self.name, error)
            # text is null so the raw_posts suite quarantines the record, and the original
            # item is kept whole for inspection.
            return {"id": None, "text": None, "platform": self.platform, "url": None,
                    "malformed": str(error), "item": item}

    def log_page(self, number: int, count: int, page: Page) -> None:
        log.info("source %s: page %d has %d items (%s)", self.name, number, count, page.url)

    def log_page_cap(self, cursor: Cursor | None) -> None:
        """Log that paging stopped at max_pages while the API had more pages."""
        if cursor is None:
            log.info("source %s: stopped after max_pages=%d; older posts are not fetched",
                     self.name, self.max_pages)
            return
        log.warning("source %s: stopped after max_pages=%d before reaching the watermark, so "
                    "posts between the watermark and the oldest fetched post are skipped; "
                    "raise max_pages to fetch them", self.name, self.max_pages)

    def malformed_page(self, page: Page, problem: str) -> MalformedPageError:
        return MalformedPageError(f"source {self.name}: unexpected response from {page.url}: "
                                  f"{problem}")


def read_field(item: Any, path: str, kinds: type | tuple[type, ...], required: bool = False) -> Any:
    """Return the value at the dotted ``path`` of ``item``, or None when it is absent.

    Raises MalformedItemError when a level is not an object, when the value has another
    type than ``kinds``, or when a ``required`` value is absent.
    """
    value = item
    for part in path.split("."):
        if not isinstance(value, dict):
            raise MalformedItemError(f"expected an object containing '{path}', got {value!r:.120}")
        value = value.get(part)
        if value is None:
            if required:
                raise MalformedItemError(f"'{path}' is missing in {item!r:.200}")
            return None
    accepted = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
        names = " or ".join(kind.__name__ for kind in accepted)
        raise MalformedItemError(f"'{path}' should be {names}, got {value!r:.120}")
    return value


def build_source_name(*parts: str) -> str:
    """Join ``parts`` into a source name usable in a store key.

    When characters had to be replaced, or the name was cut at 80 characters, a hash of
    the original text is appended so two different feeds never share a watermark.
    """
    text = "-".join(parts)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80]
    if name != text:
        name = f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return name


def encode_jsonl(records: list[Record]) -> bytes:
    """Encode ``records`` as UTF-8 JSON lines.

    A lone surrogate, which JSON allows as an escape such as ``\\ud800`` but UTF-8 cannot
    encode, becomes U+FFFD, so the file stays valid UTF-8.
    """
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    text = "".join(line + "\n" for line in lines)
    return LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


def watermark_key(name: str) -> str:
    return f"watermarks/{name}.json"


def read_watermark(store: Store, name: str) -> dict[str, Any] | None:
    """Return the stored watermark state of source ``name``, or None before its first run."""
    key = watermark_key(name)
    if not store.exists(key):
        return None
    try:
        state = read_json(store, key)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        problem = f"is not valid JSON ({error})"
    else:
        problem = None if isinstance(state, dict) else "should be a JSON object"
    if problem:
        raise ValueError(f"watermark {store.uri(key)} {problem}: fix it, or delete it to "
                         "start again from the newest posts")
    return state


def select_start_cursor(state: dict[str, Any] | None, day: dt.date, name: str) -> Cursor | None:
    """Return the cursor a run for ``day`` starts after.

    A rerun of the watermark's own day starts where that day's first run started.
    """
    if state is None:
        return None
    stored_day = str(state.get("day") or "")
    if stored_day == day.isoformat():
        log.info("source %s: %s was fetched before, fetching its window again", name, day)
        return state.get("start_cursor")
    if stored_day > day.isoformat():
        log.warning("source %s: the watermark is from %s, later than %s; an API source "
                    "fetches the posts newer than the watermark, not the posts of %s",
                    name, stored_day, day, day)
    return state.get("next_cursor")


def write_watermark(store: Store, name: str, day: dt.date, start: Cursor | None,
                    next_cursor: Cursor | None, count: int) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_json(store, watermark_key(name), {
        "source": name, "day": day.isoformat(), "start_cursor": start,
        "next_cursor": next_cursor, "records": count, "updated_at": now,
    })

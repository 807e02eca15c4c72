"""Bluesky source: ``app.bsky.feed.searchPosts`` on an AppView such as public.api.bsky.app.

Requests ``GET {base}/xrpc/app.bsky.feed.searchPosts?q=...&sort=latest&limit=...`` and
follows the ``cursor`` of each response. The watermark is the newest sort time seen, sent
as ``since`` on the next run. The searchPosts lexicon defines ``since`` as inclusive and
compared with ``sortAt``, and the bsky AppView schema defines ``sortAt`` as the earlier
of ``createdAt`` and ``indexedAt``. The watermark therefore uses that value, so a
``createdAt`` that a client clock put in the future cannot push it ahead. It also stores
the URIs of the posts at exactly that time, and the next run skips them, so the
inclusive bound yields no duplicates.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tasks.collect.apis.base import (
    ApiSource,
    Cursor,
    MalformedItemError,
    Record,
    build_source_name,
    read_field,
)
from tasks.collect.apis.http import Page

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class BlueskySource(ApiSource):
    """Posts matching one search query, newest first."""

    base_url: str
    query: str

    platform = "bluesky"
    token_variable = "PULSE_BLUESKY_TOKEN"
    max_page_size = 100

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        super().__post_init__()

    def default_name(self) -> str:
        return build_source_name("bluesky", urlsplit(self.base_url).netloc, "search", self.query)

    def collect(self, cursor: Cursor | None) -> tuple[list[Record], Cursor | None]:
        seen = set(cursor.get("uris", [])) if cursor else set()
        url = f"{self.base_url}/xrpc/app.bsky.feed.searchPosts"
        params: dict[str, Any] = {"q": self.query, "sort": "latest", "limit": self.page_size}
        if cursor and cursor.get("since"):
            params["since"] = cursor["since"]
        posts: list[Any] = []
        for number in range(1, self.max_pages + 1):
            page = self.client.get_json(url, params)
            items, next_page = self._read_page(page)
            fresh = [post for post in items if post_uri(post) not in seen]
            if len(fresh) < len(items):
                log.info("source %s: skipped %d posts collected by the previous run", self.name,
                         len(items) - len(fresh))
            self.log_page(number, len(fresh), page)
            posts.extend(fresh)
            if not items or not next_page:
                break
            params = {**params, "cursor": next_page}
        else:
            self.log_page_cap(cursor)
        return self.convert_items(posts, convert_post), next_cursor(posts, cursor)

    def _read_page(self, page: Page) -> tuple[list[Any], str | None]:
        payload = page.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("posts"), list):
            raise self.malformed_page(page, "expected a JSON object with a 'posts' array")
        next_page = payload.get("cursor")
        if next_page is not None and not isinstance(next_page, str):
            raise self.malformed_page(page, f"'cursor' should be a string, got {next_page!r:.80}")
        return payload["posts"], next_page


def convert_post(post: Any) -> Record:
    """Convert an ``app.bsky.feed.defs#postView`` into a post record."""
    uri = read_field(post, "uri", str, required=True)
    handle = read_field(post, "author.handle", str)
    langs = read_field(post, "record.langs", list) or []
    return {
        "id": f"bluesky:{uri}",
        "text": read_field(post, "record.text", str),
        "created_at": read_field(post, "record.createdAt", str),
        "author": handle,
        "lang": next((lang for lang in langs if isinstance(lang, str)), None),
        "platform": "bluesky",
        "url": build_post_url(uri, handle),
    }


def build_post_url(uri: str, handle: str | None) -> str | None:
    """Return the bsky.app address of ``at://<did>/app.bsky.feed.post/<rkey>``, if it is one."""
    repo, _, rest = uri.removeprefix("at://").partition("/")
    collection, _, rkey = rest.partition("/")
    if not uri.startswith("at://") or collection != "app.bsky.feed.post" or not rkey:
        return None
    return f"https://bsky.app/profile/{handle or repo}/post/{rkey}"


def post_uri(post: Any) -> str | None:
    try:
        return read_field(post, "uri", str)
    except MalformedItemError:
        return None


def sort_time(post: Any) -> tuple[dt.datetime, str] | None:
    """Return the post's sort time (earlier of createdAt and indexedAt) and its text form."""
    stamps = []
    for path in ("record.createdAt", "indexedAt"):
        try:
            text = read_field(post, path, str)
        except MalformedItemError:
            continue
        moment = parse_time(text) if text else None
        if moment is not None:
            stamps.append((moment, text))
    return min(stamps) if stamps else None


def parse_time(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def next_cursor(posts: list[Any], cursor: Cursor | None) -> Cursor | None:
    """Return the newest sort time among ``posts`` and the URIs at that time, or None."""
    timed = [(stamp, post_uri(post)) for post in posts if (stamp := sort_time(post))]
    if not timed:
        return None
    (newest, newest_text), _ = max(timed, key=lambda pair: pair[0][0])
    uris = {uri for (moment, _), uri in timed if moment == newest and uri}
    previous = parse_time(str(cursor.get("since"))) if cursor and cursor.get("since") else None
    if cursor and previous and newest < previous:  # a server that ignored since
        return cursor
    if cursor and previous == newest:
        uris |= set(cursor.get("uris", []))
    return {"since": newest_text, "uris": sorted(uris)}

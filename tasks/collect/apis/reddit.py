"""Reddit source: the ``new`` listing of one subreddit.

Requests ``GET {base}/r/{subreddit}/new.json?limit=...&raw_json=1``; ``raw_json=1``
requests text without Reddit's legacy HTML escaping (``&amp;``). The watermark is the fullname
(``t3_<id>``) of the newest post seen. The first run pages to older posts with ``after``.
Later runs page to newer posts with ``before``, starting at the watermark, and each page
anchors at the newest post of the previous one. Reddit accepts only one of ``after`` and
``before`` per request. Walking up from the watermark leaves no gap when ``max_pages``
stops a run early, because the next run continues from the newest post fetched.

Anonymous requests work on https://www.reddit.com. An OAuth token only works on
https://oauth.reddit.com, so pass that base URL together with a token.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

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

WEB_URL = "https://www.reddit.com"
# A fullname is the kind (t3 for posts) and the base-36 id, such as t3_1abc2d.
FULLNAME = re.compile(r"t\d+_([0-9a-z]+)")


@dataclass(kw_only=True)
class RedditSource(ApiSource):
    """Posts of one subreddit, from the ``new`` listing."""

    base_url: str
    subreddit: str

    platform = "reddit"
    token_variable = "PULSE_REDDIT_TOKEN"
    max_page_size = 100

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.subreddit = self.subreddit.removeprefix("r/").strip("/")
        super().__post_init__()

    def default_name(self) -> str:
        return build_source_name("reddit", urlsplit(self.base_url).netloc, "r", self.subreddit)

    def collect(self, cursor: Cursor | None) -> tuple[list[Record], Cursor | None]:
        before = str(cursor["before"]) if cursor and cursor.get("before") else None
        url = f"{self.base_url}/r/{quote(self.subreddit, safe='')}/new.json"
        params: dict[str, Any] = {"limit": self.page_size, "raw_json": 1}
        if before:
            children = self._walk_newer(url, params, before)
        else:
            children = self._walk_older(url, params)
        newest = newest_fullname(children)
        records = self.convert_items(children, convert_link)
        return records, ({"before": newest} if newest and newest != before else None)

    def _walk_older(self, url: str, params: dict[str, Any]) -> list[Any]:
        children: list[Any] = []
        for number in range(1, self.max_pages + 1):
            page = self.client.get_json(url, params)
            items, after = self._read_listing(page)
            self.log_page(number, len(items), page)
            children.extend(items)
            if not items or not after:
                break
            params = {**params, "after": after}
        else:
            self.log_page_cap(None)
        return children

    def _walk_newer(self, url: str, params: dict[str, Any], before: str) -> list[Any]:
        children: list[Any] = []
        for number in range(1, self.max_pages + 1):
            page = self.client.get_json(url, {**params, "before": before})
            items, _ = self._read_listing(page)
            self.log_page(number, len(items), page)
            children.extend(items)
            newest = newest_fullname(items)
            if not items or newest is None:
                break
            before = newest
        else:
            log.info("source %s: stopped after max_pages=%d; the next run continues from %s",
                     self.name, self.max_pages, before)
        return children

    def _read_listing(self, page: Page) -> tuple[list[Any], str | None]:
        payload = page.payload
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("children"), list):
            raise self.malformed_page(page, "expected a Listing: a JSON object with "
                                            "'data.children' as an array")
        after = data.get("after")
        if after is not None and not isinstance(after, str):
            raise self.malformed_page(page, f"'data.after' should be a string, got {after!r:.80}")
        return data["children"], after


def convert_link(child: Any) -> Record:
    """Convert a ``t3`` (link) thing of a listing into a post record."""
    kind = read_field(child, "kind", str, required=True)
    if kind != "t3":
        raise MalformedItemError(f"expected kind 't3' (a post), got {kind!r}")
    post_id = read_field(child, "data.id", str, required=True)
    title = read_field(child, "data.title", str)
    selftext = read_field(child, "data.selftext", str)
    permalink = read_field(child, "data.permalink", str)
    return {
        "id": f"reddit:{post_id}",
        "text": "\n".join(part for part in (title, selftext) if part) or None,
        "created_at": format_epoch(read_field(child, "data.created_utc", (int, float))),
        "author": read_field(child, "data.author", str),
        "lang": None,  # Reddit does not report a language
        "platform": "reddit",
        "url": f"{WEB_URL}{permalink}" if permalink else read_field(child, "data.url", str),
    }


def format_epoch(seconds: float | None) -> str | None:
    """Format Unix epoch seconds as ISO 8601 UTC."""
    if seconds is None:
        return None
    try:
        moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise MalformedItemError(f"created_utc {seconds!r} is not a valid time: {error}") from error
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def newest_fullname(children: list[Any]) -> str | None:
    """Return the fullname with the highest base-36 id among ``children``, if any."""
    names = []
    for child in children:
        try:
            name = read_field(child, "data.name", str)
        except MalformedItemError:
            continue
        match = FULLNAME.fullmatch(name or "")
        if match:
            names.append((int(match.group(1), 36), name))
    return max(names)[1] if names else None

"""Mastodon source: a hashtag timeline or a status search on one server.

Hashtag timeline: ``GET {base}/api/v1/timelines/tag/{hashtag}`` with ``since_id`` set to
the watermark. Search: ``GET {base}/api/v2/search?q=...&type=statuses`` with ``min_id``,
because the search method documents ``min_id`` and not ``since_id``. Both return statuses
newest first. Paging goes to older statuses with ``max_id``, taken from the ``rel="next"``
URL of the ``Link`` header or, when the response has no Link header (search), from the
oldest status of a full page. The watermark is the newest status id seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from tasks.collect.apis.base import (
    ApiSource,
    Cursor,
    MalformedItemError,
    Record,
    build_source_name,
    read_field,
)
from tasks.collect.apis.http import Page

# Tags after which Mastodon's HTML shows a line or paragraph break.
BREAK_TAGS = {"br", "p", "div", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}


@dataclass(kw_only=True)
class MastodonSource(ApiSource):
    """Statuses of one hashtag (``hashtag``) or one search (``query``) on a server."""

    base_url: str
    hashtag: str | None = None
    query: str | None = None

    platform = "mastodon"
    token_variable = "PULSE_MASTODON_TOKEN"
    max_page_size = 40

    def __post_init__(self) -> None:
        if (self.hashtag is None) == (self.query is None):
            raise ValueError("MastodonSource needs exactly one of hashtag= or query=")
        self.base_url = self.base_url.rstrip("/")
        if self.hashtag is not None:
            self.hashtag = self.hashtag.lstrip("#")
        super().__post_init__()

    def default_name(self) -> str:
        host = urlsplit(self.base_url).netloc
        if self.hashtag is not None:
            return build_source_name("mastodon", host, "tag", self.hashtag)
        return build_source_name("mastodon", host, "search", str(self.query))

    def collect(self, cursor: Cursor | None) -> tuple[list[Record], Cursor | None]:
        since_id = str(cursor["since_id"]) if cursor and cursor.get("since_id") else None
        url, params = self._endpoint(since_id)
        records: list[Record] = []
        newest = since_id
        for number in range(1, self.max_pages + 1):
            page = self.client.get_json(url, params)
            statuses = self._read_statuses(page)
            fresh = [status for status in statuses if is_after(status_id(status), since_id)]
            self.log_page(number, len(fresh), page)
            records.extend(self.convert_items(fresh, convert_status))
            newest = max_status_id([newest, *(status_id(status) for status in fresh)])
            max_id = self._next_max_id(page, statuses)
            if max_id is None or len(fresh) < len(statuses):  # last page, or reached since_id
                break
            params = {**params, "max_id": max_id}
        else:
            self.log_page_cap(cursor)
        return records, ({"since_id": newest} if newest and newest != since_id else None)

    def _endpoint(self, since_id: str | None) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"limit": self.page_size}
        if self.hashtag is not None:
            url = f"{self.base_url}/api/v1/timelines/tag/{quote(self.hashtag, safe='')}"
            if since_id:
                params["since_id"] = since_id
            return url, params
        params.update(q=self.query, type="statuses")
        if since_id:
            params["min_id"] = since_id
        return f"{self.base_url}/api/v2/search", params

    def _read_statuses(self, page: Page) -> list[Any]:
        payload = page.payload
        if self.hashtag is not None:
            if not isinstance(payload, list):
                raise self.malformed_page(page, f"expected a JSON array of statuses, got "
                                                f"{type(payload).__name__}")
            return payload
        if not isinstance(payload, dict) or not isinstance(payload.get("statuses"), list):
            raise self.malformed_page(page, "expected a JSON object with a 'statuses' array")
        return payload["statuses"]

    def _next_max_id(self, page: Page, statuses: list[Any]) -> str | None:
        """Return the max_id of the next older page, or None on the last page."""
        if page.links:
            next_url = page.links.get("next", {}).get("url")
            return parse_qs(urlsplit(next_url).query).get("max_id", [None])[0] if next_url else None
        ids = [status_id(status) for status in statuses]
        known = [value for value in ids if value is not None]
        if len(statuses) < self.page_size or not known:
            return None
        return min(known, key=id_order)


def convert_status(status: Any) -> Record:
    """Convert a Mastodon Status entity into a post record."""
    identifier = read_field(status, "id", (str, int), required=True)
    content = read_field(status, "content", str)
    return {
        "id": f"mastodon:{identifier}",
        "text": None if content is None else html_to_text(content),
        "created_at": read_field(status, "created_at", str),
        "author": read_field(status, "account.acct", str),
        "lang": read_field(status, "language", str),
        "platform": "mastodon",
        "url": read_field(status, "url", str) or read_field(status, "uri", str),
    }


def status_id(status: Any) -> str | None:
    """Return the id of ``status`` as text, or None when it has no usable id."""
    try:
        value = read_field(status, "id", (str, int), required=True)
    except MalformedItemError:
        return None
    return str(value)


def id_order(value: str) -> tuple[int, str]:
    """Sort key of status ids: numeric strings of any length, or same-length flake ids."""
    return len(value), value


def is_after(value: str | None, since_id: str | None) -> bool:
    """Tell whether a status id is newer than ``since_id``; unknown ids count as newer."""
    return value is None or since_id is None or id_order(value) > id_order(since_id)


def max_status_id(values: list[str | None]) -> str | None:
    known = [value for value in values if value is not None]
    return max(known, key=id_order) if known else None


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BREAK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in BREAK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(content: str) -> str:
    """Convert status HTML to plain text: entities decoded, breaks and runs of space as one."""
    parser = _TextExtractor()
    parser.feed(content)
    parser.close()
    return " ".join("".join(parser.parts).split())

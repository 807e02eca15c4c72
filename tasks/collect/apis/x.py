"""X source: API v2 recent search (posts of the last 7 days).

Requests ``GET {base}/2/tweets/search/recent?query=...&max_results=...&since_id=...``
with ``Authorization: Bearer <token>`` and follows ``meta.next_token``. It also requests
``expansions=author_id&user.fields=username``, so the author is the username from
``includes.users`` and not only the numeric author id. The watermark is ``meta.newest_id``
of the first page, which is the newest post matching the query after ``since_id``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tasks.collect.apis.base import ApiSource, Cursor, Record, build_source_name, read_field
from tasks.collect.apis.http import Page

log = logging.getLogger(__name__)

TWEET_FIELDS = "created_at,lang,author_id"
MIN_PAGE_SIZE = 10  # the API rejects max_results below 10


@dataclass(kw_only=True)
class XSource(ApiSource):
    """Posts matching one recent-search query."""

    base_url: str
    query: str

    platform = "x"
    token_variable = "PULSE_X_BEARER_TOKEN"
    token_required = True
    max_page_size = 100

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        super().__post_init__()
        if self.page_size < MIN_PAGE_SIZE:
            raise ValueError(f"page_size for x must be between {MIN_PAGE_SIZE} and "
                             f"{self.max_page_size}, got {self.page_size}")

    def default_name(self) -> str:
        return build_source_name("x", urlsplit(self.base_url).netloc, "search", self.query)

    def collect(self, cursor: Cursor | None) -> tuple[list[Record], Cursor | None]:
        # NOTE: recent search covers the last 7 days, and an older since_id is expected to
        # fail with HTTP 400 (not checked against the live API). A source idle for a week
        # may then need its watermark file deleted.
        since_id = str(cursor["since_id"]) if cursor and cursor.get("since_id") else None
        url = f"{self.base_url}/2/tweets/search/recent"
        params: dict[str, Any] = {
            "query": self.query, "max_results": self.page_size, "tweet.fields": TWEET_FIELDS,
            "expansions": "author_id", "user.fields": "username",
        }
        if since_id:
            params["since_id"] = since_id
        records: list[Record] = []
        newest = None
        for number in range(1, self.max_pages + 1):
            page = self.client.get_json(url, params)
            tweets, users, meta = self._read_page(page)
            newest = meta.get("newest_id") if number == 1 else newest
            self.log_page(number, len(tweets), page)
            convert = functools.partial(convert_tweet, users=users)
            records.extend(self.convert_items(tweets, convert))
            next_token = meta.get("next_token")
            if not tweets or not next_token:
                break
            params = {**params, "next_token": next_token}
        else:
            self.log_page_cap(cursor)
        return records, ({"since_id": newest} if newest and newest != since_id else None)

    def _read_page(self, page: Page) -> tuple[list[Any], dict[str, str], dict[str, Any]]:
        """Return the page's posts, usernames by user id, and meta object."""
        payload = page.payload
        if not isinstance(payload, dict):
            raise self.malformed_page(page, f"expected a JSON object, got {type(payload).__name__}")
        tweets = payload.get("data")
        meta = payload.get("meta")
        if tweets is None:  # a page without matches has no 'data'
            tweets = []
        if not isinstance(tweets, list):
            raise self.malformed_page(page, "'data' should be an array of posts")
        if not isinstance(meta, dict):
            raise self.malformed_page(page, "the 'meta' object is missing")
        for key in ("newest_id", "next_token"):
            if meta.get(key) is not None and not isinstance(meta[key], str):
                raise self.malformed_page(page, f"'meta.{key}' should be a string")
        self._log_partial_errors(payload.get("errors"))
        return tweets, read_usernames(payload.get("includes")), meta

    def _log_partial_errors(self, errors: Any) -> None:
        if isinstance(errors, list) and errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            log.warning("source %s: response reports %d partial errors, first: %s", self.name,
                        len(errors), self.client.mask(str(first.get("detail", first))[:200]))


def read_usernames(includes: Any) -> dict[str, str]:
    """Return the usernames in ``includes.users`` by user id, skipping malformed entries."""
    users = includes.get("users") if isinstance(includes, dict) else None
    if not isinstance(users, list):
        return {}
    return {user["id"]: user["username"] for user in users
            if isinstance(user, dict) and isinstance(user.get("id"), str)
            and isinstance(user.get("username"), str)}


def convert_tweet(tweet: Any, users: dict[str, str]) -> Record:
    """Convert a post object of API v2 into a post record."""
    tweet_id = read_field(tweet, "id", str, required=True)
    author_id = read_field(tweet, "author_id", str)
    username = users.get(author_id) if author_id else None
    return {
        "id": f"x:{tweet_id}",
        "text": read_field(tweet, "text", str),
        "created_at": read_field(tweet, "created_at", str),
        "author": username or author_id,
        "lang": read_field(tweet, "lang", str),
        "platform": "x",
        "url": f"https://x.com/{username or 'i/web'}/status/{tweet_id}",
        "author_id": author_id,
    }

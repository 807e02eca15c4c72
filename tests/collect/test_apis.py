"""Tests for the platform API sources against loopback servers that mimic each API.

Each fake serves the response shape its platform documents, pages through its posts like
the real API, and can inject faults (429, 5xx, dropped connections, slow or malformed
responses) at a given request number. Sleeping is injected through a fake clock, so only
the read-timeout tests wait for real, for a fraction of a second.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pytest

from tasks.collect.apis import (
    ApiError,
    ApiSource,
    BlueskySource,
    HttpOptions,
    MalformedPageError,
    MastodonSource,
    RedditSource,
    XSource,
    is_api_spec,
    open_api_source,
)
from tasks.collect.apis.base import encode_jsonl, read_watermark, watermark_key
from tasks.collect.apis.bluesky import build_post_url
from tasks.collect.apis.http import mask_url_secrets, parse_reset, parse_retry_after
from tasks.collect.apis.mastodon import html_to_text
from tasks.collect.records import parse_posts, split_records
from tasks.collect.sources import RawFile
from tasks.storage import Store, open_store

DAY = dt.date(2024, 3, 1)
NEXT_DAY = dt.date(2024, 3, 2)
TOKEN = "tok-7f3a9c-secret"  # distinctive, so a leak into logs is easy to spot
START = 1_709_280_000  # 2024-03-01T08:00:00Z, the time of post number 0
CLOCK_START = 1_709_300_000.0
FIRST_RUN = 25  # posts on each fake before the first fetch
PAGE_SIZE = 10  # the smallest page X accepts

Response = tuple[int, dict[str, str], bytes | None]  # a None body drops the connection


# Loopback server


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class FakeApi:
    """HTTP server on 127.0.0.1 that responds with ``route`` unless a fault is scheduled."""

    def __init__(self, route: Callable[[FakeApi, Request], Response]) -> None:
        self.route = route
        self.requests: list[Request] = []
        self.faults: dict[int, Response | float] = {}  # a float delays the normal response
        self.extra_headers: dict[int, dict[str, str]] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self))
        # A short poll interval makes shutdown() return quickly at the end of each test.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, *faults: Response | float) -> None:
        """Respond to the next requests, one each, with ``faults``."""
        first = len(self.requests) + 1
        for offset, fault in enumerate(faults):
            self.faults[first + offset] = fault

    def fail_at(self, number: int, fault: Response | float) -> None:
        self.faults[number] = fault

    def respond(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request)
            number = len(self.requests)
        fault = self.faults.get(number)
        if isinstance(fault, float):
            time.sleep(fault)
            fault = None
        status, headers, body = fault or self.route(self, request)
        return status, {**headers, **self.extra_headers.get(number, {})}, body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            status, headers, body = api.respond(Request(parts.path, query, dict(self.headers)))
            if body is None:
                self.close_connection = True
                return
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    body = json.dumps(payload).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, body


INVALID_JSON: Response = (200, {"Content-Type": "application/json"}, b'{"truncated": [')
SERVER_ERROR: Response = json_response({"error": "internal"}, status=500)
DROP: Response = (200, {}, None)


def iso_time(number: int, millis: bool = True) -> str:
    moment = dt.datetime.fromtimestamp(START + 60 * number, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z" if millis else "%Y-%m-%dT%H:%M:%SZ")


# Platform fakes. Posts are kept newest first as (sequence number, item) pairs. The number
# orders them, so a malformed item without an id still has a place in the timeline.


class FakePlatform:
    platform = ""
    token_variable = ""
    watermark_param = ""  # the query parameter that carries the watermark
    paging_param = ""  # the query parameter that requests the next page
    first_run_requests = 3

    def __init__(self) -> None:
        self.posts: list[tuple[int, Any]] = []
        self.count = 0
        self.add(FIRST_RUN)

    def add(self, count: int) -> None:
        for _ in range(count):
            self.insert(self.make_post(self.count + 1))

    def insert(self, item: Any) -> None:
        self.count += 1
        self.posts.insert(0, (self.count, item))

    def spec(self, base_url: str) -> str:
        raise NotImplementedError

    def make_post(self, number: int) -> Any:
        raise NotImplementedError

    def record_id(self, number: int) -> str:
        raise NotImplementedError

    def expected_record(self, number: int) -> dict[str, Any]:
        raise NotImplementedError

    def watermark_value(self, number: int) -> str:
        raise NotImplementedError

    def route(self, api: FakeApi, request: Request) -> Response:
        raise NotImplementedError


class FakeMastodon(FakePlatform):
    platform = "mastodon"
    token_variable = "PULSE_MASTODON_TOKEN"
    watermark_param = "since_id"
    paging_param = "max_id"
    first_run_requests = 4  # the last full page links to one more, empty page
    id_base = 110_000
    wrong_shape = json_response({"error": "This action is not allowed"})
    shape_problem = "expected a JSON array of statuses"

    def spec(self, base_url: str) -> str:
        return f"mastodon+{base_url}/tags/python"

    def status_id(self, number: int) -> str:
        return str(self.id_base + number)

    def make_post(self, number: int) -> dict[str, Any]:
        handle = f"user{number % 3}"
        return {
            "id": self.status_id(number),
            "created_at": iso_time(number),
            "content": (f'<p>Post {number} about <a href="https://example.social/tags/python" '
                        'class="mention hashtag">#<span>python</span></a><br>second line '
                        "&amp; more</p><p>end</p>"),
            "language": "en",
            "account": {"id": str(number % 3), "username": handle,
                        "acct": f"{handle}@example.social"},
            "url": f"https://example.social/@{handle}/{self.status_id(number)}",
            "uri": f"https://example.social/users/{handle}/statuses/{self.status_id(number)}",
        }

    def record_id(self, number: int) -> str:
        return f"mastodon:{self.status_id(number)}"

    def expected_record(self, number: int) -> dict[str, Any]:
        return {
            "id": self.record_id(number),
            "text": f"Post {number} about #python second line & more end",
            "created_at": iso_time(number), "author": f"user{number % 3}@example.social",
            "lang": "en", "platform": "mastodon",
            "url": f"https://example.social/@user{number % 3}/{self.status_id(number)}",
        }

    def watermark_value(self, number: int) -> str:
        return self.status_id(number)

    def broken_item(self) -> dict[str, Any]:
        return {"content": "<p>a status without an id</p>", "created_at": iso_time(99)}

    def remove_text(self, item: dict[str, Any]) -> None:
        item["content"] = None

    def route(self, api: FakeApi, request: Request) -> Response:
        if request.path == "/api/v1/timelines/tag/python":
            page = self.select(request.query, lower="since_id")
            headers = {}
            if page:  # like Mastodon, link pages by id only, without since_id
                older = f"{api.base_url}{request.path}?max_id={self.status_id(page[-1][0])}"
                newer = f"{api.base_url}{request.path}?min_id={self.status_id(page[0][0])}"
                headers["Link"] = f'<{older}>; rel="next", <{newer}>; rel="prev"'
            return json_response([item for _, item in page], headers=headers)
        if request.path == "/api/v2/search" and request.query.get("type") == "statuses":
            page = self.select(request.query, lower="min_id")
            return json_response({"accounts": [], "statuses": [item for _, item in page],
                                  "hashtags": []})
        return json_response({"error": "Record not found"}, status=404)

    def select(self, query: dict[str, str], lower: str) -> list[tuple[int, Any]]:
        low = int(query.get(lower, self.id_base)) - self.id_base
        high = int(query.get("max_id", self.id_base * 10)) - self.id_base
        matching = [(number, item) for number, item in self.posts if low < number < high]
        return matching[: int(query.get("limit", 20))]


class FakeBluesky(FakePlatform):
    platform = "bluesky"
    token_variable = "PULSE_BLUESKY_TOKEN"
    watermark_param = "since"
    paging_param = "cursor"
    wrong_shape = json_response({"feed": []})
    shape_problem = "expected a JSON object with a 'posts' array"

    def spec(self, base_url: str) -> str:
        return f"bluesky+{base_url}/search?q=python"

    def uri(self, number: int) -> str:
        return f"at://did:plc:user{number % 3}/app.bsky.feed.post/3kabc{number:04d}"

    def make_post(self, number: int) -> dict[str, Any]:
        return {
            "uri": self.uri(number),
            "cid": f"bafyreia{number:04d}",
            "author": {"did": f"did:plc:user{number % 3}",
                       "handle": f"user{number % 3}.bsky.social"},
            "record": {"$type": "app.bsky.feed.post", "text": f"post {number} about python",
                       "createdAt": iso_time(number), "langs": ["en"]},
            "indexedAt": iso_time(number).replace(".000Z", ".500Z"),
        }

    def record_id(self, number: int) -> str:
        return f"bluesky:{self.uri(number)}"

    def expected_record(self, number: int) -> dict[str, Any]:
        handle = f"user{number % 3}.bsky.social"
        return {
            "id": self.record_id(number), "text": f"post {number} about python",
            "created_at": iso_time(number), "author": handle, "lang": "en",
            "platform": "bluesky",
            "url": f"https://bsky.app/profile/{handle}/post/3kabc{number:04d}",
        }

    def watermark_value(self, number: int) -> str:
        return iso_time(number)

    def broken_item(self) -> dict[str, Any]:
        return {"cid": "bafyreibroken", "record": {"text": "a post without a uri"}}

    def remove_text(self, item: dict[str, Any]) -> None:
        del item["record"]["text"]

    def route(self, api: FakeApi, request: Request) -> Response:
        if request.path != "/xrpc/app.bsky.feed.searchPosts":
            return json_response({"error": "MethodNotImplemented"}, status=501)
        if not request.query.get("q"):
            return json_response({"error": "InvalidRequest", "message": "q is required"}, 400)
        since = request.query.get("since")
        # since is inclusive, as the lexicon documents
        matching = [item for number, item in self.posts if not since or iso_time(number) >= since]
        offset = int(request.query.get("cursor", 0))
        limit = int(request.query.get("limit", 25))
        body: dict[str, Any] = {"posts": matching[offset: offset + limit]}
        if offset + limit < len(matching):
            body["cursor"] = str(offset + limit)
        return json_response(body)


def to_base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while value:
        value, remainder = divmod(value, 36)
        text = digits[remainder] + text
    return text or "0"


class FakeReddit(FakePlatform):
    platform = "reddit"
    token_variable = "PULSE_REDDIT_TOKEN"
    watermark_param = "before"
    paging_param = "after"
    id_base = 1_000_000
    wrong_shape = json_response([{"kind": "Listing"}])
    shape_problem = "expected a Listing"

    def spec(self, base_url: str) -> str:
        return f"reddit+{base_url}/r/python"

    def post_id(self, number: int) -> str:
        return to_base36(self.id_base + number)

    def fullname(self, number: int) -> str:
        return f"t3_{self.post_id(number)}"

    def number_of(self, fullname: str) -> int:
        return int(fullname.removeprefix("t3_"), 36) - self.id_base

    def make_post(self, number: int) -> dict[str, Any]:
        post_id = self.post_id(number)
        permalink = f"/r/python/comments/{post_id}/post_{number}/"
        return {"kind": "t3", "data": {
            "id": post_id, "name": self.fullname(number), "title": f"Post {number}",
            "selftext": f"body of post {number}", "created_utc": float(START + 60 * number),
            "author": f"user{number % 3}", "permalink": permalink,
            "url": f"https://www.reddit.com{permalink}", "subreddit": "python",
        }}

    def record_id(self, number: int) -> str:
        return f"reddit:{self.post_id(number)}"

    def expected_record(self, number: int) -> dict[str, Any]:
        return {
            "id": self.record_id(number), "text": f"Post {number}\nbody of post {number}",
            "created_at": iso_time(number, millis=False), "author": f"user{number % 3}",
            "lang": None, "platform": "reddit",
            "url": (f"https://www.reddit.com/r/python/comments/{self.post_id(number)}"
                    f"/post_{number}/"),
        }

    def watermark_value(self, number: int) -> str:
        return self.fullname(number)

    def broken_item(self) -> dict[str, Any]:
        return {"kind": "t3", "data": {"title": "a post without an id"}}

    def remove_text(self, item: dict[str, Any]) -> None:
        del item["data"]["title"]
        del item["data"]["selftext"]

    def route(self, api: FakeApi, request: Request) -> Response:
        if request.path != "/r/python/new.json":
            return json_response({"message": "Not Found", "error": 404}, status=404)
        limit = int(request.query.get("limit", 25))
        numbers = [number for number, _ in self.posts]
        after, before = request.query.get("after"), request.query.get("before")
        if after and before:
            return json_response({"message": "Bad Request", "error": 400}, status=400)
        if before:  # the slice just newer than the anchor, still newest first
            anchor_number = self.number_of(before)
            anchor = numbers.index(anchor_number) if anchor_number in numbers else 0
            start = max(0, anchor - limit)
            page, more = self.posts[start:anchor], start > 0
        else:
            start = numbers.index(self.number_of(after)) + 1 if after else 0
            page, more = self.posts[start:start + limit], start + limit < len(self.posts)
        names = [self.fullname(number) for number, _ in page]
        return json_response({"kind": "Listing", "data": {
            "after": names[-1] if page and (more or before) else None,
            "before": names[0] if page and before and more else None,
            "dist": len(page), "children": [item for _, item in page],
        }})


class FakeX(FakePlatform):
    platform = "x"
    token_variable = "PULSE_X_BEARER_TOKEN"
    watermark_param = "since_id"
    paging_param = "next_token"
    id_base = 1_760_000_000_000_000_000
    wrong_shape = json_response({"data": {"id": "1"}, "meta": {"result_count": 1}})
    shape_problem = "'data' should be an array of posts"

    def spec(self, base_url: str) -> str:
        return f"x+{base_url}/search?q=python%20-is:retweet"

    def tweet_id(self, number: int) -> str:
        return str(self.id_base + number)

    def make_post(self, number: int) -> dict[str, Any]:
        return {"id": self.tweet_id(number), "text": f"post {number} about python",
                "created_at": iso_time(number), "lang": "en", "author_id": str(900 + number % 3),
                "edit_history_tweet_ids": [self.tweet_id(number)]}

    def record_id(self, number: int) -> str:
        return f"x:{self.tweet_id(number)}"

    def expected_record(self, number: int) -> dict[str, Any]:
        return {
            "id": self.record_id(number), "text": f"post {number} about python",
            "created_at": iso_time(number), "author": f"user{number % 3}", "lang": "en",
            "platform": "x",
            "url": f"https://x.com/user{number % 3}/status/{self.tweet_id(number)}",
            "author_id": str(900 + number % 3),
        }

    def watermark_value(self, number: int) -> str:
        return self.tweet_id(number)

    def broken_item(self) -> dict[str, Any]:
        return {"text": "a post without an id", "author_id": "900"}

    def remove_text(self, item: dict[str, Any]) -> None:
        del item["text"]

    def route(self, api: FakeApi, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_response({"title": "Unauthorized", "status": 401,
                                  "detail": "Unauthorized"}, status=401)
        if request.path != "/2/tweets/search/recent":
            return json_response({"title": "Not Found Error", "status": 404}, status=404)
        limit = int(request.query.get("max_results", 10))
        if not 10 <= limit <= 100:
            return json_response({"title": "Invalid Request", "status": 400}, status=400)
        since = int(request.query.get("since_id", self.id_base)) - self.id_base
        matching = [(number, item) for number, item in self.posts if number > since]
        offset = int(request.query.get("next_token", "page0").removeprefix("page"))
        page = matching[offset: offset + limit]
        if not page:
            return json_response({"meta": {"result_count": 0}})
        meta = {"newest_id": self.tweet_id(page[0][0]), "oldest_id": self.tweet_id(page[-1][0]),
                "result_count": len(page)}
        if offset + limit < len(matching):
            meta["next_token"] = f"page{offset + limit}"
        authors = sorted({item["author_id"] for _, item in page if "author_id" in item})
        users = [{"id": author, "name": f"User {author}", "username": f"user{int(author) - 900}"}
                 for author in authors]
        return json_response({"data": [item for _, item in page], "includes": {"users": users},
                              "meta": meta})


FAKES: dict[str, type[FakePlatform]] = {
    "mastodon": FakeMastodon, "bluesky": FakeBluesky, "reddit": FakeReddit, "x": FakeX,
}


# Harness


class FakeClock:
    """Wall clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = CLOCK_START
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Harness:
    fake: Any
    api: FakeApi
    store: Store
    clock: FakeClock = field(default_factory=FakeClock)

    def http_options(self, **overrides: Any) -> HttpOptions:
        settings: dict[str, Any] = {
            "connect_timeout": 2.0, "read_timeout": 2.0, "max_retries": 3,
            "backoff_base": 0.5, "backoff_max": 4.0, "max_wait": 120.0,
            "sleep": self.clock.sleep, "clock": self.clock.time, "jitter": lambda: 0.0,
        }
        return HttpOptions(**{**settings, **overrides})

    def source(self, **options: Any) -> ApiSource:
        options.setdefault("token", TOKEN)
        options.setdefault("page_size", PAGE_SIZE)
        options.setdefault("http", self.http_options())
        return open_api_source(self.fake.spec(self.api.base_url), self.store, **options)

    def watermark(self, source: ApiSource) -> dict[str, Any] | None:
        return read_watermark(self.store, source.name)

    def watermark_bytes(self, source: ApiSource) -> bytes:
        return self.store.read_bytes(watermark_key(source.name))


def decode_records(raw_file: RawFile) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw_file.data.decode("utf-8").splitlines()]


def fetch_records(source: ApiSource, day: dt.date = DAY) -> list[dict[str, Any]]:
    files = source.fetch(day)
    assert len(files) == 1
    return decode_records(files[0])


def page_log_lines(caplog: pytest.LogCaptureFixture, source: ApiSource) -> list[str]:
    prefix = f"source {source.name}: page "
    return [record.getMessage() for record in caplog.records
            if record.getMessage().startswith(prefix)]


@pytest.fixture(params=sorted(FAKES))
def harness(request, tmp_path, monkeypatch):
    for fake_class in FAKES.values():
        monkeypatch.delenv(fake_class.token_variable, raising=False)
    api_fake = FAKES[request.param]()
    api = FakeApi(api_fake.route)
    yield Harness(api_fake, api, open_store(str(tmp_path / "store")))
    api.close()


# Every platform: records and paging


def test_fetch_returns_one_jsonl_file(harness):
    source = harness.source()

    files = source.fetch(DAY)

    assert len(files) == 1
    assert files[0].format == "jsonl"
    assert files[0].name == f"{source.name}-2024-03-01.jsonl"


def test_fetch_records_newest_first(harness):
    records = fetch_records(harness.source())

    expected = [harness.fake.record_id(number) for number in range(FIRST_RUN, 0, -1)]
    assert [record["id"] for record in records] == expected


def test_fetch_record_fields(harness):
    records = fetch_records(harness.source())

    assert records[0] == harness.fake.expected_record(FIRST_RUN)
    assert records[-1] == harness.fake.expected_record(1)


def test_fetch_follows_pages(harness):
    fetch_records(harness.source())

    requests = harness.api.requests
    assert len(requests) == harness.fake.first_run_requests
    assert harness.fake.paging_param not in requests[0].query
    assert all(harness.fake.paging_param in request.query for request in requests[1:])
    assert len({json.dumps(request.query, sort_keys=True) for request in requests}) == len(requests)


def test_fetch_logs_one_line_per_page(harness, caplog):
    source = harness.source()
    caplog.set_level(logging.INFO)

    fetch_records(source)

    lines = page_log_lines(caplog, source)
    assert len(lines) == harness.fake.first_run_requests
    assert "has 10 items" in lines[0]


def test_max_pages_limits_requests(harness):
    records = fetch_records(harness.source(max_pages=2))

    assert len(harness.api.requests) == 2
    assert len(records) == 2 * PAGE_SIZE


# Every platform: retries and rate limits


def test_429_waits_for_retry_after(harness, caplog):
    harness.api.fail_at(2, json_response({"error": "Too many requests"}, 429,
                                         {"Retry-After": "7"}))
    caplog.set_level(logging.INFO)

    records = fetch_records(harness.source())

    assert len(records) == FIRST_RUN
    assert harness.clock.sleeps == [7.0]
    assert "retry 1/3 in 7.0 s after HTTP 429" in caplog.text


def test_429_retry_after_http_date(harness):
    when = email.utils.formatdate(CLOCK_START + 30, usegmt=True)
    harness.api.fail_at(1, json_response({}, 429, {"Retry-After": when}))

    records = fetch_records(harness.source())

    assert len(records) == FIRST_RUN
    assert harness.clock.sleeps == [30.0]


def test_429_wait_capped_by_max_wait(harness):
    harness.api.fail_at(1, json_response({}, 429, {"Retry-After": "3600"}))
    source = harness.source(http=harness.http_options(max_wait=20.0))

    fetch_records(source)

    assert harness.clock.sleeps == [20.0]


def test_500_then_success(harness, caplog):
    harness.api.fail_at(1, SERVER_ERROR)
    caplog.set_level(logging.WARNING)

    records = fetch_records(harness.source())

    assert len(records) == FIRST_RUN
    assert harness.clock.sleeps == [0.25]  # backoff_base 0.5 times the jitter floor 0.5
    assert "after HTTP 500" in caplog.text


def test_backoff_grows_exponentially(harness):
    harness.api.fail_next(SERVER_ERROR, SERVER_ERROR, SERVER_ERROR)

    fetch_records(harness.source())

    assert harness.clock.sleeps == [0.25, 0.5, 1.0]


def test_retries_exhausted_raise(harness):
    harness.api.fail_next(*[SERVER_ERROR] * 4)
    source = harness.source()

    with pytest.raises(ApiError, match="failed after 3 retries, last error: HTTP 500"):
        source.fetch(DAY)

    assert len(harness.api.requests) == 4
    assert harness.watermark(source) is None


def test_dropped_connection_retried(harness, caplog):
    harness.api.fail_at(2, DROP)
    caplog.set_level(logging.WARNING)

    records = fetch_records(harness.source())

    assert len(records) == FIRST_RUN
    assert "ConnectionError" in caplog.text


def test_read_timeout_retried(harness, caplog):
    harness.api.fail_at(1, 0.4)  # responds after 0.4 s, past the 0.1 s read timeout
    caplog.set_level(logging.WARNING)

    records = fetch_records(harness.source(http=harness.http_options(read_timeout=0.1)))

    assert len(records) == FIRST_RUN
    assert "ReadTimeout" in caplog.text


def test_client_error_not_retried(harness):
    harness.api.fail_at(1, json_response({"error": "Not Found"}, status=404))
    source = harness.source()

    with pytest.raises(ApiError, match="rejected with HTTP 404"):
        source.fetch(DAY)

    assert len(harness.api.requests) == 1
    assert harness.clock.sleeps == []


def test_unauthorized_error_hints_token(harness):
    harness.api.fail_at(1, json_response({"error": "The access token is invalid"}, 401))

    with pytest.raises(ApiError, match="Check the token"):
        harness.source().fetch(DAY)


RATE_LIMIT_HEADERS = {
    "mastodon": {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                 "X-RateLimit-Reset": "2024-03-01T13:34:00.000Z"},  # CLOCK_START + 40 s
    "bluesky": {"ratelimit-limit": "3000", "ratelimit-remaining": "0",
                "ratelimit-reset": str(int(CLOCK_START) + 40)},
    "reddit": {"x-ratelimit-used": "100", "x-ratelimit-remaining": "0.0",
               "x-ratelimit-reset": "40"},
    "x": {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0",
          "x-rate-limit-reset": str(int(CLOCK_START) + 40)},
}


def test_exhausted_rate_limit_waits_for_reset(harness, caplog):
    harness.api.extra_headers[1] = RATE_LIMIT_HEADERS[harness.fake.platform]
    caplog.set_level(logging.INFO)

    records = fetch_records(harness.source())

    assert len(records) == FIRST_RUN
    assert harness.clock.sleeps == [40.0]
    assert "rate limit reached, waiting 40.0 s" in caplog.text


def test_remaining_rate_limit_does_not_wait(harness):
    headers = dict(RATE_LIMIT_HEADERS[harness.fake.platform])
    for name in headers:
        if name.lower().endswith("remaining"):
            headers[name] = "12"
    harness.api.extra_headers[1] = headers

    fetch_records(harness.source())

    assert harness.clock.sleeps == []


def test_rate_limit_wait_capped(harness):
    harness.api.extra_headers[1] = RATE_LIMIT_HEADERS[harness.fake.platform]

    fetch_records(harness.source(http=harness.http_options(max_wait=5.0)))

    assert harness.clock.sleeps == [5.0]


# Every platform: malformed pages and items


def test_invalid_json_page_raises(harness):
    harness.api.fail_at(2, INVALID_JSON)
    source = harness.source()

    with pytest.raises(MalformedPageError) as raised:
        source.fetch(DAY)

    message = str(raised.value)
    assert f"source {source.name}" in message
    assert harness.api.base_url in message
    assert harness.api.requests[1].path in message
    assert "is not valid JSON" in message
    assert harness.watermark(source) is None


def test_unexpected_page_shape_raises(harness):
    harness.api.fail_at(2, harness.fake.wrong_shape)
    source = harness.source()

    with pytest.raises(MalformedPageError) as raised:
        source.fetch(DAY)

    message = str(raised.value)
    assert f"source {source.name}" in message
    assert harness.api.requests[1].path in message
    assert harness.fake.shape_problem in message
    assert harness.watermark(source) is None


def test_malformed_item_kept_for_quarantine(harness, caplog):
    broken = harness.fake.broken_item()
    harness.fake.insert(broken)
    caplog.set_level(logging.WARNING)

    records = fetch_records(harness.source())

    assert len(records) == FIRST_RUN + 1
    flagged = [record for record in records if "malformed" in record]
    assert len(flagged) == 1
    assert flagged[0]["text"] is None
    assert flagged[0]["item"] == broken
    assert flagged[0]["platform"] == harness.fake.platform
    assert "malformed item kept for quarantine" in caplog.text


def test_post_without_text_emitted(harness):
    harness.fake.remove_text(harness.fake.posts[0][1])

    records = fetch_records(harness.source())

    assert len(records) == FIRST_RUN
    assert records[0]["id"] == harness.fake.record_id(FIRST_RUN)
    assert records[0]["text"] is None
    assert "malformed" not in records[0]


# Every platform: watermarks


def test_watermark_written_after_fetch(harness):
    source = harness.source()

    fetch_records(source)

    state = harness.watermark(source)
    assert state["source"] == source.name
    assert state["day"] == "2024-03-01"
    assert state["start_cursor"] is None
    assert state["next_cursor"][harness.fake.watermark_param] == \
        harness.fake.watermark_value(FIRST_RUN)
    assert state["records"] == FIRST_RUN


def test_next_run_fetches_only_newer(harness):
    source = harness.source()
    fetch_records(source)
    first_run_requests = len(harness.api.requests)
    harness.fake.add(2)

    records = fetch_records(source, NEXT_DAY)

    assert sorted(record["id"] for record in records) == sorted(
        harness.fake.record_id(number) for number in (FIRST_RUN + 1, FIRST_RUN + 2))
    first_request = harness.api.requests[first_run_requests]
    assert first_request.query[harness.fake.watermark_param] == \
        harness.fake.watermark_value(FIRST_RUN)
    state = harness.watermark(source)
    assert state["next_cursor"][harness.fake.watermark_param] == \
        harness.fake.watermark_value(FIRST_RUN + 2)


def test_new_source_object_reads_stored_watermark(harness):
    fetch_records(harness.source())
    harness.fake.add(1)

    records = fetch_records(harness.source(), NEXT_DAY)

    assert [record["id"] for record in records] == [harness.fake.record_id(FIRST_RUN + 1)]


def test_run_without_new_posts_keeps_watermark(harness):
    source = harness.source()
    fetch_records(source)

    records = fetch_records(source, NEXT_DAY)

    assert records == []
    state = harness.watermark(source)
    assert state["next_cursor"][harness.fake.watermark_param] == \
        harness.fake.watermark_value(FIRST_RUN)


def test_failed_run_keeps_watermark(harness):
    source = harness.source()
    fetch_records(source)
    before = harness.watermark_bytes(source)
    harness.fake.add(2)
    harness.api.fail_next(INVALID_JSON)

    with pytest.raises(MalformedPageError):
        source.fetch(NEXT_DAY)

    assert harness.watermark_bytes(source) == before
    records = fetch_records(source, NEXT_DAY)
    assert len(records) == 2


def test_failed_first_run_writes_no_watermark(harness):
    harness.api.fail_next(*[SERVER_ERROR] * 4)
    source = harness.source()

    with pytest.raises(ApiError):
        source.fetch(DAY)

    assert not harness.store.exists(watermark_key(source.name))


def test_same_day_rerun_refetches_window(harness):
    source = harness.source()
    fetch_records(source)
    harness.fake.add(2)
    first = fetch_records(source, NEXT_DAY)

    again = fetch_records(source, NEXT_DAY)

    assert [record["id"] for record in again] == [record["id"] for record in first]


# Every platform: tokens


def test_authorization_header_sent(harness):
    fetch_records(harness.source())

    assert harness.api.requests
    for request in harness.api.requests:
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}"


def test_token_read_from_environment(harness, monkeypatch):
    monkeypatch.setenv(harness.fake.token_variable, TOKEN)

    fetch_records(harness.source(token=None))

    assert harness.api.requests[0].headers.get("Authorization") == f"Bearer {TOKEN}"


def test_token_never_logged(harness, caplog):
    caplog.set_level(logging.DEBUG)
    source = harness.source()
    harness.api.fail_next(json_response({}, 429, {"Retry-After": "1"}), SERVER_ERROR, DROP)
    fetch_records(source)
    harness.fake.add(1)
    harness.api.fail_next(INVALID_JSON)

    with pytest.raises(MalformedPageError) as raised:
        source.fetch(NEXT_DAY)

    assert "retry 3/3" in caplog.text  # the retries were logged
    assert TOKEN not in caplog.text
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(source)


def test_token_echoed_by_server_masked(harness, caplog):
    caplog.set_level(logging.DEBUG)
    harness.api.fail_next(json_response({"error": f"retry later, {TOKEN}"}, 503),
                          json_response({"error": f"token {TOKEN} is invalid"}, 401))

    with pytest.raises(ApiError) as raised:
        harness.source().fetch(DAY)

    assert "is invalid" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert TOKEN not in caplog.text


# Every platform: the records parse into posts


def test_fetched_file_parses_into_posts(harness):
    raw_file = harness.source().fetch(DAY)[0]

    posts = parse_posts(pd.DataFrame(split_records(raw_file)), DAY)

    assert len(posts) == FIRST_RUN
    assert posts["parse_error"].isna().all()
    assert posts["text"].notna().all()
    assert posts["id"].iloc[0] == harness.fake.record_id(FIRST_RUN)
    assert posts["author"].notna().all()
    assert posts["created_at"].iloc[0] == iso_time(FIRST_RUN, millis=False)
    extra = json.loads(posts["extra"].iloc[0])
    assert extra["platform"] == harness.fake.platform
    assert extra["url"] == harness.fake.expected_record(FIRST_RUN)["url"]


def test_encode_jsonl_replaces_lone_surrogate():
    data = encode_jsonl([{"id": "x:1", "text": "ab\ud800cd"}])

    posts = parse_posts(pd.DataFrame(split_records(RawFile("posts.jsonl", "jsonl", data))), DAY)

    assert data.decode("utf-8") == '{"id": "x:1", "text": "ab\ufffdcd"}\n'
    assert posts["parse_error"].isna().all()
    assert posts["text"].iloc[0] == "ab\ufffdcd"


def test_malformed_item_parses_without_text(harness):
    harness.fake.insert(harness.fake.broken_item())
    raw_file = harness.source().fetch(DAY)[0]

    posts = parse_posts(pd.DataFrame(split_records(raw_file)), DAY)

    assert len(posts) == FIRST_RUN + 1
    assert posts["text"].isna().sum() == 1
    assert "malformed" in posts.loc[posts["text"].isna(), "extra"].iloc[0]


# Mastodon


@pytest.fixture
def mastodon(tmp_path, monkeypatch):
    monkeypatch.delenv("PULSE_MASTODON_TOKEN", raising=False)
    fake = FakeMastodon()
    api = FakeApi(fake.route)
    yield Harness(fake, api, open_store(str(tmp_path / "store")))
    api.close()


def test_mastodon_link_paging_keeps_since_id(mastodon):
    source = mastodon.source()
    fetch_records(source)
    mastodon.fake.add(2)
    count = len(mastodon.api.requests)

    fetch_records(source, NEXT_DAY)

    second_run = mastodon.api.requests[count:]
    assert len(second_run) == 2
    assert second_run[1].query["max_id"] == mastodon.fake.status_id(FIRST_RUN + 1)
    assert second_run[1].query["since_id"] == mastodon.fake.status_id(FIRST_RUN)


def test_mastodon_search_uses_v2_search(mastodon):
    spec = f"mastodon+{mastodon.api.base_url}/search?q=python"
    source = open_api_source(spec, mastodon.store, token=TOKEN, page_size=PAGE_SIZE,
                             http=mastodon.http_options())

    records = fetch_records(source)

    assert len(records) == FIRST_RUN
    first = mastodon.api.requests[0]
    assert first.path == "/api/v2/search"
    assert first.query["q"] == "python"
    assert first.query["type"] == "statuses"
    assert mastodon.api.requests[1].query["max_id"] == mastodon.fake.status_id(FIRST_RUN - 9)


def test_mastodon_search_next_run_uses_min_id(mastodon):
    spec = f"mastodon+{mastodon.api.base_url}/search?q=python"
    source = open_api_source(spec, mastodon.store, token=TOKEN, page_size=PAGE_SIZE,
                             http=mastodon.http_options())
    fetch_records(source)
    mastodon.fake.add(3)
    count = len(mastodon.api.requests)

    records = fetch_records(source, NEXT_DAY)

    assert len(records) == 3
    assert mastodon.api.requests[count].query["min_id"] == mastodon.fake.status_id(FIRST_RUN)


def test_mastodon_skips_statuses_at_or_before_watermark(mastodon):
    """A server that ignores since_id still yields only new statuses."""
    source = mastodon.source()
    fetch_records(source)
    mastodon.fake.add(2)
    ignore_since = mastodon.fake.route

    def route_without_since(api: FakeApi, request: Request) -> Response:
        request.query.pop("since_id", None)
        return ignore_since(api, request)

    mastodon.api.route = route_without_since

    records = fetch_records(source, NEXT_DAY)

    assert [record["id"] for record in records] == [
        mastodon.fake.record_id(FIRST_RUN + 2), mastodon.fake.record_id(FIRST_RUN + 1)]


def test_mastodon_anonymous_sends_no_authorization(mastodon):
    fetch_records(mastodon.source(token=None))

    assert all("Authorization" not in request.headers for request in mastodon.api.requests)


def test_mastodon_page_cap_warns_about_gap(mastodon, caplog):
    source = mastodon.source()
    fetch_records(source)
    mastodon.fake.add(30)
    caplog.set_level(logging.WARNING)

    records = fetch_records(mastodon.source(max_pages=2), NEXT_DAY)

    assert len(records) == 20
    assert "posts between the watermark and the oldest fetched post are skipped" in caplog.text


@pytest.mark.parametrize(("content", "text"), [
    ("<p>Hello<br>world</p>", "Hello world"),
    ("<p>one</p><p>two</p>", "one two"),
    ("<p>fish &amp; chips &lt;3 &#128512;</p>", "fish & chips <3 \U0001F600"),
    (('<p><a href="https://example.org/page"><span class="invisible">https://</span>'
      '<span class="">example.org/page</span></a></p>'), "https://example.org/page"),
    (('<p><span class="h-card"><a href="https://x/@ann" class="u-url mention">@<span>ann'
      "</span></a></span> hi</p>"), "@ann hi"),
    ("plain text", "plain text"),
    ("", ""),
])
def test_html_to_text(content, text):
    assert html_to_text(content) == text


# Bluesky


@pytest.fixture
def bluesky(tmp_path, monkeypatch):
    monkeypatch.delenv("PULSE_BLUESKY_TOKEN", raising=False)
    fake = FakeBluesky()
    api = FakeApi(fake.route)
    yield Harness(fake, api, open_store(str(tmp_path / "store")))
    api.close()


def test_bluesky_inclusive_since_skips_seen_posts(bluesky, caplog):
    source = bluesky.source()
    fetch_records(source)
    bluesky.fake.add(2)
    caplog.set_level(logging.INFO)

    records = fetch_records(source, NEXT_DAY)

    assert len(records) == 2
    assert "skipped 1 posts collected by the previous run" in caplog.text


def test_bluesky_watermark_keeps_uris_at_newest_time(bluesky):
    source = bluesky.source()

    fetch_records(source)

    cursor = bluesky.watermark(source)["next_cursor"]
    assert cursor == {"since": iso_time(FIRST_RUN), "uris": [bluesky.fake.uri(FIRST_RUN)]}


def test_bluesky_watermark_uses_earlier_indexed_at(bluesky):
    """A createdAt in the future does not push the watermark past the sort time."""
    newest = bluesky.fake.posts[0][1]
    newest["record"]["createdAt"] = "2030-01-01T00:00:00.000Z"
    source = bluesky.source()

    fetch_records(source)

    assert bluesky.watermark(source)["next_cursor"]["since"] == newest["indexedAt"]


def test_bluesky_sends_latest_sort(bluesky):
    fetch_records(bluesky.source())

    assert bluesky.api.requests[0].query["sort"] == "latest"
    assert bluesky.api.requests[0].query["q"] == "python"


@pytest.mark.parametrize(("uri", "handle", "url"), [
    ("at://did:plc:abc/app.bsky.feed.post/3kxyz", "ann.bsky.social",
     "https://bsky.app/profile/ann.bsky.social/post/3kxyz"),
    ("at://did:plc:abc/app.bsky.feed.post/3kxyz", None,
     "https://bsky.app/profile/did:plc:abc/post/3kxyz"),
    ("at://did:plc:abc/app.bsky.feed.like/3kxyz", "ann.bsky.social", None),
    ("https://example.org/post", "ann.bsky.social", None),
])
def test_bluesky_post_url(uri, handle, url):
    assert build_post_url(uri, handle) == url


# Reddit


@pytest.fixture
def reddit(tmp_path, monkeypatch):
    monkeypatch.delenv("PULSE_REDDIT_TOKEN", raising=False)
    fake = FakeReddit()
    api = FakeApi(fake.route)
    yield Harness(fake, api, open_store(str(tmp_path / "store")))
    api.close()


def test_reddit_next_run_pages_with_before_only(reddit):
    source = reddit.source()
    fetch_records(source)
    reddit.fake.add(2)
    count = len(reddit.api.requests)

    fetch_records(source, NEXT_DAY)

    second_run = reddit.api.requests[count:]
    assert second_run[0].query["before"] == reddit.fake.fullname(FIRST_RUN)
    assert all("after" not in request.query for request in second_run)
    assert second_run[0].query["raw_json"] == "1"


def test_reddit_link_post_text_is_title(reddit):
    reddit.fake.posts[0][1]["data"]["selftext"] = ""

    records = fetch_records(reddit.source())

    assert records[0]["text"] == f"Post {FIRST_RUN}"


def test_reddit_page_cap_resumes_next_run(reddit):
    """Paging up from the watermark leaves no gap when max_pages stops a run."""
    source = reddit.source(max_pages=1)
    fetch_records(source)
    reddit.fake.add(15)

    second = fetch_records(source, NEXT_DAY)
    third = fetch_records(source, NEXT_DAY + dt.timedelta(days=1))

    fetched = {record["id"] for record in second + third}
    expected = {reddit.fake.record_id(number) for number in range(FIRST_RUN + 1, FIRST_RUN + 16)}
    assert len(second) == PAGE_SIZE
    assert fetched == expected


def test_reddit_created_utc_as_iso(reddit):
    records = fetch_records(reddit.source())

    assert records[0]["created_at"] == iso_time(FIRST_RUN, millis=False)


# X


@pytest.fixture
def x_api(tmp_path, monkeypatch):
    monkeypatch.delenv("PULSE_X_BEARER_TOKEN", raising=False)
    fake = FakeX()
    api = FakeApi(fake.route)
    yield Harness(fake, api, open_store(str(tmp_path / "store")))
    api.close()


def test_x_requires_token(x_api):
    with pytest.raises(ValueError, match="PULSE_X_BEARER_TOKEN"):
        x_api.source(token=None)


def test_x_requests_fields_and_usernames(x_api):
    fetch_records(x_api.source())

    query = x_api.api.requests[0].query
    assert query["query"] == "python -is:retweet"
    assert query["max_results"] == str(PAGE_SIZE)
    assert query["tweet.fields"] == "created_at,lang,author_id"
    assert query["expansions"] == "author_id"
    assert query["user.fields"] == "username"


def test_x_watermark_is_first_page_newest_id(x_api):
    source = x_api.source()
    fetch_records(source)
    x_api.fake.add(12)

    fetch_records(source, NEXT_DAY)

    cursor = x_api.watermark(source)["next_cursor"]
    assert cursor == {"since_id": x_api.fake.tweet_id(FIRST_RUN + 12)}


def test_x_author_id_without_user_expansion(x_api):
    route = x_api.fake.route

    def route_without_includes(api: FakeApi, request: Request) -> Response:
        status, headers, body = route(api, request)
        payload = json.loads(body)
        payload.pop("includes", None)
        return status, headers, json.dumps(payload).encode()

    x_api.api.route = route_without_includes

    records = fetch_records(x_api.source())

    assert records[0]["author"] == str(900 + FIRST_RUN % 3)
    assert records[0]["url"] == f"https://x.com/i/web/status/{x_api.fake.tweet_id(FIRST_RUN)}"


def test_x_page_size_below_minimum_rejected(x_api):
    with pytest.raises(ValueError, match="page_size for x must be between 10 and 100"):
        x_api.source(page_size=5)


def test_x_partial_errors_logged(x_api, caplog):
    x_api.api.fail_at(1, json_response({
        "data": [x_api.fake.make_post(1)], "meta": {"result_count": 1, "newest_id": "1"},
        "errors": [{"detail": "Could not find user with ids: [901].", "title": "Not Found"}],
    }))
    caplog.set_level(logging.WARNING)

    fetch_records(x_api.source())

    assert "response reports 1 partial errors" in caplog.text


# Factory


@pytest.mark.parametrize(("spec", "kind", "fields"), [
    ("mastodon+https://mastodon.social/tags/python", MastodonSource,
     {"base_url": "https://mastodon.social", "hashtag": "python", "query": None}),
    ("mastodon+https://fosstodon.org/search?q=rust%20lang", MastodonSource,
     {"base_url": "https://fosstodon.org", "hashtag": None, "query": "rust lang"}),
    ("bluesky+https://public.api.bsky.app/search?q=word", BlueskySource,
     {"base_url": "https://public.api.bsky.app", "query": "word"}),
    ("reddit+https://www.reddit.com/r/python", RedditSource,
     {"base_url": "https://www.reddit.com", "subreddit": "python"}),
    ("reddit+https://oauth.reddit.com/r/learnpython/new/", RedditSource,
     {"base_url": "https://oauth.reddit.com", "subreddit": "learnpython"}),
    ("x+https://api.x.com/search?q=word+lang:en", XSource,
     {"base_url": "https://api.x.com", "query": "word lang:en"}),
])
def test_open_api_source_parses_spec(spec, kind, fields, tmp_path):
    source = open_api_source(spec, open_store(str(tmp_path)), token=TOKEN)

    assert type(source) is kind
    for name, value in fields.items():
        assert getattr(source, name) == value


@pytest.mark.parametrize(("spec", "problem"), [
    ("python", "expected <platform>+<URL>"),
    ("tumblr+https://tumblr.com/tagged/python", "expected <platform>+<URL>"),
    ("mastodon+mastodon.social/tags/python", "must be an http(s) URL"),
    ("mastodon+https://mastodon.social/@ann", "ends in /tags/<hashtag> or /search"),
    ("mastodon+https://mastodon.social/search", "non-empty q="),
    ("bluesky+https://public.api.bsky.app/profile/ann", "ends in /search"),
    ("reddit+https://www.reddit.com/user/ann", "ends in /r/<subreddit>"),
    ("x+https://api.x.com/search?q=", "non-empty q="),
])
def test_open_api_source_rejects_spec(spec, problem, tmp_path):
    with pytest.raises(ValueError, match="invalid API source spec") as raised:
        open_api_source(spec, open_store(str(tmp_path)), token=TOKEN)

    assert problem in str(raised.value)


def test_open_api_source_masks_secret_in_error(tmp_path):
    with pytest.raises(ValueError) as raised:
        open_api_source(f"x+https://api.x.com/recent?access_token={TOKEN}",
                        open_store(str(tmp_path)), token=TOKEN)

    assert TOKEN not in str(raised.value)


def test_default_names_distinct_per_feed(tmp_path):
    store = open_store(str(tmp_path))
    specs = ["x+https://api.x.com/search?q=a%20b", "x+https://api.x.com/search?q=a-b",
             "mastodon+https://mastodon.social/tags/python",
             "mastodon+https://mastodon.social/search?q=python"]

    names = [open_api_source(spec, store, token=TOKEN).name for spec in specs]

    assert len(set(names)) == len(names)
    assert names[2] == "mastodon-mastodon.social-tag-python"


def test_source_name_option_sets_watermark_key(tmp_path):
    source = open_api_source("reddit+https://www.reddit.com/r/python",
                             open_store(str(tmp_path)), name="reddit-python")

    assert source.name == "reddit-python"
    assert watermark_key(source.name) == "watermarks/reddit-python.json"


def test_invalid_source_name_rejected(tmp_path):
    with pytest.raises(ValueError, match="invalid source name"):
        open_api_source("reddit+https://www.reddit.com/r/python", open_store(str(tmp_path)),
                        name="../escape")


@pytest.mark.parametrize(("spec", "expected"), [
    ("x+https://api.x.com/search?q=a", True),
    ("Mastodon+https://mastodon.social/tags/a", True),
    ("sample", False),
    ("/data/posts+extra", False),
])
def test_is_api_spec(spec, expected):
    assert is_api_spec(spec) is expected


def test_corrupt_watermark_raises(tmp_path):
    store = open_store(str(tmp_path))
    source = open_api_source("reddit+https://www.reddit.com/r/python", store)
    store.write_bytes(watermark_key(source.name), b"{not json")

    with pytest.raises(ValueError, match="is not valid JSON.*delete it"):
        source.fetch(DAY)


# HTTP helpers


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0),
    (" 5 ", 5.0),
    (email.utils.formatdate(CLOCK_START + 90, usegmt=True), 90.0),
    (email.utils.formatdate(CLOCK_START - 90, usegmt=True), 0.0),
    ("soon", None),
    ("", None),
    (None, None),
])
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, CLOCK_START) == seconds


@pytest.mark.parametrize(("value", "seconds"), [
    (str(int(CLOCK_START) + 60), 60.0),  # epoch seconds (X, Bluesky)
    ("42.5", 42.5),  # seconds until the reset (Reddit)
    ("2024-03-01T13:34:40.000Z", 80.0),  # ISO 8601 (Mastodon)
    ("2024-03-01T13:34:40", 80.0),  # ISO 8601 without a zone counts as UTC
    (str(int(CLOCK_START) - 60), 0.0),  # a reset in the past
    ("tomorrow", None),
    (None, None),
])
def test_parse_reset(value, seconds):
    assert parse_reset(value, CLOCK_START) == seconds


def test_mask_url_secrets():
    text = "GET https://host/api?q=word&access_token=abc123&limit=5 failed"

    assert mask_url_secrets(text) == "GET https://host/api?q=word&access_token=***&limit=5 failed"

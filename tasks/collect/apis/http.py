"""HTTP client shared by the API sources: timeouts, retries, rate limits and JSON pages.

Every request has a connect and a read timeout. Connection errors, timeouts, HTTP 5xx and
HTTP 429 are retried up to ``max_retries`` times. A 429 (or a 5xx) waits for its
``Retry-After`` header when it has one, otherwise for the rate-limit reset, otherwise for an
exponential backoff with jitter. When a response reports that no requests remain in the
rate-limit window, the next request waits until the window resets. Every wait is capped at
``max_wait`` seconds, and sleeping and the clock are injectable so tests do not sleep.

The bearer token is sent only in the ``Authorization`` header. Log lines and error
messages replace it, and query parameters that look like secrets, with ``***``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

log = logging.getLogger(__name__)

# Header pairs (remaining, reset) in the order they are checked. Lookups ignore case, so
# the second pair covers Mastodon's X-RateLimit-* and Reddit's x-ratelimit-* alike.
RATE_LIMIT_HEADERS = (
    ("x-rate-limit-remaining", "x-rate-limit-reset"),  # X API v2: reset in epoch seconds
    ("x-ratelimit-remaining", "x-ratelimit-reset"),  # Mastodon: ISO 8601; Reddit: seconds left
    ("ratelimit-remaining", "ratelimit-reset"),  # Bluesky: reset in epoch seconds
)
# A numeric reset at or above this value is an epoch time (2001-09-09), below it a delay.
EPOCH_THRESHOLD = 1_000_000_000
# Query parameters whose values are masked wherever a URL appears in a message.
SECRET_PARAM = re.compile(
    r"(?i)\b(access_token|token|bearer_token|api_key|apikey|key|secret)=([^&\s#'\"]+)"
)
MASK = "***"


class ApiError(RuntimeError):
    """A request to a platform API failed and will not be retried."""


class MalformedPageError(ApiError):
    """A response page is not JSON or lacks the shape the platform documents."""


@dataclass(frozen=True)
class HttpOptions:
    """Timeouts, retry and wait limits of the HTTP client, in seconds unless noted."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    # Upper bound of one wait for Retry-After or a rate-limit reset.
    max_wait: float = 900.0
    user_agent: str = "social-pulse/0.1 (daily post collector)"
    sleep: Callable[[float], None] = time.sleep
    # Wall clock in epoch seconds, used to turn reset times into delays.
    clock: Callable[[], float] = time.time
    # Source of floats in [0, 1) that scale each backoff delay by 0.5 to 1.
    jitter: Callable[[], float] = random.random


@dataclass(frozen=True)
class Page:
    """One decoded JSON response."""

    payload: Any
    url: str  # the request URL with secrets masked, for messages
    links: dict[str, dict[str, str]]  # parsed Link header, keyed by rel
    headers: Mapping[str, str] = field(repr=False)


@dataclass
class ApiClient:
    """GET JSON pages for one source with the retry and rate-limit rules of this module."""

    source: str
    token: str | None = field(default=None, repr=False)
    options: HttpOptions = field(default_factory=HttpOptions)
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    _resume_at: float = field(default=0.0, init=False, repr=False)

    def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> Page:
        """Send a GET request, retrying transient failures, and return the decoded page.

        Raises ApiError when retries run out or the server rejects the request (4xx other
        than 429), and MalformedPageError when the body is not valid JSON.
        """
        failures = 0
        while True:
            self._wait_for_rate_limit()
            response, reason = self._send(url, params)
            if reason is None:
                return self._decode(response)
            failures += 1
            if failures > self.options.max_retries:
                raise ApiError(
                    f"source {self.source}: GET {self.mask(self._full_url(url, params))} failed "
                    f"after {self.options.max_retries} retries, last error: {reason}"
                )
            delay = self._retry_delay(response, failures)
            log.warning("source %s: retry %d/%d in %.1f s after %s", self.source, failures,
                        self.options.max_retries, delay, reason)
            self.options.sleep(delay)
            self._resume_at = 0.0  # the retry delay already covered any rate-limit wait

    def mask(self, text: str) -> str:
        """Return ``text`` with the token and secret query parameter values masked."""
        if self.token:
            text = text.replace(self.token, MASK)
        return mask_url_secrets(text)

    def _send(self, url: str, params: Mapping[str, Any] | None) -> tuple[Any, str | None]:
        """Send one request and return the response and the reason to retry, if any."""
        headers = {"Accept": "application/json", "User-Agent": self.options.user_agent}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        timeout = (self.options.connect_timeout, self.options.read_timeout)
        try:
            response = self.session.get(url, params=params, headers=headers, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as error:
            return None, self.mask(f"{type(error).__name__}: {error}")[:300]
        self._note_rate_limit(response.headers)
        if response.status_code == 429 or response.status_code >= 500:
            return response, f"HTTP {response.status_code} from {self.mask(response.url)}"
        if response.status_code >= 400:
            raise ApiError(self._rejection_message(response))
        return response, None

    def _rejection_message(self, response: requests.Response) -> str:
        hint = ""
        if response.status_code in (401, 403):
            hint = " Check the token and its scopes."
        body = " ".join(response.text.split())[:200]
        return (f"source {self.source}: GET {self.mask(response.url)} was rejected with HTTP "
                f"{response.status_code}: {self.mask(body)!r}.{hint}")

    def _decode(self, response: requests.Response) -> Page:
        url = self.mask(response.url)
        try:
            payload = response.json()
        except ValueError as error:
            raise MalformedPageError(
                f"source {self.source}: response from {url} is not valid JSON ({error}); "
                f"body starts with {self.mask(response.text[:80])!r}"
            ) from error
        return Page(payload=payload, url=url, links=dict(response.links), headers=response.headers)

    def _retry_delay(self, response: requests.Response | None, failures: int) -> float:
        """Return seconds to wait before retry number ``failures``."""
        if response is not None:
            wait = parse_retry_after(response.headers.get("Retry-After"), self.options.clock())
            if wait is None and response.status_code == 429:
                wait = rate_limit_wait(response.headers, self.options.clock())
            if wait is not None:
                return min(wait, self.options.max_wait)
        delay = min(self.options.backoff_max, self.options.backoff_base * 2 ** (failures - 1))
        return delay * (0.5 + 0.5 * self.options.jitter())

    def _note_rate_limit(self, headers: Mapping[str, str]) -> None:
        """Remember to wait for the window reset when no requests remain in it."""
        wait = rate_limit_wait(headers, self.options.clock())
        if wait is not None:
            self._resume_at = self.options.clock() + min(wait, self.options.max_wait)

    def _wait_for_rate_limit(self) -> None:
        wait = self._resume_at - self.options.clock()
        self._resume_at = 0.0
        if wait > 0:
            log.info("source %s: rate limit reached, waiting %.1f s for the reset", self.source,
                     wait)
            self.options.sleep(wait)

    @staticmethod
    def _full_url(url: str, params: Mapping[str, Any] | None) -> str:
        return f"{url}?{urlencode(params)}" if params else url


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Return seconds until the rate-limit window resets when no requests remain in it.

    Returns None while requests remain, and when no known header gives a usable reset.
    """
    for remaining_name, reset_name in RATE_LIMIT_HEADERS:
        remaining = headers.get(remaining_name)
        if remaining is None:
            continue
        try:
            exhausted = float(remaining) < 1  # Reddit sends a float such as "0.0"
        except ValueError:
            continue
        if not exhausted:
            return None
        return parse_reset(headers.get(reset_name), now)
    return None


def parse_reset(value: str | None, now: float) -> float | None:
    """Return seconds until a rate-limit reset given as epoch seconds, a delay or ISO 8601."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return max(0.0, moment.timestamp() - now)
    seconds = number - now if number >= EPOCH_THRESHOLD else number
    return max(0.0, seconds)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the delay in seconds that a ``Retry-After`` header (seconds or HTTP date) requests."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, moment.timestamp() - now)


def mask_url_secrets(text: str) -> str:
    """Mask the values of secret-looking query parameters in URLs inside ``text``."""
    return SECRET_PARAM.sub(rf"\1={MASK}", text)

"""Sources that fetch new posts from platform APIs: Mastodon, Bluesky, Reddit and X.

Each source returns one JSONL file per fetch. A line is one post with the fields that
``tasks.collect.records`` reads (``id``, ``text``, ``created_at``, ``author``, ``lang``)
plus ``platform`` and ``url``. Ids carry the platform as a prefix, such as
``mastodon:1123``. A post without text is still written, with ``text`` null, so the
raw_posts suite quarantines it.

Malformed responses: a page that is not JSON, or lacks the documented shape (for example
a Mastodon search without a ``statuses`` array), raises MalformedPageError. The message
names the source, the URL with secrets masked, and what was wrong, and the watermark
stays where it was. A single malformed item on an otherwise valid page (not an object,
no id, a field of the wrong type) does not fail the run. It is written as
``{"id": null, "text": null, "platform": ..., "malformed": <reason>, "item": <original>}``
and therefore quarantined.

Source specs for :func:`open_api_source` have the form ``<platform>+<URL>``:

- ``mastodon+https://mastodon.social/tags/python``: the hashtag timeline of #python.
- ``mastodon+https://mastodon.social/search?q=word``: a status search.
- ``bluesky+https://public.api.bsky.app/search?q=word``: ``app.bsky.feed.searchPosts``.
- ``reddit+https://www.reddit.com/r/python``: the ``new`` listing of r/python.
- ``x+https://api.x.com/search?q=word``: X API v2 recent search.

The scheme and host of the URL are the API's base URL, and ``http://`` is accepted for
local test servers. Query values are URL-encoded, with ``%20`` or ``+`` for a space.

Tokens are the ``token=`` option or, when it is absent, an environment variable:
PULSE_MASTODON_TOKEN, PULSE_BLUESKY_TOKEN, PULSE_REDDIT_TOKEN and PULSE_X_BEARER_TOKEN.
Only X requires one. The other options are ``name``, ``max_pages``, ``page_size`` and
``http``, an :class:`HttpOptions` with timeouts and retry limits. The name sets the
watermark key ``watermarks/<name>.json``, and by default it is derived from the spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tasks.collect.apis.base import ApiSource, MalformedItemError
from tasks.collect.apis.bluesky import BlueskySource
from tasks.collect.apis.http import ApiError, HttpOptions, MalformedPageError, mask_url_secrets
from tasks.collect.apis.mastodon import MastodonSource
from tasks.collect.apis.reddit import RedditSource
from tasks.collect.apis.x import XSource
from tasks.storage import Store

__all__ = [
    "ApiError", "ApiSource", "BlueskySource", "HttpOptions", "MalformedItemError",
    "MalformedPageError", "MastodonSource", "RedditSource", "XSource", "is_api_spec",
    "open_api_source",
]

Builder = Callable[[str, str, str, dict[str, str], Store, dict[str, Any]], ApiSource]


def open_api_source(spec: str, store: Store, **options: Any) -> ApiSource:
    """Return the API source that ``spec`` names; ``options`` go to its constructor.

    Raises ValueError naming the spec and the expected form when it cannot be parsed.
    """
    platform, plus, url = spec.partition("+")
    builder = BUILDERS.get(platform.lower())
    if not plus or builder is None:
        raise invalid_spec(spec, f"expected <platform>+<URL> with a platform one of "
                                 f"{', '.join(BUILDERS)}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_spec(spec, "the part after '+' must be an http(s) URL with a host")
    base_url = f"{parts.scheme}://{parts.netloc}"
    query = dict(parse_qsl(parts.query))
    return builder(spec, base_url, parts.path.rstrip("/"), query, store, options)


def is_api_spec(spec: str) -> bool:
    """Tell whether ``spec`` names an API source rather than 'sample' or a path."""
    platform, plus, _ = spec.partition("+")
    return bool(plus) and platform.lower() in BUILDERS


def invalid_spec(spec: str, problem: str) -> ValueError:
    return ValueError(f"invalid API source spec {mask_url_secrets(spec)!r}: {problem}")


def require_query(spec: str, query: dict[str, str]) -> str:
    words = query.get("q", "").strip()
    if not words:
        raise invalid_spec(spec, "a search spec needs a non-empty q= parameter")
    return words


def open_mastodon(spec: str, base_url: str, path: str, query: dict[str, str], store: Store,
                  options: dict[str, Any]) -> ApiSource:
    match = re.fullmatch(r"/tags/([^/]+)", path)
    if match:
        return MastodonSource(store=store, base_url=base_url, hashtag=unquote(match[1]), **options)
    if path == "/search":
        return MastodonSource(store=store, base_url=base_url, query=require_query(spec, query),
                              **options)
    raise invalid_spec(spec, "a Mastodon URL ends in /tags/<hashtag> or /search?q=<words>")


def open_bluesky(spec: str, base_url: str, path: str, query: dict[str, str], store: Store,
                 options: dict[str, Any]) -> ApiSource:
    if path != "/search":
        raise invalid_spec(spec, "a Bluesky URL ends in /search?q=<words>")
    return BlueskySource(store=store, base_url=base_url, query=require_query(spec, query),
                         **options)


def open_reddit(spec: str, base_url: str, path: str, query: dict[str, str], store: Store,
                options: dict[str, Any]) -> ApiSource:
    match = re.fullmatch(r"/r/([A-Za-z0-9_]+)(?:/new)?", path)
    if not match:
        raise invalid_spec(spec, "a Reddit URL ends in /r/<subreddit>")
    return RedditSource(store=store, base_url=base_url, subreddit=match[1], **options)


def open_x(spec: str, base_url: str, path: str, query: dict[str, str], store: Store,
           options: dict[str, Any]) -> ApiSource:
    if path != "/search":
        raise invalid_spec(spec, "an X URL ends in /search?q=<query>")
    return XSource(store=store, base_url=base_url, query=require_query(spec, query), **options)


BUILDERS: dict[str, Builder] = {
    "mastodon": open_mastodon, "bluesky": open_bluesky, "reddit": open_reddit, "x": open_x,
}

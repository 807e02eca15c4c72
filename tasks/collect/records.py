"""Split raw files into records and parse records into posts.

A record keeps its original text and its line number, so a quarantined record can be
traced to the line it came from. Nothing is dropped here: a record that cannot be decoded
or parsed becomes a post row with ``parse_error`` set, which the raw_posts suite rejects.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from pathlib import PurePath
from typing import Any

import pandas as pd

from tasks.collect.sources import RawFile

log = logging.getLogger(__name__)

RAW_COLUMNS = ["source", "line", "raw", "decode_error"]
POST_COLUMNS = ["id", "text", "created_at", "author", "lang", "source", "line", "parse_error", "extra"]
# Field names platforms use for the post text and id, in order of preference.
TEXT_FIELDS = ("text", "full_text", "content", "body")
ID_FIELDS = ("id", "id_str", "post_id")
KNOWN_FIELDS = set(TEXT_FIELDS) | set(ID_FIELDS) | {"created_at", "author", "lang"}


def split_records(raw_file: RawFile) -> list[dict[str, Any]]:
    """Split ``raw_file`` into records: source, line (1-based), raw text, decode_error."""
    if raw_file.format == "csv":
        return _split_csv(raw_file)
    records = []
    for number, line in enumerate(raw_file.data.split(b"\n"), start=1):
        if not line.strip():
            continue
        text, error = _decode(line)
        records.append({"source": raw_file.name, "line": number, "raw": text, "decode_error": error})
    return records


def _decode(data: bytes) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8").removeprefix("\ufeff").rstrip("\r"), None
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="backslashreplace")
        return text, f"bytes at offset {error.start} are not valid UTF-8"


def _split_csv(raw_file: RawFile) -> list[dict[str, Any]]:
    text = raw_file.data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records: list[dict[str, Any]] = []
    if reader.fieldnames is None:  # reads the header row, so line_num now counts it
        return records
    line = reader.line_num + 1
    for row in reader:
        raw = json.dumps(row, ensure_ascii=False, default=str)
        error = None
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            raw = raw.encode("utf-8", errors="surrogateescape").decode("utf-8", "backslashreplace")
            error = "bytes in this row are not valid UTF-8"
        records.append({"source": raw_file.name, "line": line, "raw": raw, "decode_error": error})
        line = reader.line_num + 1
    return records


def parse_posts(raw: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Parse raw records into one post row per record; failures set ``parse_error``."""
    rows = [_parse_record(record, day) for record in raw.to_dict("records")]
    return pd.DataFrame(rows, columns=POST_COLUMNS)


def _parse_record(record: dict[str, Any], day: dt.date) -> dict[str, Any]:
    post: dict[str, Any] = {key: None for key in POST_COLUMNS}
    post.update(source=record["source"], line=int(record["line"]))
    if isinstance(record.get("decode_error"), str):
        post["parse_error"] = record["decode_error"]
        return post
    try:
        fields = json.loads(record["raw"])
    except json.JSONDecodeError as error:
        post["parse_error"] = f"invalid JSON: {error.msg} at column {error.colno}"
        return post
    if not isinstance(fields, dict):
        post["parse_error"] = f"expected a JSON object, got {type(fields).__name__}"
        return post

    text = next((fields[name] for name in TEXT_FIELDS if fields.get(name) is not None), None)
    post_id = next((fields[name] for name in ID_FIELDS if fields.get(name) not in (None, "")), None)
    post["text"] = None if text is None else str(text)
    post["id"] = str(post_id) if post_id is not None else _default_id(record)
    post["created_at"] = _to_utc(fields.get("created_at"), day)
    post["author"] = None if fields.get("author") is None else str(fields["author"])
    post["lang"] = fields.get("lang")
    extra = {k: v for k, v in fields.items() if k not in KNOWN_FIELDS}
    post["extra"] = json.dumps(extra, ensure_ascii=False, default=str) if extra else None
    return post


def _default_id(record: dict[str, Any]) -> str:
    """Derive a stable id from the source name and line for posts that have none."""
    return f"{PurePath(record['source']).stem}-{record['line']}"


def _to_utc(value: Any, day: dt.date) -> str | None:
    """Return ``value`` as ISO-8601 UTC; the day's midnight when absent; unparseable as is.

    Numbers are Unix epoch seconds, or milliseconds when above 1e11 (after year 5138 in
    seconds). Text without a digit, such as "now", is not a timestamp and is kept as is.
    """
    if value in (None, ""):
        return f"{day.isoformat()}T00:00:00Z"
    if isinstance(value, bool) or (isinstance(value, str) and not any(c.isdigit() for c in value)):
        return str(value)
    try:
        if isinstance(value, (int, float)):
            stamp = pd.Timestamp(value, unit="ms" if abs(value) > 1e11 else "s")
        else:
            stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return str(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

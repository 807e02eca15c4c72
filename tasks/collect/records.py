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
import re
from pathlib import PurePath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.collect import formats
from tasks.collect.sources import RawFile

log = logging.getLogger(__name__)

RAW_COLUMNS = ["source", "line", "raw", "decode_error", "note"]
POST_COLUMNS = ["id", "text", "created_at", "author", "lang", "source", "line", "parse_error", "extra"]
# Field names platforms use for the post text and id, in order of preference.
TEXT_FIELDS = ("text", "full_text", "content", "body")
ID_FIELDS = ("id", "id_str", "post_id")
KNOWN_FIELDS = set(TEXT_FIELDS) | set(ID_FIELDS) | {"created_at", "author", "lang"}
# Epoch times above these limits are in ns, us or ms rather than seconds: 1e11 seconds is
# in the year 5138, and 1e14 ms and 1e17 us are in the same year.
EPOCH_UNITS = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"))
# Digits only, 9 or more: an epoch time after March 1973. Eight digits are a date (20240301).
EPOCH_TEXT = re.compile(r"[+-]?\d{9,}(\.\d+)?")
# The csv module rejects fields over 128 KiB by default. Posts are limited by the raw_posts
# suite, which reports them, so the reader accepts any field that fits in memory.
csv.field_size_limit(2**31 - 1)


def split_records(raw_file: RawFile) -> list[dict[str, Any]]:
    """Split ``raw_file`` into records: source, line, raw text, decode_error and note.

    The file may be gzipped and in any encoding ``formats.decode`` detects. ``line`` is the
    1-based line of a JSONL record, the first line of a CSV row, or a Parquet row number.
    NUL characters are removed and counted in ``note``. A truncated gzip stream keeps its
    complete lines and adds one last record whose ``decode_error`` names the file.
    """
    data, stream_error = formats.decompress(raw_file.data)
    if raw_file.format == "parquet":
        return _split_parquet(raw_file.name, data, stream_error)

    decoded = formats.decode(data, truncated=stream_error is not None)
    partial = ""
    if stream_error:
        complete_lines, newline, partial = decoded.text.rpartition("\n")
        decoded = formats.DecodedText(complete_lines + newline, decoded.encoding)
    if raw_file.format == "csv":
        # A strict reader rejects a quoted field cut off by the truncation.
        records = _split_csv(raw_file.name, decoded, strict=stream_error is not None)
    else:
        records = _split_lines(raw_file.name, decoded)
    if stream_error:
        line = decoded.text.count("\n") + 1
        records.append(_stream_error_record(raw_file.name, line, partial, stream_error))
    return records


def _record(source: str, line: int, raw: str, error: str | None = None,
            note: str | None = None) -> dict[str, Any]:
    return {"source": source, "line": line, "raw": raw, "decode_error": error, "note": note}


def _stream_error_record(source: str, line: int, partial: str, error: str) -> dict[str, Any]:
    message = f"{source}: {error}, so line {line} and any later lines are missing or incomplete"
    return _record(source, line, formats.escape_undecodable(partial), message)


def _remove_nuls(text: str) -> tuple[str, str | None]:
    count = text.count("\x00")
    if not count:
        return text, None
    return text.replace("\x00", ""), _nul_note(count)


def _nul_note(count: int) -> str | None:
    return f"removed {count} NUL characters" if count else None


def _remove_nuls_in(value: Any) -> tuple[Any, int]:
    """Return ``value`` with NULs removed from every string in it, and how many were removed.

    Rows are cleaned before ``json.dumps``, which would write a NUL as the escape \\u0000.
    """
    if isinstance(value, str):
        return value.replace("\x00", ""), value.count("\x00")
    if isinstance(value, list):
        pairs = [_remove_nuls_in(item) for item in value]
        return [item for item, _ in pairs], sum(count for _, count in pairs)
    if isinstance(value, dict):
        pairs = {key: _remove_nuls_in(item) for key, item in value.items()}
        return ({key: item for key, (item, _) in pairs.items()},
                sum(count for _, count in pairs.values()))
    return value, 0


def _split_lines(source: str, decoded: formats.DecodedText) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(decoded.text.split("\n"), start=1):
        line = line.removeprefix("\ufeff").rstrip("\r")
        offset = formats.undecodable_offset(line, decoded.encoding)
        line, note = _remove_nuls(line)
        if not line.strip():
            continue
        error = None
        if offset is not None:
            error = f"bytes at offset {offset} are not valid {decoded.encoding_name}"
        records.append(_record(source, number, formats.escape_undecodable(line), error, note))
    return records


def _split_csv(source: str, decoded: formats.DecodedText, strict: bool = False
               ) -> list[dict[str, Any]]:
    text = decoded.text.removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=strict)
    records: list[dict[str, Any]] = []
    line = 1
    try:
        if reader.fieldnames is None:  # reads the header row, so line_num now counts it
            return records
        line = reader.line_num + 1
        for row in reader:
            record = _csv_record(source, line, row, decoded.encoding_name)
            if record is not None:
                records.append(record)
            line = reader.line_num + 1
    except csv.Error as error:
        message = f"invalid CSV: {error}. This row and the rest of the file were not read"
        records.append(_record(source, line, "", message))
    return records


def _csv_record(source: str, line: int, row: dict[Any, Any], encoding_name: str
                ) -> dict[str, Any] | None:
    """Return the record for one CSV row, or None for a row that contained only NULs."""
    row, nuls = _remove_nuls_in(row)
    if nuls and not any(_has_text(value) for value in row.values()):
        return None
    extra_fields = row.pop(None, None)
    raw = json.dumps(row if not extra_fields else {**row, "_extra_fields": extra_fields},
                     ensure_ascii=False, default=str)
    error = None
    if extra_fields:
        # DictReader puts fields beyond the header under the key None: usually an unquoted
        # comma inside the text, so the row cannot be trusted.
        error = (f"row has {len(extra_fields)} more fields than the header; quote fields that "
                 f"contain commas")
    if formats.undecodable_offset(raw, "utf-8") is not None:
        raw = formats.escape_undecodable(raw)
        error = f"bytes in this row are not valid {encoding_name}"
    return _record(source, line, raw, error, _nul_note(nuls))


def _has_text(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_text(item) for item in value)
    return value is not None and str(value).strip() != ""


def _split_parquet(source: str, data: bytes, stream_error: str | None) -> list[dict[str, Any]]:
    """Return one record per Parquet row, or one error record when the file cannot be read."""
    if stream_error:
        return [_record(source, 1, "", f"{source}: {stream_error}, so the Parquet file was not read")]
    if not data:
        return []
    try:
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
    except (pa.ArrowException, OSError) as error:
        log.warning("cannot read Parquet file %s: %s", source, error)
        return [_record(source, 1, "", f"{source}: invalid Parquet file ({error})")]
    records = []
    for number, row in enumerate(rows, start=1):
        row, nuls = _remove_nuls_in(row)
        raw = json.dumps(row, ensure_ascii=False, default=str)
        records.append(_record(source, number, raw, None, _nul_note(nuls)))
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
    """Derive a stable id from the source name and line for posts that have none.

    The name keeps its folders, so files of the same name in two S3 folders differ, and
    loses its format suffix and any '.gz': 'in/feed.jsonl.gz' line 3 becomes 'in/feed-3'.
    """
    name = PurePath(str(record["source"]).removesuffix(".gz").removesuffix(".GZ"))
    return f"{name.with_suffix('').as_posix()}-{record['line']}"


def _to_utc(value: Any, day: dt.date) -> str | None:
    """Return ``value`` as ISO-8601 UTC; the day's midnight when absent; unparseable as is.

    Text is read by pandas: ISO 8601 with 'Z' or an offset, RFC 2822, and the Twitter v1
    form 'Wed Oct 10 20:19:24 +0000 2018'. Times without a zone are taken as UTC. Numbers,
    and text of 9 or more digits, are Unix epoch times (see ``EPOCH_UNITS``). Text without a
    digit, such as "now", is not a timestamp and is kept as is.
    """
    if value in (None, ""):
        return f"{day.isoformat()}T00:00:00Z"
    if isinstance(value, bool) or (isinstance(value, str) and not any(c.isdigit() for c in value)):
        return str(value)
    try:
        stamp = _to_timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return str(value)
    if pd.isna(stamp):
        return str(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_timestamp(value: Any) -> pd.Timestamp:
    if isinstance(value, str) and EPOCH_TEXT.fullmatch(value.strip()):
        value = float(value) if "." in value else int(value)
    if isinstance(value, (int, float)):
        unit = next((unit for limit, unit in EPOCH_UNITS if abs(value) > limit), "s")
        return pd.Timestamp(value, unit=unit)
    return pd.Timestamp(value)

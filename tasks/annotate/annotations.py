"""Read finished annotation files of every supported format into annotation rows.

The file name's suffix sets the format. ``.json`` is a Label Studio export, ``.jsonl`` a
doccano or plain JSONL export, and ``.csv`` a plain CSV with text and label. ``.conll`` is
a CoNLL file of entity tags, and ``.zip`` a doccano export archive with one JSONL file per
user.
When a record names no annotator, the file name without its suffix stands in, which is
how doccano names its per-user files.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from tasks.annotate.formats import ANNOTATION_COLUMNS, SENTIMENT, annotation_row
from tasks.annotate.formats.conll import read_conll_export
from tasks.annotate.formats.doccano import read_lines
from tasks.annotate.formats.label_studio import read_export

ANNOTATION_SUFFIXES = {".json", ".jsonl", ".csv", ".conll", ".zip"}  # compared in lower case


def read_annotation_file(path: Path, post_texts: Mapping[str, str]) -> pd.DataFrame:
    """Return the annotation rows of one finished file, with a ``source_file`` column.

    ``post_texts`` maps exported post ids to their text, which CoNLL files need to
    place spans. Raises ValueError when the file is not valid UTF-8 or not of its format.
    """
    if path.suffix.lower() == ".zip":
        frames = [_rows_frame(rows, f"{path.name}:{name}") for name, rows in
                  _zip_rows(path, post_texts)]
        return pd.concat(frames, ignore_index=True) if frames else _rows_frame([], path.name)
    text = decode_label_file(path.read_bytes(), str(path))
    return _rows_frame(_read_text(path.name, text, post_texts), path.name)


def _rows_frame(rows: list[dict[str, Any]], source: str) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ANNOTATION_COLUMNS).assign(source_file=source)


def _zip_rows(path: Path, post_texts: Mapping[str, str]) -> list[tuple[str, list[dict[str, Any]]]]:
    found = []
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            member = PurePosixPath(name)
            if member.suffix.lower() not in ANNOTATION_SUFFIXES - {".zip"}:
                continue
            text = decode_label_file(archive.read(name), f"{path}:{name}")
            found.append((name, _read_text(member.name, text, post_texts)))
    return found


def _read_text(name: str, text: str, post_texts: Mapping[str, str]) -> list[dict[str, Any]]:
    suffix, annotator = PurePosixPath(name).suffix.lower(), PurePosixPath(name).stem
    if suffix == ".json":
        try:
            return read_export(json.loads(text), annotator)
        except (json.JSONDecodeError, ValueError) as error:
            raise ValueError(f"{name} is not a Label Studio JSON export (a list of tasks): "
                             f"{error}") from error
    if suffix == ".csv":
        return [annotation_row(row.pop("line"), task=SENTIMENT,
                               **{**row, "annotator": row["annotator"] or annotator})
                for row in csv_rows(text)]
    if suffix == ".conll":
        return read_conll_export(text, annotator, post_texts)
    return read_lines(text, annotator)


def decode_label_file(data: bytes, name: str) -> str:
    """Decode a label file as UTF-8, with or without a byte order mark."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{name} is not valid UTF-8 (byte {error.start}): re-encode it as "
                         f"UTF-8") from error


def csv_rows(text: str) -> list[dict[str, Any]]:
    """Rows of a CSV label file, each numbered by the line it starts on."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[dict[str, Any]] = []
    if reader.fieldnames is None:
        return rows
    start = reader.line_num + 1
    for record in reader:
        rows.append(plain_row(record, start))
        start = reader.line_num + 1
    return rows


def plain_row(record: dict[str, Any], line: int) -> dict[str, Any]:
    """Return text, label, post id, annotator, time and line of a plain JSONL or CSV record."""
    return {"text": record.get("text"), "label": record.get("label"),
            "post_id": record.get("id") or record.get("post_id"),
            "annotator": record.get("annotator"), "annotated_at": record.get("annotated_at"),
            "line": line}

"""Tests for splitting raw files into records and parsing them into posts."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd
import pytest

from tasks.collect.records import POST_COLUMNS, RAW_COLUMNS, parse_posts, split_records
from tasks.collect.sources import FolderSource, RawFile, SampleSource, open_source

DAY = dt.date(2024, 3, 1)


def jsonl_file(data: bytes, name: str = "posts.jsonl") -> RawFile:
    return RawFile(name, "jsonl", data)


def csv_file(data: bytes, name: str = "posts.csv") -> RawFile:
    return RawFile(name, "csv", data)


def parse_one(fields: dict, name: str = "posts.jsonl") -> dict:
    """Parse one JSON object written as a one-line JSONL file and return its post row."""
    records = split_records(jsonl_file(json.dumps(fields).encode(), name))
    posts = parse_posts(pd.DataFrame(records), DAY)
    assert len(posts) == 1
    return posts.iloc[0].to_dict()


# split_records: JSONL


def test_split_jsonl_record_columns():
    records = split_records(jsonl_file(b'{"id": "1", "text": "hi"}\n'))

    assert len(records) == 1
    assert list(records[0]) == RAW_COLUMNS
    assert records[0]["source"] == "posts.jsonl"
    assert records[0]["line"] == 1
    assert records[0]["raw"] == '{"id": "1", "text": "hi"}'
    assert records[0]["decode_error"] is None


def test_split_jsonl_blank_lines_keep_numbers():
    data = b'{"id": "a"}\n\n   \n{"id": "b"}\n\n'

    records = split_records(jsonl_file(data))

    assert [r["line"] for r in records] == [1, 4]
    assert [r["raw"] for r in records] == ['{"id": "a"}', '{"id": "b"}']


def test_split_jsonl_no_trailing_newline():
    records = split_records(jsonl_file(b'{"id": "a"}\n{"id": "b"}'))

    assert [r["line"] for r in records] == [1, 2]


def test_split_jsonl_crlf_line_endings():
    data = b'{"id": "a"}\r\n\r\n{"id": "b"}\r\n'

    records = split_records(jsonl_file(data))

    assert [r["line"] for r in records] == [1, 3]
    assert [r["raw"] for r in records] == ['{"id": "a"}', '{"id": "b"}']


def test_split_jsonl_utf8_bom_removed():
    data = '\ufeff{"id": "a", "text": "café"}\n'.encode()

    records = split_records(jsonl_file(data))

    assert records[0]["raw"] == '{"id": "a", "text": "café"}'
    assert records[0]["decode_error"] is None


def test_split_jsonl_invalid_utf8_line():
    data = b'{"id": "a"}\n{"text": "caf\xe9"}\n{"id": "c"}\n'

    records = split_records(jsonl_file(data))

    assert [r["line"] for r in records] == [1, 2, 3]
    bad = records[1]
    assert bad["decode_error"] == "bytes at offset 13 are not valid UTF-8"
    assert bad["raw"] == '{"text": "caf\\xe9"}'
    assert records[0]["decode_error"] is None
    assert records[2]["decode_error"] is None


def test_split_jsonl_keeps_non_ascii_text():
    data = '{"text": "好棒 😍"}\n'.encode()

    records = split_records(jsonl_file(data))

    assert records[0]["raw"] == '{"text": "好棒 😍"}'


# split_records: CSV


def test_split_csv_rows_as_json():
    data = b"id,text,author\n1,hello,ann\n2,bye,bob\n"

    records = split_records(csv_file(data))

    assert len(records) == 2
    assert json.loads(records[0]["raw"]) == {"id": "1", "text": "hello", "author": "ann"}
    assert json.loads(records[1]["raw"]) == {"id": "2", "text": "bye", "author": "bob"}
    assert all(r["source"] == "posts.csv" for r in records)
    assert all(r["decode_error"] is None for r in records)


def test_split_csv_quoted_newline_line_numbers():
    # Line 1 is the header. The first row spans lines 2-3, so the next starts on line 4.
    data = b'id,text\n1,"hello\nworld"\n2,plain\n3,"a\r\nb"\n4,last\n'

    records = split_records(csv_file(data))

    assert json.loads(records[1]["raw"])["text"] == "plain"
    assert records[1]["line"] == 4
    assert records[2]["line"] == 5
    assert records[3]["line"] == 7
    assert json.loads(records[0]["raw"])["text"] == "hello\nworld"


def test_split_csv_first_row_line():
    data = b"id,text\n1,hello\n2,bye\n"

    records = split_records(csv_file(data))

    assert [r["line"] for r in records] == [2, 3]


def test_split_csv_crlf_and_bom():
    data = b"\xef\xbb\xbfid,text\r\n1,hello\r\n2,bye\r\n"

    records = split_records(csv_file(data))

    assert list(json.loads(records[0]["raw"])) == ["id", "text"]
    assert json.loads(records[0]["raw"])["text"] == "hello"
    assert json.loads(records[1]["raw"])["text"] == "bye"


def test_split_csv_invalid_utf8_row():
    data = b"id,text\n1,good\n2,caf\xe9\n3,fine\n"

    records = split_records(csv_file(data))

    assert len(records) == 3
    assert records[1]["decode_error"] == "bytes in this row are not valid UTF-8"
    assert "caf\\xe9" in records[1]["raw"]
    assert records[0]["decode_error"] is None
    assert records[2]["decode_error"] is None
    assert records[2]["line"] == 4


# parse_posts


def test_parse_posts_columns_and_fields():
    post = parse_one({"id": "p1", "text": "hello", "author": "ann", "lang": "en",
                      "created_at": "2024-03-01T10:00:00Z"})

    assert list(post) == POST_COLUMNS
    assert post["id"] == "p1"
    assert post["text"] == "hello"
    assert post["author"] == "ann"
    assert post["lang"] == "en"
    assert post["created_at"] == "2024-03-01T10:00:00Z"
    assert post["source"] == "posts.jsonl"
    assert post["line"] == 1
    assert pd.isna(post["parse_error"])
    assert pd.isna(post["extra"])


def test_parse_posts_invalid_json():
    records = split_records(jsonl_file(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": \n'))

    posts = parse_posts(pd.DataFrame(records), DAY)

    bad = posts.iloc[1]
    assert bad["line"] == 2
    assert bad["parse_error"].startswith("invalid JSON: ")
    assert "at column" in bad["parse_error"]
    assert pd.isna(bad["text"])
    assert pd.isna(posts.iloc[0]["parse_error"])


def test_parse_posts_decode_error_carried():
    records = split_records(jsonl_file(b'{"text": "caf\xe9"}\n'))

    posts = parse_posts(pd.DataFrame(records), DAY)

    assert posts.iloc[0]["parse_error"] == "bytes at offset 13 are not valid UTF-8"
    assert pd.isna(posts.iloc[0]["text"])


@pytest.mark.parametrize(("line", "kind"), [
    (b'["a", "b"]', "list"),
    (b'"just text"', "str"),
    (b"42", "int"),
    (b"null", "NoneType"),
])
def test_parse_posts_non_object_json(line, kind):
    posts = parse_posts(pd.DataFrame(split_records(jsonl_file(line + b"\n"))), DAY)

    assert posts.iloc[0]["parse_error"] == f"expected a JSON object, got {kind}"


def test_parse_posts_csv_quoted_newline():
    data = b'id,text\n1,"two\nlines"\n2,one\n'

    posts = parse_posts(pd.DataFrame(split_records(csv_file(data))), DAY)

    assert list(posts["text"]) == ["two\nlines", "one"]
    assert list(posts["id"]) == ["1", "2"]
    assert posts.iloc[1]["line"] == 4


def test_parse_posts_csv_invalid_utf8():
    data = b"id,text\n1,caf\xe9\n"

    posts = parse_posts(pd.DataFrame(split_records(csv_file(data))), DAY)

    assert posts.iloc[0]["parse_error"] == "bytes in this row are not valid UTF-8"


def test_parse_posts_missing_id_derived():
    data = b'{"text": "a"}\n\n{"text": "b"}\n'
    records = split_records(jsonl_file(data, name="feed-2024.jsonl"))

    first = parse_posts(pd.DataFrame(records), DAY)
    second = parse_posts(pd.DataFrame(records), DAY)

    assert list(first["id"]) == ["feed-2024-1", "feed-2024-3"]
    assert list(second["id"]) == list(first["id"])


@pytest.mark.parametrize("empty_id", [None, ""])
def test_parse_posts_empty_id_derived(empty_id):
    post = parse_one({"id": empty_id, "text": "a"})

    assert post["id"] == "posts-1"


@pytest.mark.parametrize(("field", "value"), [
    ("id", 123),
    ("id_str", "123"),
    ("post_id", "123"),
])
def test_parse_posts_id_aliases(field, value):
    post = parse_one({field: value, "text": "a"})

    assert post["id"] == "123"


def test_parse_posts_id_preference():
    post = parse_one({"post_id": "third", "id_str": "second", "id": "first", "text": "a"})

    assert post["id"] == "first"


@pytest.mark.parametrize("field", ["full_text", "content", "body"])
def test_parse_posts_text_aliases(field):
    post = parse_one({"id": "1", field: "aliased"})

    assert post["text"] == "aliased"
    assert pd.isna(post["extra"])


def test_parse_posts_text_preference():
    post = parse_one({"id": "1", "content": "third", "full_text": "second", "text": "first"})

    assert post["text"] == "first"


def test_parse_posts_null_text_falls_back():
    post = parse_one({"id": "1", "text": None, "full_text": "fallback"})

    assert post["text"] == "fallback"


def test_parse_posts_missing_text_none():
    post = parse_one({"id": "1", "author": "ann"})

    assert post["text"] is None
    assert pd.isna(post["parse_error"])


def test_parse_posts_extra_fields_json():
    post = parse_one({"id": "1", "text": "a", "likes": 3, "place": {"city": "北京"}})

    assert json.loads(post["extra"]) == {"likes": 3, "place": {"city": "北京"}}
    assert "北京" in post["extra"]


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z"),
    ("2024-03-01T10:00:00+08:00", "2024-03-01T02:00:00Z"),
    ("2024-02-29T22:30:00-05:00", "2024-03-01T03:30:00Z"),
    ("2024-03-01T10:00:00.999Z", "2024-03-01T10:00:00Z"),
    ("2024-03-01 10:00:00", "2024-03-01T10:00:00Z"),
    ("2024-03-01", "2024-03-01T00:00:00Z"),
    ("Wed Oct 10 20:19:24 +0000 2018", "2018-10-10T20:19:24Z"),
    ("Fri, 01 Mar 2024 10:00:00 +0100", "2024-03-01T09:00:00Z"),
])
def test_parse_posts_created_at_utc(value, expected):
    post = parse_one({"id": "1", "text": "a", "created_at": value})

    assert post["created_at"] == expected


@pytest.mark.parametrize("value", [None, ""])
def test_parse_posts_created_at_missing(value):
    post = parse_one({"id": "1", "text": "a", "created_at": value})

    assert post["created_at"] == "2024-03-01T00:00:00Z"


@pytest.mark.parametrize("value", ["yesterday", "31/02/2024", "2024-13-45T99:00:00Z"])
def test_parse_posts_created_at_unparseable(value):
    post = parse_one({"id": "1", "text": "a", "created_at": value})

    assert post["created_at"] == value


def test_parse_posts_created_at_epoch():
    post = parse_one({"id": "1", "text": "a", "created_at": 1709287200})

    assert post["created_at"] == "2024-03-01T10:00:00Z"


def test_parse_posts_created_at_now_text():
    post = parse_one({"id": "1", "text": "a", "created_at": "now"})

    assert post["created_at"] == "now"


def test_parse_posts_empty_frame():
    posts = parse_posts(pd.DataFrame(columns=RAW_COLUMNS), DAY)

    assert list(posts.columns) == POST_COLUMNS
    assert posts.empty


# RawFile, FolderSource, open_source


def test_raw_file_frozen():
    raw = RawFile("a.jsonl", "jsonl", b"{}")

    with pytest.raises(AttributeError):
        raw.name = "b.jsonl"


def test_folder_source_reads_date_subfolder(tmp_path):
    (tmp_path / "top.jsonl").write_bytes(b'{"id": "top"}\n')
    dated = tmp_path / "date=2024-03-01"
    dated.mkdir()
    (dated / "b.csv").write_bytes(b"id\n1\n")
    (dated / "a.jsonl").write_bytes(b'{"id": "a"}\n')

    files = FolderSource(tmp_path).fetch(DAY)

    assert [f.name for f in files] == ["a.jsonl", "b.csv"]
    assert [f.format for f in files] == ["jsonl", "csv"]
    assert files[0].data == b'{"id": "a"}\n'


def test_folder_source_without_date_subfolder(tmp_path):
    (tmp_path / "top.jsonl").write_bytes(b'{"id": "top"}\n')
    (tmp_path / "date=2024-03-01").mkdir()

    files = FolderSource(tmp_path).fetch(dt.date(2024, 3, 2))

    assert [f.name for f in files] == ["top.jsonl"]


def test_folder_source_suffix_formats(tmp_path):
    for name in ["a.ndjson", "b.json", "c.CSV", "d.JSONL"]:
        (tmp_path / name).write_bytes(b"")

    files = FolderSource(tmp_path).fetch(DAY)

    assert {f.name: f.format for f in files} == {
        "a.ndjson": "jsonl", "b.json": "jsonl", "c.CSV": "csv", "d.JSONL": "jsonl",
    }


def test_folder_source_skips_unsupported(tmp_path, caplog):
    (tmp_path / "posts.jsonl").write_bytes(b"{}\n")
    (tmp_path / "notes.txt").write_bytes(b"not posts")
    (tmp_path / "dump.parquet").write_bytes(b"PAR1")

    with caplog.at_level(logging.WARNING, logger="tasks.collect.sources"):
        files = FolderSource(tmp_path).fetch(DAY)

    assert [f.name for f in files] == ["posts.jsonl"]
    assert "notes.txt" in caplog.text
    assert "dump.parquet" in caplog.text


def test_folder_source_single_file(tmp_path):
    path = tmp_path / "one.csv"
    path.write_bytes(b"id,text\n1,a\n")

    files = FolderSource(path).fetch(DAY)

    assert files == [RawFile("one.csv", "csv", b"id,text\n1,a\n")]


def test_folder_source_single_unsupported_file(tmp_path):
    path = tmp_path / "one.txt"
    path.write_bytes(b"text")

    assert FolderSource(path).fetch(DAY) == []


def test_folder_source_empty_folder_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tasks.collect.sources"):
        files = FolderSource(tmp_path).fetch(DAY)

    assert files == []
    assert "no JSONL or CSV files" in caplog.text


def test_folder_source_missing_path(tmp_path):
    missing = tmp_path / "absent"

    with pytest.raises(FileNotFoundError, match="absent"):
        FolderSource(missing).fetch(DAY)


def test_open_source_sample():
    source = open_source("sample", sample_size=7)

    assert isinstance(source, SampleSource)
    assert source.size == 7


def test_open_source_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inbox").mkdir()

    source = open_source("inbox")

    assert isinstance(source, FolderSource)
    assert source.path == tmp_path.resolve() / "inbox"


def test_open_source_missing_path(tmp_path):
    source = open_source(str(tmp_path / "absent"))

    with pytest.raises(FileNotFoundError, match="not found"):
        source.fetch(DAY)


def test_csv_row_with_extra_fields_is_an_error():
    raw_file = RawFile("posts.csv", "csv", b"id,text\nx1,hello, world and more\n")
    records = split_records(raw_file)
    assert len(records) == 1
    assert "more fields than the header" in records[0]["decode_error"]
    assert "world and more" in records[0]["raw"]

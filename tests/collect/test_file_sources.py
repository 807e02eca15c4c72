"""Tests for file formats, encodings, the ingest ledger and the S3 prefix source.

The S3 tests run against a real moto server, started as a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from tasks.collect import formats
from tasks.collect.records import RAW_COLUMNS, parse_posts, split_records
from tasks.collect.sources import (
    FolderSource,
    IngestLedger,
    RawFile,
    S3PrefixSource,
    SampleSource,
    open_source,
)
from tasks.storage import LocalStore

DAY = dt.date(2024, 3, 1)
NEXT_DAY = dt.date(2024, 3, 2)
LAST_DAY = dt.date(2024, 3, 3)
CHINESE_POSTS = ["今天天气很好", "这个产品太差了，再也不买", "物流很快，包装完好"]
SOURCE_BUCKET = "pulse-source"


def jsonl_bytes(posts: list[dict], encoding: str = "utf-8") -> bytes:
    return "".join(json.dumps(post, ensure_ascii=False) + "\n" for post in posts).encode(encoding)


def chinese_posts() -> list[dict]:
    # ASCII-only lines between the Chinese ones, as in a real mixed feed.
    posts = []
    for number, text in enumerate(CHINESE_POSTS, start=1):
        posts.append({"id": f"zh-{number}", "text": text, "lang": "zh"})
        posts.append({"id": f"en-{number}", "text": "plain ascii", "lang": "en"})
    return posts


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def raw_texts(records: list[dict]) -> list[str]:
    return [json.loads(record["raw"])["text"] for record in records]


def posts_of(records: list[dict]) -> pd.DataFrame:
    return parse_posts(pd.DataFrame(records, columns=RAW_COLUMNS), DAY)


def numbered_lines(count: int) -> list[bytes]:
    return [json.dumps({"id": f"p{i}", "text": f"post number {i} " + "word " * (i % 17)}).encode()
            for i in range(count)]


# Format names


@pytest.mark.parametrize(("name", "expected"), [
    ("a.jsonl", "jsonl"),
    ("a.ndjson", "jsonl"),
    ("a.json", "jsonl"),
    ("a.CSV", "csv"),
    ("a.parquet", "parquet"),
    ("a.jsonl.gz", "jsonl"),
    ("a.csv.GZ", "csv"),
    ("a.parquet.gz", "parquet"),
    ("feed.2024.jsonl", "jsonl"),
    ("a.txt", None),
    ("a.gz", None),
    ("a.txt.gz", None),
])
def test_format_for_name(name, expected):
    assert formats.format_for_name(name) == expected


# Encodings


def test_gbk_file_decoded():
    data = jsonl_bytes(chinese_posts(), "gbk")

    records = split_records(RawFile("weibo.jsonl", "jsonl", data))

    assert raw_texts(records) == [post["text"] for post in chinese_posts()]
    assert all(record["decode_error"] is None for record in records)


def test_gb18030_four_byte_characters():
    posts = [{"id": "1", "text": "𠀀 罕见字"}, {"id": "2", "text": "好评"}]

    records = split_records(RawFile("rare.jsonl", "jsonl", jsonl_bytes(posts, "gb18030")))

    assert raw_texts(records) == ["𠀀 罕见字", "好评"]
    assert all(record["decode_error"] is None for record in records)


def test_gbk_csv_decoded():
    data = "id,text\n1,今天天气很好\n2,物流很快\n".encode("gbk")

    records = split_records(RawFile("weibo.csv", "csv", data))

    assert raw_texts(records) == ["今天天气很好", "物流很快"]
    assert all(record["decode_error"] is None for record in records)


def test_utf8_one_bad_line_stays():
    lines = [json.dumps({"text": text}, ensure_ascii=False).encode() for text in CHINESE_POSTS]
    lines.insert(1, b'{"text": "caf\xe9s"}')

    records = split_records(RawFile("mixed.jsonl", "jsonl", b"\n".join(lines) + b"\n"))

    assert [r["decode_error"] for r in records] == [
        None, "bytes at offset 13 are not valid UTF-8", None, None,
    ]
    assert records[1]["raw"] == '{"text": "caf\\xe9s"}'
    assert json.loads(records[2]["raw"])["text"] == CHINESE_POSTS[1]


def test_gbk_bad_sequence_reported():
    good = jsonl_bytes(chinese_posts(), "gbk")
    bad = b'{"text": "\x81"}\n'  # a GBK lead byte followed by a quote is invalid

    records = split_records(RawFile("weibo.jsonl", "jsonl", good + bad))

    assert records[-1]["decode_error"] is not None
    assert "not valid" in records[-1]["decode_error"]
    assert all(record["decode_error"] is None for record in records[:-1])


def test_utf16_le_bom():
    data = "\ufeff".encode("utf-16-le") + jsonl_bytes(chinese_posts(), "utf-16-le")

    records = split_records(RawFile("export.jsonl", "jsonl", data))

    assert raw_texts(records) == [post["text"] for post in chinese_posts()]
    assert [record["line"] for record in records] == list(range(1, 7))
    assert all(record["decode_error"] is None for record in records)
    assert all(record["note"] is None for record in records)


def test_utf16_be_bom():
    data = "\ufeff".encode("utf-16-be") + jsonl_bytes(chinese_posts(), "utf-16-be")

    records = split_records(RawFile("export.jsonl", "jsonl", data))

    assert raw_texts(records) == [post["text"] for post in chinese_posts()]
    assert all(record["decode_error"] is None for record in records)


def test_utf16_csv_with_bom():
    data = "id,text\r\n1,café 好\r\n2,\"two\r\nlines\"\r\n".encode("utf-16")  # writes a BOM

    records = split_records(RawFile("excel.csv", "csv", data))

    assert raw_texts(records) == ["café 好", "two\r\nlines"]
    assert list(json.loads(records[0]["raw"])) == ["id", "text"]


def test_utf16_odd_byte_reported():
    data = "\ufeff".encode("utf-16-le") + '{"text": "a"}\n{"text": "b"}'.encode("utf-16-le") + b"X"

    records = split_records(RawFile("cut.jsonl", "jsonl", data))

    assert records[0]["decode_error"] is None
    assert records[1]["decode_error"] == "bytes at offset 26 are not valid UTF-16 LE"
    assert records[1]["raw"].endswith("\\x58")


def test_utf8_bom_jsonl_and_csv():
    bom = b"\xef\xbb\xbf"

    jsonl = split_records(RawFile("a.jsonl", "jsonl", bom + jsonl_bytes(chinese_posts())))
    csv_records = split_records(RawFile("a.csv", "csv", bom + "id,text\n1,好\n".encode()))

    assert raw_texts(jsonl) == [post["text"] for post in chinese_posts()]
    assert jsonl[0]["raw"].startswith("{")
    assert list(json.loads(csv_records[0]["raw"])) == ["id", "text"]


def test_detect_encoding_table():
    assert formats.detect_encoding(b"plain") == "utf-8"
    assert formats.detect_encoding("好".encode()) == "utf-8"
    assert formats.detect_encoding("好评如潮\n很好".encode("gbk")) == "gb18030"
    assert formats.detect_encoding(b"\xff\xfea\x00") == "utf-16-le"
    assert formats.detect_encoding(b"\xfe\xff\x00a") == "utf-16-be"
    assert formats.detect_encoding(b"\xef\xbb\xbfa") == "utf-8"


# NUL bytes


def test_nul_bytes_removed_with_note():
    data = b'{"id": "1", "text": "he\x00llo"}\n{"id": "2", "text": "ok"}\n'

    records = split_records(RawFile("nul.jsonl", "jsonl", data))

    assert records[0]["raw"] == '{"id": "1", "text": "hello"}'
    assert records[0]["note"] == "removed 1 NUL characters"
    assert records[0]["decode_error"] is None
    assert records[1]["note"] is None


def test_nul_only_line_skipped():
    data = b'{"id": "1"}\n\x00\x00\x00\x00\n{"id": "3"}\n'

    records = split_records(RawFile("nul.jsonl", "jsonl", data))

    assert [record["line"] for record in records] == [1, 3]


def test_nul_bytes_in_csv_row():
    data = b"id,text\n1,he\x00llo\n\x00\x00\n3,ok\n"

    records = split_records(RawFile("nul.csv", "csv", data))

    assert raw_texts(records) == ["hello", "ok"]
    assert records[0]["note"] == "removed 1 NUL characters"
    assert [record["line"] for record in records] == [2, 4]


def test_nul_bytes_post_parses():
    records = split_records(RawFile("nul.jsonl", "jsonl", b'{"id": "1", "text": "a\x00b"}\n'))

    post = posts_of(records).iloc[0]

    assert post["text"] == "ab"
    assert pd.isna(post["parse_error"])


# gzip


def test_gzip_jsonl():
    data = gzip.compress(jsonl_bytes(chinese_posts()))

    records = split_records(RawFile("feed.jsonl.gz", "jsonl", data))

    assert raw_texts(records) == [post["text"] for post in chinese_posts()]
    assert all(record["decode_error"] is None for record in records)


def test_gzip_csv_quoted_newline():
    data = gzip.compress(b'id,text\n1,"hello\nworld"\n2,plain\n')

    records = split_records(RawFile("feed.csv.gz", "csv", data))

    assert raw_texts(records) == ["hello\nworld", "plain"]
    assert [record["line"] for record in records] == [2, 4]


def test_gzip_detected_by_magic():
    data = gzip.compress(b'{"id": "1", "text": "zipped"}\n')

    records = split_records(RawFile("feed.jsonl", "jsonl", data))

    assert raw_texts(records) == ["zipped"]


def test_gzip_gbk_file():
    data = gzip.compress(jsonl_bytes(chinese_posts(), "gbk"))

    records = split_records(RawFile("weibo.jsonl.gz", "jsonl", data))

    assert raw_texts(records) == [post["text"] for post in chinese_posts()]


def test_gzip_concatenated_members():
    data = gzip.compress(b'{"text": "one"}\n') + gzip.compress(b'{"text": "two"}\n')

    records = split_records(RawFile("parts.jsonl.gz", "jsonl", data))

    assert raw_texts(records) == ["one", "two"]
    assert [record["line"] for record in records] == [1, 2]


def test_truncated_gzip_keeps_complete_lines():
    lines = numbered_lines(400)
    compressed = gzip.compress(b"\n".join(lines) + b"\n")

    records = split_records(RawFile("cut.jsonl.gz", "jsonl", compressed[: len(compressed) // 2]))

    kept, last = records[:-1], records[-1]
    assert 0 < len(kept) < len(lines)
    assert [record["raw"].encode() for record in kept] == lines[: len(kept)]
    assert all(record["decode_error"] is None for record in kept)
    assert "cut.jsonl.gz" in last["decode_error"]
    assert "truncated gzip stream" in last["decode_error"]
    assert last["line"] == len(kept) + 1


def test_truncated_gzip_trailer_only():
    compressed = gzip.compress(b'{"text": "a"}\n{"text": "b"}\n')

    records = split_records(RawFile("cut.jsonl.gz", "jsonl", compressed[:-4]))

    assert raw_texts(records[:2]) == ["a", "b"]
    assert len(records) == 3
    assert "truncated gzip stream" in records[2]["decode_error"]
    assert records[2]["raw"] == ""
    assert records[2]["line"] == 3


def test_truncated_gzip_record_quarantinable():
    compressed = gzip.compress(b"\n".join(numbered_lines(400)) + b"\n")
    records = split_records(RawFile("cut.jsonl.gz", "jsonl", compressed[:-50]))

    posts = posts_of(records)

    assert posts["parse_error"].notna().sum() == 1
    assert "truncated gzip stream" in posts.iloc[-1]["parse_error"]
    assert posts.iloc[:-1]["parse_error"].isna().all()


def test_truncated_gzip_csv():
    rows = "".join(f'{i},"row {i} text"\n' for i in range(300))
    compressed = gzip.compress(("id,text\n" + rows).encode())

    records = split_records(RawFile("cut.csv.gz", "csv", compressed[: len(compressed) // 2]))

    errors = [record for record in records if record["decode_error"]]
    assert "truncated gzip stream" in errors[-1]["decode_error"]
    assert "cut.csv.gz" in errors[-1]["decode_error"]
    good = [record for record in records if not record["decode_error"]]
    assert raw_texts(good) == [f"row {i} text" for i in range(len(good))]
    assert len(good) > 0


def test_truncated_gzip_csv_inside_quotes():
    data = b'id,text\n1,"a\nb"\n2,"row 2\nsecond line"\n'
    stored = gzip.compress(data, compresslevel=0)  # stored blocks: output follows input
    cut = stored.index(b"second") + 3

    records = split_records(RawFile("cut.csv.gz", "csv", stored[:cut]))

    assert raw_texts(records[:1]) == ["a\nb"]
    assert len(records) == 3
    assert records[1]["line"] == 4
    assert records[1]["decode_error"].startswith("invalid CSV: unexpected end of data")
    assert "truncated gzip stream" in records[2]["decode_error"]
    assert records[2]["raw"] == "sec"


def test_truncated_gzip_gbk_file():
    lines = [json.dumps({"text": f"{CHINESE_POSTS[i % 3]} {i}"}, ensure_ascii=False)
             for i in range(300)]
    compressed = gzip.compress(("\n".join(lines) + "\n").encode("gbk"))

    records = split_records(RawFile("cut.jsonl.gz", "jsonl", compressed[: len(compressed) // 2]))

    kept = records[:-1]
    assert [record["raw"] for record in kept] == lines[: len(kept)]
    assert all(record["decode_error"] is None for record in kept)
    assert "truncated gzip stream" in records[-1]["decode_error"]


def test_corrupt_gzip_reported():
    compressed = bytearray(gzip.compress(b"\n".join(numbered_lines(400)) + b"\n"))
    compressed[40:60] = b"\xff" * 20

    records = split_records(RawFile("bad.jsonl.gz", "jsonl", bytes(compressed)))

    assert records
    assert records[-1]["decode_error"] is not None
    assert "bad.jsonl.gz" in records[-1]["decode_error"]


# Parquet


def test_parquet_rows_as_records():
    frame = pd.DataFrame({"id": ["1", "2"], "text": ["hello", "好"], "likes": [3, None]})

    records = split_records(RawFile("dump.parquet", "parquet", parquet_bytes(frame)))

    assert [record["line"] for record in records] == [1, 2]
    assert json.loads(records[0]["raw"]) == {"id": "1", "text": "hello", "likes": 3.0}
    assert json.loads(records[1]["raw"]) == {"id": "2", "text": "好", "likes": None}
    assert all(record["decode_error"] is None for record in records)


def test_parquet_gzip_named():
    frame = pd.DataFrame({"id": ["1"], "text": ["zipped parquet"]})
    data = gzip.compress(parquet_bytes(frame))

    records = split_records(RawFile("dump.parquet.gz", "parquet", data))

    assert raw_texts(records) == ["zipped parquet"]


def test_parquet_timestamp_column_utc():
    stamps = pd.to_datetime(["2024-03-01T10:00:00+08:00", "2024-03-01T10:00:00Z"], utc=True)
    frame = pd.DataFrame({"id": ["1", "2"], "text": ["a", "b"], "created_at": stamps})
    naive = pd.DataFrame({"id": ["3"], "text": ["c"],
                          "created_at": pd.to_datetime(["2024-03-01 04:05:06"])})

    posts = posts_of(split_records(RawFile("a.parquet", "parquet", parquet_bytes(frame)))
                     + split_records(RawFile("b.parquet", "parquet", parquet_bytes(naive))))

    assert list(posts["created_at"]) == [
        "2024-03-01T02:00:00Z", "2024-03-01T10:00:00Z", "2024-03-01T04:05:06Z",
    ]


def test_parquet_invalid_file_record():
    records = split_records(RawFile("bad.parquet", "parquet", b"PAR1 not really parquet PAR1"))

    assert len(records) == 1
    assert records[0]["decode_error"].startswith("bad.parquet: invalid Parquet file")


def test_parquet_truncated_gzip_record():
    frame = pd.DataFrame({"id": [str(i) for i in range(500)], "text": ["t"] * 500})
    compressed = gzip.compress(parquet_bytes(frame))

    records = split_records(RawFile("dump.parquet.gz", "parquet", compressed[:-30]))

    assert len(records) == 1
    assert "truncated gzip stream" in records[0]["decode_error"]
    assert "dump.parquet.gz" in records[0]["decode_error"]


def test_parquet_nul_characters_removed():
    frame = pd.DataFrame({"id": ["1"], "text": ["a\x00b"]})

    records = split_records(RawFile("nul.parquet", "parquet", parquet_bytes(frame)))

    assert raw_texts(records) == ["ab"]
    assert records[0]["note"] == "removed 1 NUL characters"


def test_parquet_zero_rows():
    frame = pd.DataFrame({"id": pd.Series([], dtype=str), "text": pd.Series([], dtype=str)})

    assert split_records(RawFile("none.parquet", "parquet", parquet_bytes(frame))) == []


# CSV quoted newlines, large posts, empty files


def test_csv_quoted_newlines_utf8():
    data = 'id,text\n1,"第一行\n第二行"\n2,"say ""hi"""\n'.encode()

    records = split_records(RawFile("q.csv", "csv", data))

    assert raw_texts(records) == ["第一行\n第二行", 'say "hi"']
    assert [record["line"] for record in records] == [2, 4]


def test_megabyte_post_jsonl_whole():
    text = "长" * 350_000 + "x" * 10  # about 1 MB of UTF-8
    data = json.dumps({"id": "big", "text": text}, ensure_ascii=False).encode() + b"\n"
    assert len(data) > 1_000_000

    posts = posts_of(split_records(RawFile("big.jsonl", "jsonl", data)))

    assert posts.iloc[0]["text"] == text
    assert pd.isna(posts.iloc[0]["parse_error"])


def test_megabyte_post_csv_whole():
    text = "y" * 1_100_000
    data = f"id,text\nbig,{text}\nsmall,ok\n".encode()

    posts = posts_of(split_records(RawFile("big.csv", "csv", data)))

    assert list(posts["text"]) == [text, "ok"]
    assert posts["parse_error"].isna().all()


@pytest.mark.parametrize(("name", "format_name", "data"), [
    ("empty.jsonl", "jsonl", b""),
    ("empty.csv", "csv", b""),
    ("empty.parquet", "parquet", b""),
    ("empty.jsonl.gz", "jsonl", b""),
    ("empty-content.jsonl.gz", "jsonl", gzip.compress(b"")),
    ("empty-content.csv.gz", "csv", gzip.compress(b"")),
    ("blank.jsonl", "jsonl", b"\n\n  \n"),
    ("header-only.csv", "csv", b"id,text\n"),
])
def test_empty_file_no_records(name, format_name, data):
    assert split_records(RawFile(name, format_name, data)) == []


def test_empty_parquet_file_in_folder(tmp_path):
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "empty.jsonl.gz").write_bytes(b"")

    files = FolderSource(tmp_path).fetch(DAY)

    assert sorted(f.name for f in files) == ["empty.jsonl.gz", "empty.parquet"]
    assert [record for f in files for record in split_records(f)] == []


# Timestamps and ids


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z"),
    ("2024-03-01T18:00:00+08:00", "2024-03-01T10:00:00Z"),
    ("2024-03-01T18:00:00+0800", "2024-03-01T10:00:00Z"),
    ("2024-03-01T05:00:00-05:00", "2024-03-01T10:00:00Z"),
    ("2024-03-01T15:45:00+05:45", "2024-03-01T10:00:00Z"),
    ("2024-03-02T01:30:00+08:00", "2024-03-01T17:30:00Z"),
    ("Fri Mar 01 10:00:00 +0000 2024", "2024-03-01T10:00:00Z"),
    ("Fri Mar 01 18:00:00 +0800 2024", "2024-03-01T10:00:00Z"),
    ("Fri, 01 Mar 2024 10:00:00 GMT", "2024-03-01T10:00:00Z"),
    ("2024-03-01 10:00:00", "2024-03-01T10:00:00Z"),
    ("2024-03-01T10:00:00", "2024-03-01T10:00:00Z"),
    ("2024-03-01 10:00:00 UTC", "2024-03-01T10:00:00Z"),
    (1709287200, "2024-03-01T10:00:00Z"),
    (1709287200.75, "2024-03-01T10:00:00Z"),
    (1709287200123, "2024-03-01T10:00:00Z"),
    (1709287200123456, "2024-03-01T10:00:00Z"),
    (1709287200123456789, "2024-03-01T10:00:00Z"),
    ("1709287200", "2024-03-01T10:00:00Z"),
    ("1709287200123", "2024-03-01T10:00:00Z"),
    ("1709287200.5", "2024-03-01T10:00:00Z"),
    ("20240301", "2024-03-01T00:00:00Z"),
])
def test_created_at_formats_to_utc(value, expected):
    data = jsonl_bytes([{"id": "1", "created_at": value}])

    records = split_records(RawFile("t.jsonl", "jsonl", data))

    assert posts_of(records).iloc[0]["created_at"] == expected


def test_created_at_csv_epoch_text():
    data = b"id,text,created_at\n1,a,1709287200\n2,b,2024-03-01T18:00:00+08:00\n"

    posts = posts_of(split_records(RawFile("t.csv", "csv", data)))

    assert list(posts["created_at"]) == ["2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z"]


def test_same_id_two_texts_both_kept():
    posts = [{"id": "42", "text": "first version"}, {"id": "42", "text": "edited version"}]

    parsed = posts_of(split_records(RawFile("dup.jsonl", "jsonl", jsonl_bytes(posts))))

    assert list(parsed["id"]) == ["42", "42"]
    assert list(parsed["text"]) == ["first version", "edited version"]
    assert parsed["parse_error"].isna().all()


def test_default_id_ignores_gzip_suffix():
    records = split_records(RawFile("feed.jsonl.gz", "jsonl", gzip.compress(b'{"text": "a"}\n')))

    assert posts_of(records).iloc[0]["id"] == "feed-1"


# FolderSource formats


def test_folder_source_gzip_and_parquet(tmp_path):
    frame = pd.DataFrame({"id": ["p"], "text": ["from parquet"]})
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b'{"text": "from gzip"}\n'))
    (tmp_path / "b.parquet").write_bytes(parquet_bytes(frame))
    (tmp_path / "c.parquet.gz").write_bytes(gzip.compress(parquet_bytes(frame)))
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(b"id,text\n1,from csv\n"))

    files = FolderSource(tmp_path).fetch(DAY)

    assert [(f.name, f.format) for f in files] == [
        ("a.jsonl.gz", "jsonl"), ("b.parquet", "parquet"),
        ("c.parquet.gz", "parquet"), ("d.csv.gz", "csv"),
    ]
    texts = [text for f in files for text in raw_texts(split_records(f))]
    assert texts == ["from gzip", "from parquet", "from parquet", "from csv"]


def test_folder_source_skips_partial_parquet(tmp_path, caplog):
    complete = parquet_bytes(pd.DataFrame({"id": ["p"], "text": ["t"]}))
    (tmp_path / "copying.parquet").write_bytes(complete[: len(complete) // 2])

    with caplog.at_level(logging.WARNING, logger="tasks.collect.sources"):
        files = FolderSource(tmp_path).fetch(DAY)

    assert files == []
    assert "copying.parquet" in caplog.text
    assert "PAR1" in caplog.text


def test_empty_day_folder(tmp_path, caplog):
    (tmp_path / "top.jsonl").write_bytes(b'{"id": "top"}\n')
    (tmp_path / f"date={DAY.isoformat()}").mkdir()
    store = LocalStore(tmp_path / "store")
    source = open_source(str(tmp_path), store=store)

    with caplog.at_level(logging.WARNING, logger="tasks.collect.sources"):
        files = source.fetch(DAY)
    source.commit(DAY)

    assert files == []
    assert "no JSONL or CSV files" in caplog.text
    assert store.list_keys("ingest/") == []


# Ingest ledger on a folder


@pytest.fixture
def inbox(tmp_path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def pipeline_store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def add_file(folder: Path, name: str, text: str = "post") -> None:
    (folder / name).write_bytes(jsonl_bytes([{"id": name, "text": text}]))


def collect(source, day: dt.date) -> list[str]:
    """Fetch and commit ``day`` as the collection stage does; return the file names."""
    files = source.fetch(day)
    source.commit(day)
    return [f.name for f in files]


def test_ledger_rerun_same_files(inbox, pipeline_store):
    add_file(inbox, "a.jsonl")
    add_file(inbox, "b.jsonl")
    source = open_source(str(inbox), store=pipeline_store)

    first = collect(source, DAY)
    rerun = collect(source, DAY)

    assert first == ["a.jsonl", "b.jsonl"]
    assert rerun == first


def test_ledger_late_file_next_day(inbox, pipeline_store):
    add_file(inbox, "a.jsonl")
    source = open_source(str(inbox), store=pipeline_store)
    collect(source, DAY)

    add_file(inbox, "late.jsonl")
    rerun = collect(source, DAY)
    next_day = collect(source, NEXT_DAY)

    assert rerun == ["a.jsonl"]
    assert next_day == ["late.jsonl"]


def test_ledger_assigned_file_not_reread(inbox, pipeline_store):
    add_file(inbox, "a.jsonl")
    source = open_source(str(inbox), store=pipeline_store)
    collect(source, DAY)

    assert collect(source, NEXT_DAY) == []
    assert collect(source, LAST_DAY) == []
    assert collect(source, DAY) == ["a.jsonl"]


def test_ledger_read_by_new_source(inbox, pipeline_store):
    add_file(inbox, "a.jsonl")
    collect(open_source(str(inbox), store=pipeline_store), DAY)

    add_file(inbox, "b.jsonl")
    files = collect(open_source(str(inbox), store=pipeline_store), NEXT_DAY)

    assert files == ["b.jsonl"]


def test_ledger_not_written_without_commit(inbox, pipeline_store):
    add_file(inbox, "a.jsonl")
    source = open_source(str(inbox), store=pipeline_store)

    source.fetch(DAY)  # the run fails here, before the raw partition is stored
    written = pipeline_store.exists("ingest/files/ledger.json")
    add_file(inbox, "b.jsonl")
    retry = collect(source, DAY)

    assert not written
    assert retry == ["a.jsonl", "b.jsonl"]


def test_ledger_contents(inbox, pipeline_store):
    add_file(inbox, "a.jsonl", "hello")
    collect(open_source(str(inbox), store=pipeline_store), DAY)

    ledger = json.loads(pipeline_store.read_bytes("ingest/files/ledger.json"))

    data = (inbox / "a.jsonl").read_bytes()
    entry = ledger["objects"][str(inbox / "a.jsonl")]
    assert ledger["days"] == ["2024-03-01"]
    assert ledger["location"] == str(inbox)
    assert entry["day"] == "2024-03-01"
    assert entry["size"] == len(data)
    assert entry["name"] == "a.jsonl"
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["modified"].endswith("+00:00")


def test_ledger_source_name_in_key(inbox, pipeline_store):
    add_file(inbox, "a.jsonl")

    collect(open_source(str(inbox), store=pipeline_store, name="weibo"), DAY)

    assert pipeline_store.list_keys("ingest/") == ["ingest/weibo/ledger.json"]


def test_ledger_other_location_rejected(inbox, tmp_path, pipeline_store):
    add_file(inbox, "a.jsonl")
    collect(open_source(str(inbox), store=pipeline_store), DAY)
    other = tmp_path / "other"
    other.mkdir()

    with pytest.raises(ValueError, match="belongs to"):
        open_source(str(other), store=pipeline_store).fetch(NEXT_DAY)


def test_ledger_commit_without_fetch(pipeline_store, inbox):
    ledger = IngestLedger(pipeline_store, "files", str(inbox))

    with pytest.raises(ValueError, match="without fetch"):
        ledger.commit(DAY)


def test_ledger_changed_file_warns(inbox, pipeline_store, caplog):
    add_file(inbox, "a.jsonl", "short")
    source = open_source(str(inbox), store=pipeline_store)
    collect(source, DAY)
    add_file(inbox, "a.jsonl", "a much longer text than before")

    with caplog.at_level(logging.WARNING, logger="tasks.collect.sources"):
        files = collect(source, NEXT_DAY)

    assert files == []
    assert "changed after it was ingested for 2024-03-01" in caplog.text


def test_ledger_missing_file_warns(inbox, pipeline_store, caplog):
    add_file(inbox, "a.jsonl")
    source = open_source(str(inbox), store=pipeline_store)
    collect(source, DAY)
    (inbox / "a.jsonl").unlink()

    with caplog.at_level(logging.WARNING, logger="tasks.collect.sources"):
        files = collect(source, DAY)

    assert files == []
    assert "no longer in the source" in caplog.text


def test_ledger_assigned_lists_day(inbox, pipeline_store):
    add_file(inbox, "a.jsonl")
    source = open_source(str(inbox), store=pipeline_store)
    collect(source, DAY)
    add_file(inbox, "b.jsonl")
    collect(source, NEXT_DAY)

    ledger = IngestLedger(pipeline_store, "files", str(inbox))

    assert ledger.assigned(DAY) == [str(inbox / "a.jsonl")]
    assert ledger.assigned(NEXT_DAY) == [str(inbox / "b.jsonl")]


def test_ledger_single_file_source(tmp_path, pipeline_store):
    path = tmp_path / "one.jsonl"
    add_file(tmp_path, "one.jsonl")
    source = open_source(str(path), store=pipeline_store)

    assert collect(source, DAY) == ["one.jsonl"]
    assert collect(source, NEXT_DAY) == []


def test_ledger_unused_for_date_partitions(inbox, pipeline_store):
    dated = inbox / f"date={DAY.isoformat()}"
    dated.mkdir()
    add_file(dated, "a.jsonl")
    source = open_source(str(inbox), store=pipeline_store)

    assert collect(source, DAY) == ["a.jsonl"]
    assert collect(source, DAY) == ["a.jsonl"]
    assert pipeline_store.list_keys("ingest/") == []


def test_ledger_partial_parquet_read_later(inbox, pipeline_store):
    complete = parquet_bytes(pd.DataFrame({"id": ["p"], "text": ["t"]}))
    (inbox / "late.parquet").write_bytes(complete[:20])
    source = open_source(str(inbox), store=pipeline_store)

    assert collect(source, DAY) == []
    (inbox / "late.parquet").write_bytes(complete)
    assert collect(source, NEXT_DAY) == ["late.parquet"]


def test_sample_source_commit_no_ledger(pipeline_store):
    source = open_source("sample", sample_size=3, store=pipeline_store)

    assert isinstance(source, SampleSource)
    assert collect(source, DAY) == ["sample-2024-03-01.jsonl"]
    assert pipeline_store.list_keys("ingest/") == []


def test_folder_source_without_store_reads_all(inbox):
    add_file(inbox, "a.jsonl")
    source = open_source(str(inbox))

    assert collect(source, DAY) == ["a.jsonl"]
    assert collect(source, NEXT_DAY) == ["a.jsonl"]


# S3 prefix source on the moto server of conftest.py


@pytest.fixture(scope="module")
def s3_endpoint(moto_endpoint) -> str:
    """The shared moto server's URL, with this module's source bucket created."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint)
    if SOURCE_BUCKET not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=SOURCE_BUCKET)
    return moto_endpoint


@pytest.fixture
def s3_prefix(s3_endpoint, request) -> str:
    """A prefix of the source bucket that belongs to this test alone."""
    return f"feeds/{request.node.name}"


def put(endpoint: str, key: str, data: bytes) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint).put_object(Bucket=SOURCE_BUCKET, Key=key, Body=data)


def test_s3_open_source(s3_endpoint):
    source = open_source(f"s3://{SOURCE_BUCKET}/feeds/x/", endpoint_url=s3_endpoint)

    assert isinstance(source, S3PrefixSource)
    assert source.bucket == SOURCE_BUCKET
    assert source.prefix == "feeds/x"
    assert source.endpoint_url == s3_endpoint
    assert source.location == f"s3://{SOURCE_BUCKET}/feeds/x/"


def test_s3_invalid_spec():
    with pytest.raises(ValueError, match="s3://bucket"):
        open_source("s3:///prefix")


def test_s3_reads_plain_gzip_and_nested(s3_endpoint, s3_prefix):
    put(s3_endpoint, f"{s3_prefix}/a.jsonl", b'{"text": "plain"}\n')
    put(s3_endpoint, f"{s3_prefix}/b.csv.gz", gzip.compress(b"id,text\n1,zipped csv\n"))
    put(s3_endpoint, f"{s3_prefix}/sub/c.jsonl.gz",
        gzip.compress(jsonl_bytes(chinese_posts(), "gbk")))
    put(s3_endpoint, f"{s3_prefix}/d.parquet.gz",
        gzip.compress(parquet_bytes(pd.DataFrame({"id": ["1"], "text": ["pq"]}))))
    put(s3_endpoint, f"{s3_prefix}/notes.txt", b"not posts")
    put(s3_endpoint, f"{s3_prefix}-other/e.jsonl", b'{"text": "other prefix"}\n')

    source = open_source(f"s3://{SOURCE_BUCKET}/{s3_prefix}", endpoint_url=s3_endpoint)
    files = source.fetch(DAY)

    assert [(f.name, f.format) for f in files] == [
        ("a.jsonl", "jsonl"), ("b.csv.gz", "csv"), ("d.parquet.gz", "parquet"),
        ("sub/c.jsonl.gz", "jsonl"),
    ]
    texts = [text for f in files for text in raw_texts(split_records(f))]
    assert texts[:3] == ["plain", "zipped csv", "pq"]
    assert texts[3:] == [post["text"] for post in chinese_posts()]


def test_s3_truncated_gzip_object(s3_endpoint, s3_prefix):
    compressed = gzip.compress(b"\n".join(numbered_lines(400)) + b"\n")
    put(s3_endpoint, f"{s3_prefix}/cut.jsonl.gz", compressed[:-100])

    files = open_source(f"s3://{SOURCE_BUCKET}/{s3_prefix}", endpoint_url=s3_endpoint).fetch(DAY)
    records = split_records(files[0])

    assert "truncated gzip stream" in records[-1]["decode_error"]
    assert all(record["decode_error"] is None for record in records[:-1])


def test_s3_date_partition(s3_endpoint, s3_prefix, pipeline_store):
    put(s3_endpoint, f"{s3_prefix}/date=2024-03-01/a.jsonl", b'{"text": "day one"}\n')
    put(s3_endpoint, f"{s3_prefix}/date=2024-03-02/b.jsonl", b'{"text": "day two"}\n')
    put(s3_endpoint, f"{s3_prefix}/top.jsonl", b'{"text": "undated"}\n')
    source = open_source(f"s3://{SOURCE_BUCKET}/{s3_prefix}", endpoint_url=s3_endpoint,
                         store=pipeline_store)

    assert collect(source, DAY) == ["date=2024-03-01/a.jsonl"]
    assert collect(source, NEXT_DAY) == ["date=2024-03-02/b.jsonl"]
    assert collect(source, LAST_DAY) == ["top.jsonl"]


def test_s3_empty_prefix(s3_endpoint, s3_prefix, caplog):
    source = open_source(f"s3://{SOURCE_BUCKET}/{s3_prefix}", endpoint_url=s3_endpoint)

    with caplog.at_level(logging.WARNING, logger="tasks.collect.sources"):
        files = source.fetch(DAY)

    assert files == []
    assert "no JSONL or CSV files" in caplog.text


def test_s3_ledger_rerun_and_late_object(s3_endpoint, s3_prefix, pipeline_store):
    spec = f"s3://{SOURCE_BUCKET}/{s3_prefix}"
    put(s3_endpoint, f"{s3_prefix}/a.jsonl.gz", gzip.compress(b'{"text": "a"}\n'))
    source = open_source(spec, endpoint_url=s3_endpoint, store=pipeline_store)

    first = collect(source, DAY)
    put(s3_endpoint, f"{s3_prefix}/late.jsonl", b'{"text": "late"}\n')
    rerun = collect(source, DAY)
    next_day = collect(open_source(spec, endpoint_url=s3_endpoint, store=pipeline_store), NEXT_DAY)
    after = collect(source, LAST_DAY)

    assert first == ["a.jsonl.gz"]
    assert rerun == ["a.jsonl.gz"]
    assert next_day == ["late.jsonl"]
    assert after == []


def test_s3_ledger_entry_has_etag(s3_endpoint, s3_prefix, pipeline_store):
    data = b'{"text": "a"}\n'
    put(s3_endpoint, f"{s3_prefix}/a.jsonl", data)
    collect(open_source(f"s3://{SOURCE_BUCKET}/{s3_prefix}", endpoint_url=s3_endpoint,
                        store=pipeline_store), DAY)

    ledger = json.loads(pipeline_store.read_bytes("ingest/s3/ledger.json"))

    entry = ledger["objects"][f"s3://{SOURCE_BUCKET}/{s3_prefix}/a.jsonl"]
    assert entry["etag"] == hashlib.md5(data).hexdigest()
    assert entry["size"] == len(data)
    assert entry["day"] == "2024-03-01"
    assert ledger["location"] == f"s3://{SOURCE_BUCKET}/{s3_prefix}/"


def test_s3_ledger_in_s3_store(s3_endpoint, s3_prefix):
    from tasks.storage import open_store

    store = open_store(f"s3://{SOURCE_BUCKET}/stores/{s3_prefix}", endpoint_url=s3_endpoint)
    put(s3_endpoint, f"{s3_prefix}/a.jsonl", b'{"text": "a"}\n')
    source = open_source(f"s3://{SOURCE_BUCKET}/{s3_prefix}", endpoint_url=s3_endpoint, store=store)

    assert collect(source, DAY) == ["a.jsonl"]
    assert collect(source, NEXT_DAY) == []
    assert store.exists("ingest/s3/ledger.json")

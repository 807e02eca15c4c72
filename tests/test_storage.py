"""Tests for the local and S3 stores and the date-partition helpers.

The S3 tests run against a real moto server, started as a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from conftest import MOTO_BUCKET

from tasks import storage
from tasks.storage import LocalStore, S3Store, open_store

DAY = dt.date(2024, 3, 1)
NEXT_DAY = dt.date(2024, 3, 2)
LAST_DAY = dt.date(2024, 3, 3)
BUCKET = MOTO_BUCKET


def make_frame(values: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"p{v}" for v in values], "score": [v / 10 for v in values]})


def find_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# LocalStore


@pytest.fixture
def local(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_local_write_read(local):
    local.write_bytes("a/b/c.bin", b"\x00\x01data")

    assert local.read_bytes("a/b/c.bin") == b"\x00\x01data"
    assert local.exists("a/b/c.bin")


def test_local_write_replaces(local):
    local.write_bytes("k.txt", b"old content")
    local.write_bytes("k.txt", b"new")

    assert local.read_bytes("k.txt") == b"new"


def test_local_write_no_temp_files(local):
    local.write_bytes("x/k.txt", b"one")
    local.write_bytes("x/k.txt", b"two")

    assert find_temp_files(local.root) == []
    assert sorted(p.name for p in (local.root / "x").iterdir()) == ["k.txt"]


def test_local_failed_replace_keeps_old(local, monkeypatch):
    local.write_bytes("x/k.txt", b"old bytes")

    def fail_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        local.write_bytes("x/k.txt", b"new bytes")
    monkeypatch.undo()

    assert local.read_bytes("x/k.txt") == b"old bytes"
    assert find_temp_files(local.root) == []


def test_local_failed_fsync_keeps_old(local, monkeypatch):
    local.write_bytes("k.txt", b"old bytes")

    def fail_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(storage.os, "fsync", fail_fsync)
    with pytest.raises(OSError, match="I/O error"):
        local.write_bytes("k.txt", b"new bytes")
    monkeypatch.undo()

    assert local.read_bytes("k.txt") == b"old bytes"
    assert find_temp_files(local.root) == []


def test_local_read_missing(local):
    with pytest.raises(FileNotFoundError):
        local.read_bytes("absent.txt")


def test_local_exists(local):
    local.write_bytes("d/file.txt", b"x")

    assert local.exists("d/file.txt")
    assert not local.exists("d")
    assert not local.exists("d/other.txt")


def test_local_list_keys(local):
    for key in ["ds/date=2024-03-02/part-0.parquet", "ds/date=2024-03-01/part-0.parquet",
                "ds/_meta.json", "other/x.txt"]:
        local.write_bytes(key, b"x")
    (local.root / "ds" / ".hidden.tmp").write_bytes(b"partial")

    assert local.list_keys("ds/") == [
        "ds/_meta.json",
        "ds/date=2024-03-01/part-0.parquet",
        "ds/date=2024-03-02/part-0.parquet",
    ]
    assert local.list_keys("missing/") == []


def test_local_uri(local):
    assert local.uri("a/b.txt") == str(local.root / "a" / "b.txt")


def test_open_store_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    store = open_store("file://data")

    assert isinstance(store, LocalStore)
    assert store.root == tmp_path.resolve() / "data"


@pytest.mark.parametrize(("uri", "bucket", "prefix"), [
    ("s3://bucket", "bucket", ""),
    ("s3://bucket/", "bucket", ""),
    ("s3://bucket/a/b/", "bucket", "a/b"),
])
def test_open_store_s3_uri(uri, bucket, prefix):
    store = open_store(uri, endpoint_url="http://127.0.0.1:1")

    assert isinstance(store, S3Store)
    assert store.bucket == bucket
    assert store.prefix == prefix
    assert store.endpoint_url == "http://127.0.0.1:1"


def test_open_store_s3_no_bucket():
    with pytest.raises(ValueError, match="s3://bucket"):
        open_store("s3:///prefix")


# Partition helpers on local disk


def test_partition_key():
    assert storage.partition_key("clean", DAY) == "clean/date=2024-03-01/part-0.parquet"
    assert storage.partition_key("x", DAY, "a.json") == "x/date=2024-03-01/a.json"


def test_frame_round_trip(local):
    uri = storage.write_frame(local, "clean", DAY, make_frame([1, 2, 3]))

    assert uri == local.uri("clean/date=2024-03-01/part-0.parquet")
    pd.testing.assert_frame_equal(storage.read_frame(local, "clean", DAY), make_frame([1, 2, 3]))


def test_write_frame_drops_index(local):
    storage.write_frame(local, "clean", DAY, make_frame([1, 2, 3]).iloc[[2, 0]])

    read = storage.read_frame(local, "clean", DAY)

    assert list(read.index) == [0, 1]
    assert list(read["id"]) == ["p3", "p1"]


def test_write_frame_replaces(local):
    storage.write_frame(local, "clean", DAY, make_frame([1, 2, 3]))
    storage.write_frame(local, "clean", DAY, make_frame([9]))

    assert list(storage.read_frame(local, "clean", DAY)["id"]) == ["p9"]
    assert local.list_keys("clean/") == ["clean/date=2024-03-01/part-0.parquet"]


def test_read_frame_missing(local):
    storage.write_frame(local, "clean", DAY, make_frame([1]))

    with pytest.raises(FileNotFoundError) as caught:
        storage.read_frame(local, "clean", NEXT_DAY)

    message = str(caught.value)
    assert "'clean'" in message
    assert "2024-03-02" in message


def test_list_partitions(local):
    for day in [LAST_DAY, DAY, NEXT_DAY]:
        storage.write_frame(local, "clean", day, make_frame([1]))
    storage.write_json(local, "clean/date=2024-03-01/extra.json", {"a": 1})
    local.write_bytes("clean/_index.json", b"{}")

    assert storage.list_partitions(local, "clean") == [DAY, NEXT_DAY, LAST_DAY]
    assert storage.list_partitions(local, "absent") == []


def test_list_partitions_prefix_isolated(local):
    storage.write_frame(local, "labels", DAY, make_frame([1]))
    storage.write_frame(local, "labels_quarantine", NEXT_DAY, make_frame([1]))

    assert storage.list_partitions(local, "labels") == [DAY]


def test_read_all_frames(local):
    storage.write_frame(local, "clean", NEXT_DAY, make_frame([3]))
    storage.write_frame(local, "clean", DAY, make_frame([1, 2]))
    storage.write_frame(local, "clean", LAST_DAY, make_frame([4]))

    everything = storage.read_all_frames(local, "clean")
    until = storage.read_all_frames(local, "clean", until=NEXT_DAY)

    assert list(everything["id"]) == ["p1", "p2", "p3", "p4"]
    assert list(everything["partition"]) == ["2024-03-01", "2024-03-01", "2024-03-02", "2024-03-03"]
    assert list(until["id"]) == ["p1", "p2", "p3"]


def test_read_all_frames_empty(local):
    assert storage.read_all_frames(local, "absent").empty


def test_json_round_trip(local):
    payload = {"text": "你好", "day": DAY, "n": [1, 2]}

    storage.write_json(local, "meta/run.json", payload)

    expected = {"text": "你好", "day": "2024-03-01", "n": [1, 2]}
    assert storage.read_json(local, "meta/run.json") == expected
    assert "你好" in local.read_bytes("meta/run.json").decode()


# S3 through a moto server (the moto_endpoint fixture is in conftest.py)


@pytest.fixture
def s3_store(moto_endpoint, request) -> S3Store:
    """An S3 store under a prefix of its own, so tests sharing the bucket do not meet."""
    store = open_store(f"s3://{BUCKET}/runs/{request.node.name}", endpoint_url=moto_endpoint)
    assert isinstance(store, S3Store)
    return store


def list_bucket_keys(store: S3Store) -> list[str]:
    response = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix + "/")
    return sorted(item["Key"] for item in response.get("Contents", []))


def test_s3_write_read(s3_store):
    s3_store.write_bytes("a/b.bin", b"\x00payload")

    assert s3_store.read_bytes("a/b.bin") == b"\x00payload"
    assert list_bucket_keys(s3_store) == [f"{s3_store.prefix}/a/b.bin"]


def test_s3_write_replaces(s3_store):
    s3_store.write_bytes("k.txt", b"old content")
    s3_store.write_bytes("k.txt", b"new")

    assert s3_store.read_bytes("k.txt") == b"new"


def test_s3_read_missing(s3_store):
    with pytest.raises(FileNotFoundError, match=f"s3://{BUCKET}/"):
        s3_store.read_bytes("absent.txt")


def test_s3_exists(s3_store):
    s3_store.write_bytes("d/file.txt.bak", b"x")
    s3_store.write_bytes("d/file.txt", b"x")

    assert s3_store.exists("d/file.txt")
    assert not s3_store.exists("d/file")
    assert not s3_store.exists("d/other.txt")


def test_s3_list_keys(s3_store):
    for key in ["ds/date=2024-03-02/part-0.parquet", "ds/date=2024-03-01/part-0.parquet",
                "other/x.txt"]:
        s3_store.write_bytes(key, b"x")

    assert s3_store.list_keys("ds/") == [
        "ds/date=2024-03-01/part-0.parquet",
        "ds/date=2024-03-02/part-0.parquet",
    ]
    assert s3_store.list_keys("missing/") == []


def test_s3_uri(s3_store):
    assert s3_store.uri("a/b.txt") == f"s3://{BUCKET}/{s3_store.prefix}/a/b.txt"


def test_s3_frame_round_trip(s3_store):
    uri = storage.write_frame(s3_store, "clean", DAY, make_frame([1, 2, 3]))

    assert uri == f"s3://{BUCKET}/{s3_store.prefix}/clean/date=2024-03-01/part-0.parquet"
    pd.testing.assert_frame_equal(storage.read_frame(s3_store, "clean", DAY), make_frame([1, 2, 3]))


def test_s3_rerun_replaces_partition(s3_store):
    storage.write_frame(s3_store, "clean", DAY, make_frame([1, 2, 3]))
    storage.write_frame(s3_store, "clean", DAY, make_frame([7]))

    assert list_bucket_keys(s3_store) == [f"{s3_store.prefix}/clean/date=2024-03-01/part-0.parquet"]
    assert list(storage.read_frame(s3_store, "clean", DAY)["id"]) == ["p7"]


def test_s3_read_frame_missing(s3_store):
    with pytest.raises(FileNotFoundError) as caught:
        storage.read_frame(s3_store, "clean", NEXT_DAY)

    message = str(caught.value)
    assert "'clean'" in message
    assert "2024-03-02" in message
    assert message.startswith(f"partition s3://{BUCKET}/")


def test_s3_partitions_and_read_all(s3_store):
    storage.write_frame(s3_store, "clean", NEXT_DAY, make_frame([3]))
    storage.write_frame(s3_store, "clean", DAY, make_frame([1, 2]))
    storage.write_frame(s3_store, "clean_extra", LAST_DAY, make_frame([9]))

    everything = storage.read_all_frames(s3_store, "clean")

    assert storage.list_partitions(s3_store, "clean") == [DAY, NEXT_DAY]
    assert list(everything["id"]) == ["p1", "p2", "p3"]
    assert list(everything["partition"]) == ["2024-03-01", "2024-03-01", "2024-03-02"]


def test_s3_without_prefix(moto_endpoint):
    store = open_store(f"s3://{BUCKET}", endpoint_url=moto_endpoint)
    key = "no-prefix-test/k.json"

    storage.write_json(store, key, {"a": 1})

    assert storage.read_json(store, key) == {"a": 1}
    assert store.uri(key) == f"s3://{BUCKET}/{key}"
    assert store.list_keys("no-prefix-test/") == [key]

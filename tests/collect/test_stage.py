"""The collection stage on bad input: every record is accounted for, reruns replace."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from tasks import jobs, storage
from tasks.collect import stage

DAY = dt.date(2026, 12, 4)


def _write_posts(folder, lines: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "posts.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def _post(post_id: str, text: str) -> bytes:
    return json.dumps({"id": post_id, "text": text}, ensure_ascii=False).encode()


@pytest.fixture
def bad_input(tmp_path):
    folder = tmp_path / "source"
    _write_posts(folder, [
        _post("ok-1", "Loving the new update 😍 https://t.co/abc"),   # line 1
        b'{"id": "broken", "text": "no closing brace"',                   # line 2
        json.dumps({"id": "no-text"}).encode(),                           # line 3
        _post("empty", ""),                                               # line 4
        b'{"id": "latin1", "text": "caf\xe9 au lait"}',                   # line 5
        _post("huge", "x" * 50_000),                                      # line 6
        _post("ok-2", "Train delayed again. Not happy."),                 # line 7
        _post("ok-2", "Train delayed again. Not happy."),                 # line 8: exact duplicate
        _post("rt-1", "RT @someone: Train delayed again. Not happy."),    # line 9: retweet copy
        _post("ok-3", "mail me at jane.doe@example.com or +1 415-555-0134"),  # line 10
    ])
    return folder


def _quarantine_by_line(settings) -> dict[int, dict]:
    store = storage.open_store(settings.store)
    frame = storage.read_frame(store, stage.QUARANTINE, DAY)
    return {int(row["line"]): row for row in frame.to_dict("records")}


def test_counts_add_up(settings, bad_input):
    manifest = jobs.collect_day(DAY, str(bad_input), settings)
    assert manifest["collected"] == 10
    assert manifest["clean"] == 3
    assert manifest["duplicates"] == 2
    assert manifest["quarantined"] == 5


@pytest.mark.parametrize("line, field, words", [
    (2, "record", "invalid JSON"),
    (3, "text", "text is missing"),
    (4, "text", "empty"),
    (5, "record", "not valid UTF-8"),
    (6, "text", "50000 characters"),
])
def test_quarantine_names_line_and_field(settings, bad_input, line, field, words):
    jobs.collect_day(DAY, str(bad_input), settings)
    entry = _quarantine_by_line(settings)[line]
    assert entry["field"] == field
    assert f"line {line}" in entry["reason"]
    assert words in entry["reason"]
    assert entry["fix"]
    assert entry["raw"]


def test_clean_text_masked(settings, bad_input):
    jobs.collect_day(DAY, str(bad_input), settings)
    clean = storage.read_frame(storage.open_store(settings.store), stage.CLEAN, DAY)
    texts = dict(zip(clean["id"], clean["text"]))
    assert texts["ok-1"] == "Loving the new update 😍 http"
    assert texts["ok-3"] == "mail me at [email] or [phone]"


def test_rerun_replaces_partitions(settings, bad_input):
    first = jobs.collect_day(DAY, str(bad_input), settings)
    second = jobs.collect_day(DAY, str(bad_input), settings)
    store = storage.open_store(settings.store)
    assert first == second
    assert store.list_keys(f"{stage.CLEAN}/") == [storage.partition_key(stage.CLEAN, DAY)]
    assert len(storage.read_frame(store, stage.CLEAN, DAY)) == 3


def test_sample_day_accounts_for_every_record(settings):
    manifest = jobs.collect_day(DAY, "sample", settings)
    assert manifest["collected"] == manifest["clean"] + manifest["duplicates"] + manifest["quarantined"]
    assert manifest["quarantined"] >= 6
    assert manifest["duplicates"] >= 1


def test_empty_day(settings, tmp_path):
    folder = tmp_path / "empty"
    _write_posts(folder, [])
    manifest = jobs.collect_day(DAY, str(folder), settings)
    assert manifest["collected"] == 0
    assert manifest["clean"] == 0


def test_count_mismatch_raises(settings, bad_input):
    jobs.collect_day(DAY, str(bad_input), settings)
    store = storage.open_store(settings.store)
    clean = storage.read_frame(store, stage.CLEAN, DAY)
    storage.write_frame(store, stage.CLEAN, DAY, clean.iloc[:1])
    with pytest.raises(stage.CountMismatchError, match="collected 10 records"):
        stage.write_manifest(store, DAY, "test")


def test_duplicates_point_at_original(settings, bad_input):
    jobs.collect_day(DAY, str(bad_input), settings)
    duplicates = storage.read_frame(storage.open_store(settings.store), stage.DUPLICATES, DAY)
    assert sorted(duplicates["duplicate_of"]) == ["ok-2", "ok-2"]
    assert isinstance(duplicates, pd.DataFrame)


def test_manifest_reports_failed_expectations(settings, bad_input):
    manifest = jobs.collect_day(DAY, str(bad_input), settings)
    raw_failures = " ".join(manifest["failed_expectations"]["raw_posts"])
    assert "expect_column_values_to_be_null(parse_error): 2 rows" in raw_failures
    assert manifest["failed_expectations"]["clean_posts"] == []

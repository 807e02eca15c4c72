"""Label history: corrections, versions, the training view and the label versions hash."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from tasks import storage
from tasks.annotate.history import (
    label_history,
    label_id,
    label_versions,
    save_label_versions,
    training_view,
)
from tasks.annotate.labels import LABELS, import_labels, load_all_labels

DAY = dt.date(2024, 3, 1)
NEXT_DAY = dt.date(2024, 3, 2)
LABEL_SET = ["negative", "neutral", "positive"]
FIRST_BATCH = [
    {"post_id": "p1", "text": "love the update", "label": "positive", "annotator": "ann",
     "annotated_at": "2024-03-01T09:00:00Z"},
    {"post_id": "p2", "text": "it rained", "label": "neutral", "annotator": "ann",
     "annotated_at": "2024-03-01T09:05:00Z"},
]
CORRECTION = [
    {"post_id": "p1", "text": "love the update", "label": "negative", "annotator": "bob",
     "annotated_at": "2024-03-02T08:00:00Z"},
]
# sha256 over the lines '["p1", 2, "love the update", "negative"]' and
# '["p2", 1, "it rained", "neutral"]', each followed by a newline: the label versions
# ["p1@2", "p2@1"] after the correction, with their texts and labels.
CORRECTED_SHA256 = "87cf5917953789ad415fb4eeaa23380fcf93c1991773d41448494dc53d6aa167"


@pytest.fixture
def store(tmp_path) -> storage.LocalStore:
    return storage.LocalStore(tmp_path / "store")


def import_rows(store, folder: Path, day: dt.date, name: str, rows: list[dict]) -> dict:
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return import_labels(store, day, [path], LABEL_SET)


@pytest.fixture
def corrected(store, tmp_path):
    import_rows(store, tmp_path, DAY, "first.jsonl", FIRST_BATCH)
    import_rows(store, tmp_path, NEXT_DAY, "fix.jsonl", CORRECTION)
    return store


def test_correction_replaces_in_view(corrected):
    view = load_all_labels(corrected)

    assert dict(zip(view["post_id"], view["label"])) == {"p1": "negative", "p2": "neutral"}
    p1 = view[view["post_id"] == "p1"].iloc[0]
    assert p1["version"] == 2
    assert p1["annotator"] == "bob"
    assert p1["batch"] == "2024-03-02"
    assert p1["annotated_at"] == "2024-03-02T08:00:00Z"


def test_history_keeps_both(corrected):
    history = label_history(corrected, LABELS)

    p1 = history[history["label_id"] == "p1"]
    assert list(p1["label"]) == ["positive", "negative"]
    assert list(p1["version"]) == [1, 2]
    assert list(p1["annotator"]) == ["ann", "bob"]
    assert list(p1["batch"]) == ["2024-03-01", "2024-03-02"]
    assert list(p1["annotated_at"]) == ["2024-03-01T09:00:00Z", "2024-03-02T08:00:00Z"]
    assert len(history) == 3


def test_view_until_day(corrected):
    view = load_all_labels(corrected, until=DAY)

    assert dict(zip(view["post_id"], view["label"])) == {"p1": "positive", "p2": "neutral"}
    assert set(view["version"]) == {1}


def test_label_versions_values(corrected):
    versions = label_versions(load_all_labels(corrected))

    assert versions.labels == ["p1@2", "p2@1"]
    assert versions.count == 2
    assert versions.sha256 == CORRECTED_SHA256


def test_label_versions_change_with_correction(store, tmp_path):
    import_rows(store, tmp_path, DAY, "first.jsonl", FIRST_BATCH)
    before = label_versions(load_all_labels(store))
    import_rows(store, tmp_path, NEXT_DAY, "fix.jsonl", CORRECTION)
    after = label_versions(load_all_labels(store))

    assert before.labels == ["p1@1", "p2@1"]
    assert before.sha256 != after.sha256


def test_label_versions_rerun_stable(corrected, tmp_path):
    import_rows(corrected, tmp_path, NEXT_DAY, "fix.jsonl", CORRECTION)

    assert label_versions(load_all_labels(corrected)).sha256 == CORRECTED_SHA256


def test_label_versions_empty():
    versions = label_versions(pd.DataFrame())

    assert versions.labels == []
    assert versions.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_save_label_versions(corrected):
    versions = label_versions(load_all_labels(corrected))

    uri = save_label_versions(corrected, versions)

    assert uri.endswith(f"label_versions/{CORRECTED_SHA256}.json")
    stored = storage.read_json(corrected, f"label_versions/{CORRECTED_SHA256}.json")
    assert stored == {"labels": ["p1@2", "p2@1"], "sha256": CORRECTED_SHA256, "count": 2}


def test_text_without_post_id_corrected(store, tmp_path):
    import_rows(store, tmp_path, DAY, "a.jsonl", [{"text": "same text", "label": "positive"}])
    import_rows(store, tmp_path, NEXT_DAY, "b.jsonl", [{"text": "same text", "label": "neutral"}])

    view = load_all_labels(store)

    assert list(view["label"]) == ["neutral"]
    assert list(view["version"]) == [2]
    assert view["label_id"][0] == label_id(None, "same text")
    assert view["label_id"][0].startswith("text:")


def test_older_partitions_get_ids(store):
    legacy = pd.DataFrame({"text": ["old one", "old two"], "label": ["positive", "negative"],
                           "post_id": ["p7", None], "annotator": ["ann", "ann"],
                           "annotated_at": [None, None], "source_file": ["x.jsonl"] * 2,
                           "line": [1, 2]})
    storage.write_frame(store, LABELS, DAY, legacy)

    view = training_view(store, LABELS)

    assert list(view["label_id"]) == ["p7", label_id(None, "old two")]
    assert list(view["version"]) == [1, 1]

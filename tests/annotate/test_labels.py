"""Tests for reading label files, label import, the import ledger and the demo annotator.

import_labels validates with the real Great Expectations labels suite; the first call
takes a few seconds.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from tasks import storage
from tasks.annotate.export import ANNOTATION_TASKS, export_for_labeling
from tasks.annotate.formats.label_studio import build_tasks
from tasks.annotate.labels import (
    LABEL_COLUMNS,
    LABELS,
    LABELS_QUARANTINE,
    files_to_import,
    import_labels,
    load_all_labels,
    read_label_file,
)
from tasks.annotate.simulate import complete_label_studio_tasks, write_export
from tasks.clean.text import normalize_text

DAY = dt.date(2024, 3, 1)
NEXT_DAY = dt.date(2024, 3, 2)
LABEL_SET = ["negative", "neutral", "positive"]


@pytest.fixture
def store(tmp_path) -> storage.LocalStore:
    return storage.LocalStore(tmp_path / "store")


@pytest.fixture
def inbox(tmp_path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def make_annotation(
    choice: str, updated_at: str, completed_by=None, cancelled: bool = False
) -> dict:
    return {
        "id": 1, "completed_by": completed_by, "was_cancelled": cancelled,
        "updated_at": updated_at,
        "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                    "value": {"choices": [choice]}}],
    }


def write_json(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload, ensure_ascii=False))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def make_clean_posts(count: int) -> pd.DataFrame:
    raw = [f"Post {n}: mail user{n}@example.com or call +1 415-555-01{n:02d}" for n in range(count)]
    return pd.DataFrame({
        "id": [f"p{n:03d}" for n in range(count)],
        "text": [normalize_text(text) for text in raw],
        "lang": ["en"] * count,
    })


# read_label_file: Label Studio export


def test_label_studio_choice(tmp_path):
    path = write_json(tmp_path / "export.json", [{
        "id": 10, "data": {"text": "great app", "post_id": "p1"},
        "annotations": [make_annotation("positive", "2024-03-01T10:00:00Z",
                                   completed_by={"id": 7, "email": "ann@example.org"})],
    }])

    rows = read_label_file(path)

    assert list(rows.columns) == [*LABEL_COLUMNS, "parse_error"]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["text"] == "great app"
    assert row["label"] == "positive"
    assert row["post_id"] == "p1"
    assert row["annotator"] == "ann@example.org"
    assert row["annotated_at"] == "2024-03-01T10:00:00Z"
    assert row["source_file"] == "export.json"
    assert row["line"] == 1


def test_label_studio_latest_wins(tmp_path):
    path = write_json(tmp_path / "export.json", [{
        "data": {"text": "meh", "post_id": "p1"},
        "annotations": [
            make_annotation("neutral", "2024-03-02T09:00:00Z",
                            completed_by={"email": "late@x.org"}),
            make_annotation("positive", "2024-03-01T09:00:00Z",
                            completed_by={"email": "early@x.org"}),
        ],
    }])

    row = read_label_file(path).iloc[0]

    assert row["label"] == "neutral"
    assert row["annotator"] == "late@x.org"


def test_label_studio_cancelled_ignored(tmp_path):
    path = write_json(tmp_path / "export.json", [{
        "data": {"text": "meh", "post_id": "p1"},
        "annotations": [
            make_annotation("negative", "2024-03-03T09:00:00Z", completed_by=3, cancelled=True),
            make_annotation("positive", "2024-03-01T09:00:00Z", completed_by=4),
        ],
    }])

    row = read_label_file(path).iloc[0]

    assert row["label"] == "positive"
    assert row["annotator"] == "4"


def test_label_studio_only_cancelled(tmp_path):
    path = write_json(tmp_path / "export.json", [{
        "data": {"text": "meh", "post_id": "p1"},
        "annotations": [make_annotation("negative", "2024-03-03T09:00:00Z", cancelled=True)],
    }])

    row = read_label_file(path).iloc[0]

    assert pd.isna(row["label"])
    assert pd.isna(row["annotator"])
    assert row["text"] == "meh"


def test_label_studio_annotator_id_fallback(tmp_path):
    path = write_json(tmp_path / "export.json", [{
        "data": {"text": "ok", "post_id": "p1"},
        "annotations": [
            make_annotation("neutral", "2024-03-01T09:00:00Z", completed_by={"id": 12})],
    }])

    assert read_label_file(path).iloc[0]["annotator"] == "12"


def test_label_studio_skips_other_results(tmp_path):
    task = {"data": {"text": "ok", "post_id": "p1"},
            "annotations": [make_annotation("negative", "2024-03-01T09:00:00Z")]}
    task["annotations"][0]["result"].insert(
        0, {"type": "textarea", "value": {"text": ["a note"]}})
    path = write_json(tmp_path / "export.json", [task])

    assert read_label_file(path).iloc[0]["label"] == "negative"


def test_label_studio_item_numbers(tmp_path):
    tasks = [
        {"data": {"text": f"t{n}", "post_id": f"p{n}"},
         "annotations": [make_annotation("neutral", "2024-03-01T09:00:00Z")]}
        for n in range(3)
    ]
    path = write_json(tmp_path / "export.json", tasks)

    assert list(read_label_file(path)["line"]) == [1, 2, 3]


def test_label_studio_utf8_bom(tmp_path):
    path = tmp_path / "export.json"
    payload = [{"data": {"text": "好", "post_id": "p1"},
                "annotations": [make_annotation("positive", "2024-03-01T09:00:00Z")]}]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(payload, ensure_ascii=False).encode())

    assert read_label_file(path).iloc[0]["text"] == "好"


# read_label_file: JSONL and CSV


def test_jsonl_label_file(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"text": "good", "label": "positive", "id": "p1", "annotator": "ann"}\n'
        "\n"
        '{"text": "bad", "label": "negative", "post_id": "p2", '
        '"annotated_at": "2024-03-01T09:00:00Z"}\n'
    )

    rows = read_label_file(path)

    assert list(rows["text"]) == ["good", "bad"]
    assert list(rows["label"]) == ["positive", "negative"]
    assert list(rows["post_id"]) == ["p1", "p2"]
    assert list(rows["line"]) == [1, 3]
    assert rows.iloc[0]["annotator"] == "ann"
    assert rows.iloc[1]["annotated_at"] == "2024-03-01T09:00:00Z"
    assert set(rows["source_file"]) == {"labels.jsonl"}


def test_csv_label_file(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text('text,label,id\n"good, really",positive,p1\nbad,negative,p2\n')

    rows = read_label_file(path)

    assert list(rows.columns) == [*LABEL_COLUMNS, "parse_error"]
    assert list(rows["text"]) == ["good, really", "bad"]
    assert list(rows["label"]) == ["positive", "negative"]
    assert list(rows["post_id"]) == ["p1", "p2"]
    assert list(rows["line"]) == [2, 3]
    assert set(rows["source_file"]) == {"labels.csv"}


# import_labels


def test_import_labels_quarantine(store, tmp_path):
    csv_path = tmp_path / "batch.csv"
    csv_path.write_text("text,label\nlove it,positive\n,negative\nfine,angry\n")
    jsonl_path = write_jsonl(tmp_path / "more.jsonl", [
        {"text": "mail bob@example.com", "label": "neutral", "id": "p9"},
        {"text": "   ", "label": "positive"},
    ])

    counts = import_labels(store, DAY, [csv_path, jsonl_path], LABEL_SET)

    assert counts == {"files": 2, "annotations": 2, "labels": 2, "entity_labels": 0,
                      "review": 0, "quarantined": 3}
    accepted = storage.read_frame(store, LABELS, DAY)
    assert list(accepted["text"]) == ["love it", "mail [email]"]
    assert list(accepted["label"]) == ["positive", "neutral"]

    quarantine = storage.read_frame(store, LABELS_QUARANTINE, DAY)
    assert list(zip(quarantine["source_file"], quarantine["line"], quarantine["field"])) == [
        ("batch.csv", 3, "text"), ("batch.csv", 4, "label"), ("more.jsonl", 2, "text"),
    ]
    reasons = list(quarantine["reason"])
    assert reasons[0].startswith("batch.csv item 3, field 'text': text is empty")
    assert reasons[1].startswith(
        "batch.csv item 4, field 'label': label is not in the task's label set")
    assert "'angry'" in reasons[1]
    assert reasons[2].startswith("more.jsonl item 2, field 'text': text is empty")
    assert all(quarantine["fix"].str.len() > 0)


def test_import_labels_missing_label(store, tmp_path):
    path = write_json(tmp_path / "export.json", [
        {"data": {"text": "done", "post_id": "p1"},
         "annotations": [make_annotation("positive", "2024-03-01T09:00:00Z")]},
        {"data": {"text": "skipped", "post_id": "p2"}, "annotations": []},
    ])

    counts = import_labels(store, DAY, [path], LABEL_SET)

    quarantine = storage.read_frame(store, LABELS_QUARANTINE, DAY)
    assert counts["labels"] == 1
    assert list(quarantine["field"]) == ["label"]
    assert quarantine.iloc[0]["reason"].startswith(
        "export.json item 2, field 'label': label is missing")


def test_import_labels_rerun_replaces(store, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "good", "label": "positive"}])

    import_labels(store, DAY, [path], LABEL_SET)
    import_labels(store, DAY, [path], LABEL_SET)

    assert len(storage.read_frame(store, LABELS, DAY)) == 1
    assert store.list_keys(f"{LABELS}/date=2024-03-01/") == [
        f"{LABELS}/date=2024-03-01/agreement.json", f"{LABELS}/date=2024-03-01/part-0.parquet"]


def test_import_labels_no_files(store):
    counts = import_labels(store, DAY, [], LABEL_SET)

    assert counts == {"files": 0, "annotations": 0, "labels": 0, "entity_labels": 0,
                      "review": 0, "quarantined": 0}
    assert storage.read_frame(store, LABELS, DAY).empty


def test_empty_quarantine_keeps_columns(store, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "good", "label": "positive"}])

    import_labels(store, DAY, [path], LABEL_SET)

    quarantine = storage.read_frame(store, LABELS_QUARANTINE, DAY)
    assert {"source_file", "line", "field", "reason"} <= set(quarantine.columns)


# files_to_import and the ledger


def test_files_to_import_filters(inbox):
    for name in ["b.csv", "a.json", "c.jsonl", "notes.txt", "d.parquet", "e.CONLL", "f.zip"]:
        (inbox / name).write_text(f"{name}\n")
    (inbox / "folder.json").mkdir()

    chosen = files_to_import(storage.LocalStore(inbox.parent / "store"), inbox, DAY)

    assert [p.name for p in chosen] == ["a.json", "b.csv", "c.jsonl", "e.CONLL", "f.zip"]


def test_files_to_import_missing_inbox(store, tmp_path):
    assert files_to_import(store, tmp_path / "absent", DAY) == []


def test_ledger_day_and_rerun(store, inbox):
    first = write_jsonl(inbox / "first.jsonl", [{"text": "good", "label": "positive"}])
    import_labels(store, DAY, files_to_import(store, inbox, DAY), LABEL_SET)
    second = write_jsonl(inbox / "second.jsonl", [{"text": "bad", "label": "negative"}])

    next_day = files_to_import(store, inbox, NEXT_DAY)
    rerun = files_to_import(store, inbox, DAY)

    assert next_day == [second]
    assert rerun == [first, second]


def test_ledger_rerun_keeps_labels(store, inbox):
    write_jsonl(inbox / "first.jsonl", [{"text": "good", "label": "positive"}])
    import_labels(store, DAY, files_to_import(store, inbox, DAY), LABEL_SET)

    import_labels(store, DAY, files_to_import(store, inbox, DAY), LABEL_SET)

    assert list(storage.read_frame(store, LABELS, DAY)["text"]) == ["good"]


def test_ledger_by_content(store, inbox):
    write_jsonl(inbox / "first.jsonl", [{"text": "good", "label": "positive"}])
    import_labels(store, DAY, files_to_import(store, inbox, DAY), LABEL_SET)
    (inbox / "copy.jsonl").write_bytes((inbox / "first.jsonl").read_bytes())
    edited = write_jsonl(inbox / "edited.jsonl", [{"text": "good", "label": "neutral"}])

    assert files_to_import(store, inbox, NEXT_DAY) == [edited]


def test_load_all_labels_latest_wins(store, inbox):
    write_jsonl(inbox / "a.jsonl", [{"text": "same text", "label": "positive"}])
    import_labels(store, DAY, files_to_import(store, inbox, DAY), LABEL_SET)
    write_jsonl(inbox / "b.jsonl", [{"text": "same text", "label": "negative"},
                                    {"text": "other", "label": "neutral"}])
    import_labels(store, NEXT_DAY, files_to_import(store, inbox, NEXT_DAY), LABEL_SET)

    everything = load_all_labels(store)
    until = load_all_labels(store, until=DAY)

    assert dict(zip(everything["text"], everything["label"])) == {
        "same text": "negative", "other": "neutral"}
    assert dict(zip(until["text"], until["label"])) == {"same text": "positive"}


# complete_label_studio_tasks and write_export


def test_simulated_export_round_trip(tmp_path):
    tasks = build_tasks(make_clean_posts(4).to_dict("records"), "sentiment")
    gold = {"p000": "positive", "p001": "negative", "p003": "neutral"}

    exported = complete_label_studio_tasks(tasks, gold, annotator="bot@example.org")
    path = write_export(exported, tmp_path / "inbox", DAY)
    rows = read_label_file(path)

    assert path.name == "label-studio-export-2024-03-01.json"
    labeled = rows.dropna(subset=["label"])
    assert dict(zip(labeled["post_id"], labeled["label"])) == gold
    assert rows.loc[rows["post_id"] == "p002", "label"].isna().all()
    assert set(labeled["annotator"]) == {"bot@example.org"}
    assert list(rows["text"]) == [t["data"]["text"] for t in tasks]


def test_simulated_export_imports(store, inbox):
    export_for_labeling(store, DAY, make_clean_posts(6), size=6, labels=LABEL_SET)
    tasks = storage.read_json(
        store, storage.partition_key(ANNOTATION_TASKS, DAY, "sentiment.label_studio.json"))
    gold = {f"p{n:03d}": LABEL_SET[n % 3] for n in range(6)}
    write_export(complete_label_studio_tasks(tasks, gold), inbox, DAY)

    counts = import_labels(store, DAY, files_to_import(store, inbox, DAY), LABEL_SET)

    labels = storage.read_frame(store, LABELS, DAY)
    assert counts["labels"] == 6
    assert counts["quarantined"] == 0
    assert dict(zip(labels["post_id"], labels["label"])) == gold

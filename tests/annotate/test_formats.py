"""Reading finished exports of each tool into annotation rows: the hard cases."""

from __future__ import annotations

import json
import logging

import pytest

from tasks.annotate.annotations import read_annotation_file
from tasks.annotate.formats.conll import align_tokens

POST_TEXTS = {"c1": "New York rocks", "c2": "😀 Paris"}


def read(tmp_path, name: str, content: str, post_texts=None):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return read_annotation_file(path, post_texts or {})


def label_studio_task(text: str, annotations: list[dict], task: str | None = None) -> dict:
    data = {"text": text, "post_id": "t1"}
    if task:
        data["task"] = task
    return {"id": 1, "data": data, "annotations": annotations}


def span_result(start: int, end: int, label: str, text: str | None = None) -> dict:
    value = {"start": start, "end": end, "labels": [label]}
    if text is not None:
        value["text"] = text
    return {"type": "labels", "from_name": "entities", "to_name": "text", "value": value}


# Label Studio


def test_label_studio_utf16_offsets(tmp_path):
    # JavaScript counts the emoji as two code units, so "Paris" is at 3-8 in UTF-16.
    task = label_studio_task("😀 Paris", [{"completed_by": 1, "result": [
        span_result(3, 8, "location", "Paris")]}])

    rows = read(tmp_path, "ls.json", json.dumps([task]))

    assert rows["spans"][0] == [[2, 7, "location"]]
    assert rows["task"][0] == "entities"
    assert rows["annotator"][0] == "1"


def test_label_studio_annotator_from_file_name(tmp_path):
    task = label_studio_task("ok", [{"result": [
        {"type": "choices", "value": {"choices": ["neutral"]}}]}])

    rows = read(tmp_path, "maria.json", json.dumps([task]))

    assert list(rows["annotator"]) == ["maria"]
    assert list(rows["label"]) == ["neutral"]


def test_label_studio_latest_per_annotator(tmp_path):
    def choice(label: str, when: str, person: str) -> dict:
        return {"completed_by": {"email": person}, "updated_at": when,
                "result": [{"type": "choices", "value": {"choices": [label]}}]}

    task = label_studio_task("meh", [
        choice("negative", "2024-03-02T00:00:00Z", "ann"),
        choice("positive", "2024-03-01T00:00:00Z", "ann"),
        choice("neutral", "2024-03-01T00:00:00Z", "bob"),
    ])

    rows = read(tmp_path, "ls.json", json.dumps([task]))

    assert dict(zip(rows["annotator"], rows["label"])) == {"ann": "negative", "bob": "neutral"}


def test_label_studio_empty_entity_annotation(tmp_path):
    task = label_studio_task("nothing here", [{"completed_by": 2, "result": []}], "entities")

    rows = read(tmp_path, "ls.json", json.dumps([task]))

    assert rows["spans"][0] == []
    assert rows["task"][0] == "entities"


def test_label_studio_invalid_span_result(tmp_path):
    task = label_studio_task("Paris", [{"completed_by": 2, "result": [
        {"type": "labels", "value": {"labels": ["location"]}}]}], "entities")

    rows = read(tmp_path, "ls.json", json.dumps([task]))

    assert rows["parse_error"][0].startswith("invalid span result")


def test_label_studio_not_a_list(tmp_path):
    with pytest.raises(ValueError, match="not a Label Studio JSON export"):
        read(tmp_path, "ls.json", json.dumps({"data": {}}))


# doccano and plain JSONL


def test_doccano_relation_entities(tmp_path):
    line = {"id": 4, "text": "Alice in Rome", "post_id": "d1",
            "entities": [{"id": 1, "label": "person", "start_offset": 0, "end_offset": 5},
                         {"id": 2, "label": "location", "start_offset": 9, "end_offset": 13}],
            "relations": []}

    rows = read(tmp_path, "ann.jsonl", json.dumps(line) + "\n")

    assert rows["spans"][0] == [[0, 5, "person"], [9, 13, "location"]]
    assert rows["post_id"][0] == "d1"
    assert rows["annotator"][0] == "ann"


def test_doccano_post_id_over_example_id(tmp_path):
    line = {"id": 17, "text": "fine", "post_id": "p9", "label": ["neutral"]}

    rows = read(tmp_path, "ann.jsonl", json.dumps(line) + "\n")

    assert rows["post_id"][0] == "p9"


def test_doccano_several_labels_rejected(tmp_path):
    line = {"text": "fine", "label": ["neutral", "positive"]}

    rows = read(tmp_path, "ann.jsonl", json.dumps(line) + "\n")

    assert rows["parse_error"][0] == "2 labels ['neutral', 'positive'] for a single-label task"


def test_doccano_bad_span(tmp_path):
    line = {"text": "fine", "task": "entities", "label": [[0, "x", "person"]]}

    rows = read(tmp_path, "ann.jsonl", json.dumps(line) + "\n")

    assert "is not [start, end, type]" in rows["parse_error"][0]


def test_jsonl_line_separator_in_text(tmp_path):
    line = json.dumps({"text": "one\u2028two", "label": "neutral"}, ensure_ascii=False)

    rows = read(tmp_path, "plain.jsonl", line + "\n")

    assert list(rows["text"]) == ["one\u2028two"]


# CoNLL


def test_conll_spans_on_exported_text(tmp_path):
    content = "-DOCSTART-\tc2\n😀\tO\nParis\tB-location\n"

    rows = read(tmp_path, "eve.conll", content, POST_TEXTS)

    assert rows["text"][0] == "😀 Paris"
    assert rows["spans"][0] == [[2, 7, "location"]]
    assert rows["annotator"][0] == "eve"


def test_conll_invalid_tag(tmp_path):
    rows = read(tmp_path, "eve.conll", "-DOCSTART-\tc1\nNew\tLOC\n", POST_TEXTS)

    assert "invalid IOB2 tag 'LOC'" in rows["parse_error"][0]


def test_conll_tokens_not_in_text(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tasks.annotate.formats.conll"):
        rows = read(tmp_path, "eve.conll", "-DOCSTART-\tc1\nOld\tO\nYork\tB-location\n",
                    POST_TEXTS)

    assert rows["text"][0] == "Old York"
    assert rows["spans"][0] == [[4, 8, "location"]]
    assert "tokens do not match its exported text" in caplog.text


def test_align_tokens():
    tokens = align_tokens("New  York!", ["New", "York", "!"])

    assert [(t.start, t.end) for t in tokens] == [(0, 3), (5, 9), (9, 10)]
    assert align_tokens("New York", ["York", "New"]) is None

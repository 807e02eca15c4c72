"""Reading retrieval training files: grouped posts, (query, post) pairs and their errors."""

from __future__ import annotations

import json

import pytest

from tasks.retrieve.data import GROUPS_MODE, PAIRS_MODE, read_retrieval_file


def _write_jsonl(path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def test_grouped_posts_from_jsonl(tmp_path):
    path = tmp_path / "posts.jsonl"
    _write_jsonl(path, [
        {"event": "flood", "text": "Water on Main St &amp; rising http://t.co/x"},
        {"event": "flood", "text": "sandbags needed"},
        {"event": "fire", "text": "smoke everywhere", "other": 1},
    ])
    data = read_retrieval_file(path, "event")
    assert data.mode == GROUPS_MODE
    assert data.group_field == "event"
    assert list(data.frame.columns) == ["text", "group"]
    assert list(data.frame["group"]) == ["flood", "flood", "fire"]
    assert data.frame["text"][0] == "Water on Main St & rising http"


def test_query_pairs_from_csv(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('query,text\nflood news,"water rising, stay safe"\nflood news,sandbags\n'
                    "fire,smoke\n,no query\n")
    data = read_retrieval_file(path, "event")
    assert data.mode == PAIRS_MODE
    assert data.group_field == "query"
    assert list(data.frame["group"]) == ["flood news", "flood news", "fire"]
    assert list(data.frame["text"]) == ["water rising, stay safe", "sandbags", "smoke"]


def test_cap_per_group_is_seeded(tmp_path):
    path = tmp_path / "posts.jsonl"
    _write_jsonl(path, [{"event": f"e{i % 2}", "text": f"post number {i}"} for i in range(40)])
    first = read_retrieval_file(path, "event", max_posts_per_group=5, seed=7)
    second = read_retrieval_file(path, "event", max_posts_per_group=5, seed=7)
    assert first.frame["group"].value_counts().to_dict() == {"e0": 5, "e1": 5}
    assert list(first.frame["text"]) == list(second.frame["text"])


def test_missing_group_column_named(tmp_path):
    path = tmp_path / "posts.jsonl"
    _write_jsonl(path, [{"topic": "flood", "text": "water"}])
    with pytest.raises(ValueError, match="neither the group field 'event'"):
        read_retrieval_file(path, "event")


def test_missing_text_column_named(tmp_path):
    path = tmp_path / "posts.jsonl"
    _write_jsonl(path, [{"event": "flood", "body": "water"}])
    with pytest.raises(ValueError, match="no 'text' column"):
        read_retrieval_file(path, "event")


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        read_retrieval_file(tmp_path / "absent.jsonl", "event")
    other = tmp_path / "posts.txt"
    other.write_text("text\n")
    with pytest.raises(ValueError, match="unsupported file type 'posts.txt'"):
        read_retrieval_file(other, "event")

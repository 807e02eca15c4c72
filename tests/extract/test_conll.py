"""CoNLL reading and writing, and the IOB2 repair."""

from __future__ import annotations

import logging

import pytest

from tasks.extract.conll import (
    TaggedPost,
    append_conll_column,
    entity_types,
    iter_conll_posts,
    read_conll,
    repair_iob2,
    tag_set,
    write_conll,
)

MIXED_CONLL = (
    "\ufeff-DOCSTART-\tO\n"
    "\n"
    "Alice\tB-person\n"
    "flew\tO\n"
    "to\tO\n"
    "New\tB-location\n"
    "York\tI-location\n"
    "\n"
    "\n"
    "-DOCSTART- -X- -X- O\n"
    "😀 O\r\n"
    "北 B-location\r\n"
    "京 I-location\r\n"
    "\n"
    "last\tO\n"
    "post\tO"
)


def test_read_mixed_separators(tmp_path):
    path = tmp_path / "mixed.conll"
    path.write_text(MIXED_CONLL, encoding="utf-8")

    posts = read_conll(path)

    assert [post.tokens for post in posts] == [
        ["Alice", "flew", "to", "New", "York"], ["😀", "北", "京"], ["last", "post"]]
    assert posts[0].tags == ["B-person", "O", "O", "B-location", "I-location"]
    assert posts[1].tags == ["O", "B-location", "I-location"]
    assert [post.line for post in posts] == [3, 11, 15]
    assert all(post.repaired == 0 for post in posts)


def test_round_trip_keeps_posts(tmp_path):
    source = tmp_path / "mixed.conll"
    source.write_text(MIXED_CONLL, encoding="utf-8")
    posts = read_conll(source)

    copy = tmp_path / "copy.conll"
    write_conll(copy, posts)
    again = read_conll(copy)

    assert [(p.tokens, p.tags) for p in again] == [(p.tokens, p.tags) for p in posts]
    assert copy.read_text(encoding="utf-8").startswith("Alice\tB-person\nflew\tO\n")
    assert copy.read_text(encoding="utf-8").endswith("last\tO\npost\tO\n\n")


def test_repair_counts_and_logs(tmp_path, caplog):
    path = tmp_path / "broken.conll"
    path.write_text(
        "the\tO\nBeatles\tI-group\nplayed\tO\n\n"
        "Paris\tB-location\nHilton\tI-person\nhotel\tI-person\n",
        encoding="utf-8",
    )

    with caplog.at_level(logging.WARNING, logger="tasks.extract.conll"):
        posts = read_conll(path)

    assert posts[0].tags == ["O", "B-group", "O"]
    assert posts[1].tags == ["B-location", "B-person", "I-person"]
    assert [post.repaired for post in posts] == [1, 1]
    messages = [record.getMessage() for record in caplog.records]
    assert any("line 2" in message and "'B-group'" in message for message in messages)
    assert any("line 6" in message and "'B-person'" in message for message in messages)


@pytest.mark.parametrize(
    ("tags", "expected", "changed"),
    [
        (["I-a"], ["B-a"], [0]),
        (["B-a", "I-a", "I-a"], ["B-a", "I-a", "I-a"], []),
        (["B-a", "I-b", "I-b"], ["B-a", "B-b", "I-b"], [1]),
        (["O", "I-a", "O", "I-a"], ["O", "B-a", "O", "B-a"], [1, 3]),
        (["B-a", "B-a", "I-a"], ["B-a", "B-a", "I-a"], []),
        ([], [], []),
    ],
)
def test_repair_iob2_cases(tags, expected, changed):
    assert repair_iob2(tags) == (expected, changed)


def test_repair_rejects_other_schemes():
    with pytest.raises(ValueError, match="E-person"):
        repair_iob2(["B-person", "E-person"])


def test_invalid_tag_names_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("a\tO\n\nb\tO\nc\tPERSON\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3.*PERSON"):
        read_conll(path)


def test_missing_tag_column_names_line(tmp_path):
    path = tmp_path / "tokens.conll"
    path.write_text("a\tO\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        read_conll(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_conll(tmp_path / "absent.conll")


def test_append_column_keeps_layout():
    lines = ["-DOCSTART-", "", "Alice\tB-person", "flew", "", "Tokyo O", ""]
    posts = list(iter_conll_posts(lines))
    values = {row.line: f"tag{row.line}" for rows in posts for row in rows}

    output = append_conll_column(lines, values)

    assert output == ["-DOCSTART-", "", "Alice\tB-person\ttag3", "flew tag4", "",
                      "Tokyo O tag6", ""]


def test_tag_set_from_posts():
    posts = [TaggedPost(["a", "b"], ["B-person", "O"]),
             TaggedPost(["c", "d"], ["B-location", "I-location"])]
    assert entity_types(posts) == ["location", "person"]
    assert tag_set(entity_types(posts)) == ["O", "B-location", "I-location", "B-person",
                                            "I-person"]

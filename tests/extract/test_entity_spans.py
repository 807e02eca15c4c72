"""Label Studio spans to tokens and IOB2 tags, and tags back to spans with original offsets."""

from __future__ import annotations

import logging

import pytest

from tasks.extract.spans import (
    Span,
    label_studio_posts,
    spans_to_tags,
    tags_to_spans,
    tokenize_text,
    utf16_to_index,
)

TEXT = "🎉 Met  Chen Wei at 北京大学 👩🏽‍💻 then flew to New York 🇺🇸!\n#Tokyo next"
ENTITIES = [("Chen Wei", "person"), ("北京大学", "group"), ("New York", "location"),
            ("Tokyo", "location")]


def _spans() -> list[Span]:
    return [Span(TEXT.index(name), TEXT.index(name) + len(name), kind) for name, kind in ENTITIES]


def _utf16(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le")) // 2


def _task(text: str, results: list[dict], **annotation) -> dict:
    return {"id": 7, "data": {"text": text},
            "annotations": [{"result": results, "was_cancelled": False, **annotation}]}


def _result(start: int, end: int, label: str, text: str | None) -> dict:
    value = {"start": start, "end": end, "labels": [label]}
    if text is not None:
        value["text"] = text
    return {"type": "labels", "from_name": "label", "to_name": "text", "value": value}


def test_tokens_slice_the_text():
    tokens = tokenize_text(TEXT)
    assert all(TEXT[t.start:t.end] == t.text for t in tokens)
    texts = [t.text for t in tokens]
    assert texts[:4] == ["🎉", "Met", "Chen", "Wei"]
    assert "👩🏽‍💻" in texts
    assert "🇺🇸" in texts
    assert texts[texts.index("at") + 1:texts.index("at") + 5] == ["北", "京", "大", "学"]
    assert texts[-3:] == ["#", "Tokyo", "next"]


def test_tokens_split_at_cuts():
    tokens = tokenize_text("NYCity rocks", cuts=[3])
    assert [t.text for t in tokens] == ["NYC", "ity", "rocks"]


def test_spans_tags_spans_round_trip():
    tokens, tags = spans_to_tags(TEXT, _spans())
    found = tags_to_spans(TEXT, tokens, tags)

    assert [(s["start"], s["end"], s["type"]) for s in found] == [
        (s.start, s.end, s.type) for s in _spans()]
    assert [s["text"] for s in found] == [name for name, _ in ENTITIES]
    assert tags[[t.text for t in tokens].index("北")] == "B-group"
    assert tags[[t.text for t in tokens].index("学")] == "I-group"


@pytest.mark.parametrize("offsets", ["code points", "utf-16"])
def test_label_studio_round_trip(offsets, caplog):
    convert = (lambda i: i) if offsets == "code points" else (lambda i: _utf16(TEXT, i))
    results = [_result(convert(s.start), convert(s.end), s.type, TEXT[s.start:s.end])
               for s in _spans()]

    with caplog.at_level(logging.WARNING, logger="tasks.extract.spans"):
        posts = label_studio_posts([_task(TEXT, results)])

    assert caplog.records == []

    tokens = tokenize_text(TEXT, [offset for s in _spans() for offset in (s.start, s.end)])
    assert posts[0].tokens == [t.text for t in tokens]
    found = tags_to_spans(TEXT, tokens, posts[0].tags)
    assert [(s["start"], s["end"], s["type"], s["text"]) for s in found] == [
        (s.start, s.end, s.type, TEXT[s.start:s.end]) for s in _spans()]


def test_utf16_offsets_differ_after_emoji():
    start = TEXT.index("New York")
    assert _utf16(TEXT, start) > start
    assert utf16_to_index(TEXT, _utf16(TEXT, start)) == start
    assert utf16_to_index("😀a", 1) is None


def test_span_inside_word_and_whitespace_trimmed():
    text = "love #Paris  so much"
    start = text.index("Paris")
    posts = label_studio_posts([_task(text, [_result(start, start + 6, "location", None)])])

    assert posts[0].tokens == ["love", "#", "Paris", "so", "much"]
    assert posts[0].tags == ["O", "O", "B-location", "O", "O"]


def test_mismatched_offsets_use_span_text(caplog):
    text = "flights from Oslo to Rome"
    with caplog.at_level(logging.WARNING, logger="tasks.extract.spans"):
        posts = label_studio_posts([_task(text, [_result(0, 4, "location", "Rome")])])
    assert posts[0].tags == ["O", "O", "O", "O", "B-location"]
    assert any("Rome" in record.getMessage() for record in caplog.records)


def test_overlapping_span_dropped(caplog):
    text = "New York City hall"
    results = [_result(0, 13, "location", "New York City"), _result(4, 8, "person", "York")]
    with caplog.at_level(logging.WARNING, logger="tasks.extract.spans"):
        posts = label_studio_posts([_task(text, results)])
    assert posts[0].tags == ["B-location", "I-location", "I-location", "O"]
    assert any("overlaps" in record.getMessage() for record in caplog.records)


def test_unannotated_and_cancelled_tasks_skipped():
    done = _task("Rome again", [_result(0, 4, "location", "Rome")])
    cancelled = {"data": {"text": "Oslo"},
                 "annotations": [{"result": [], "was_cancelled": True}]}
    empty = _task("nothing here", [])
    posts = label_studio_posts([done, cancelled, {"data": {"text": "x"}}, empty])

    assert [post.line for post in posts] == [1, 4]
    assert posts[1].tags == ["O", "O"]


def test_latest_annotation_wins():
    task = _task("Rome again", [_result(0, 4, "person", "Rome")], updated_at="2026-01-01")
    task["annotations"].append({"result": [_result(0, 4, "location", "Rome")],
                                "updated_at": "2026-02-01"})
    assert label_studio_posts([task])[0].tags == ["B-location", "O"]


def test_tags_to_spans_scores_and_orphans():
    text = "Bob Marley in Kingston"
    tokens = tokenize_text(text)
    tags = ["B-person", "I-person", "O", "I-location"]
    found = tags_to_spans(text, tokens, tags, [0.9, 0.7, 0.99, 0.5])

    assert found == [
        {"start": 0, "end": 10, "type": "person", "text": "Bob Marley", "score": 0.8},
        {"start": 14, "end": 22, "type": "location", "text": "Kingston", "score": 0.5},
    ]

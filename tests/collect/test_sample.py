"""Tests for the built-in sample source in tasks.collect.sample."""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter

import pytest

from tasks.collect.sample import (
    MALFORMED_KINDS,
    SENTIMENT_LABELS,
    SamplePost,
    generate_posts,
    generate_raw_lines,
    gold_labels,
)

DAY = datetime.date(2026, 12, 4)
OTHER_DAY = datetime.date(2026, 12, 5)
COUNT = 400
EXPECTED_KINDS = {
    "invalid_json",
    "missing_text",
    "empty_text",
    "whitespace_text",
    "invalid_utf8",
    "long_text",
}
CJK_PATTERN = re.compile(r"[\u4e00-\u9fff]")
EMAIL_PATTERN = re.compile(r"[\w.]+@[\w-]+\.[a-z]{2,}")
US_PHONE_PATTERN = re.compile(r"\+1 \d{3}-555-\d{4}")
CN_MOBILE_PATTERN = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
POSITIVE_EMOJI = ("😍", "🎉", "👍")
NEGATIVE_EMOJI = ("😡", "😞", "👎")


def classify_line(line: bytes) -> str | None:
    """Return the malformed kind of a raw line, or None for a well-formed line."""
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        record = json.loads(decoded)
    except json.JSONDecodeError:
        return "invalid_json"
    if "text" not in record:
        return "missing_text"
    if record["text"] == "":
        return "empty_text"
    if not record["text"].strip():
        return "whitespace_text"
    if len(record["text"]) >= 50_000:
        return "long_text"
    return None


@pytest.fixture(scope="module")
def posts() -> list[SamplePost]:
    return generate_posts(DAY, COUNT)


@pytest.fixture(scope="module")
def raw_lines() -> list[bytes]:
    return generate_raw_lines(DAY, COUNT)


@pytest.fixture(scope="module")
def well_formed_records(raw_lines: list[bytes]) -> list[dict[str, str]]:
    return [json.loads(line) for line in raw_lines if classify_line(line) is None]


def test_posts_deterministic_for_same_date(posts: list[SamplePost]) -> None:
    assert generate_posts(DAY, COUNT) == posts
    assert generate_posts(DAY, COUNT, seed=0) == posts


def test_raw_lines_deterministic_for_same_date(raw_lines: list[bytes]) -> None:
    assert generate_raw_lines(DAY, COUNT) == raw_lines


def test_gold_labels_deterministic_for_same_date() -> None:
    assert gold_labels(DAY, COUNT) == gold_labels(DAY, COUNT)


def test_posts_differ_between_dates(posts: list[SamplePost]) -> None:
    other_texts = [post.text for post in generate_posts(OTHER_DAY, COUNT)]
    texts = [post.text for post in posts]

    assert other_texts != texts
    assert sum(a != b for a, b in zip(texts, other_texts)) > COUNT // 2


def test_raw_lines_differ_between_dates(raw_lines: list[bytes]) -> None:
    assert generate_raw_lines(OTHER_DAY, COUNT) != raw_lines


def test_seed_changes_texts_and_ids(posts: list[SamplePost]) -> None:
    seeded = generate_posts(DAY, COUNT, seed=7)

    assert [post.text for post in seeded] != [post.text for post in posts]
    assert not {post.id for post in seeded} & {post.id for post in posts}


def test_datetime_input_matches_date(posts: list[SamplePost]) -> None:
    moment = datetime.datetime(2026, 12, 4, 15, 30, tzinfo=datetime.UTC)

    assert generate_posts(moment, COUNT) == posts


@pytest.mark.parametrize("count", [COUNT, 1000, 57])
def test_label_mix_within_bounds(count: int) -> None:
    labels = Counter(post.label for post in generate_posts(DAY, count))
    targets = {"negative": 0.35, "neutral": 0.30, "positive": 0.35}

    assert set(labels) == set(SENTIMENT_LABELS)
    for label, target in targets.items():
        share = labels[label] / count
        assert abs(share - target) <= 0.03, f"{label} share {share:.3f}, expected ~{target}"


def test_chinese_share_about_fifteen_percent(posts: list[SamplePost]) -> None:
    langs = Counter(post.lang for post in posts)

    assert set(langs) == {"en", "zh"}
    assert 0.12 <= langs["zh"] / COUNT <= 0.18


def test_lang_matches_script(posts: list[SamplePost]) -> None:
    for post in posts:
        has_cjk = bool(CJK_PATTERN.search(post.text))
        assert has_cjk == (post.lang == "zh"), post


def test_post_ids_unique(posts: list[SamplePost]) -> None:
    ids = [post.id for post in posts]

    assert len(set(ids)) == len(ids)
    assert ids[17] == "sample-2026-12-04-00017"


def test_post_fields_well_formed(posts: list[SamplePost]) -> None:
    for post in posts:
        created_at = datetime.datetime.strptime(post.created_at, "%Y-%m-%dT%H:%M:%SZ")
        assert created_at.date() == DAY, post
        assert re.fullmatch(r"user_\d{4}", post.author), post
        assert post.label in SENTIMENT_LABELS, post
        assert post.text.strip() == post.text, post
        assert post.text, post
        assert "\n" not in post.text, post


def test_posts_sorted_by_created_at(posts: list[SamplePost]) -> None:
    created = [post.created_at for post in posts]

    assert created == sorted(created)


def test_gold_labels_match_post_ids(posts: list[SamplePost]) -> None:
    labels = gold_labels(DAY, COUNT)

    assert list(labels) == [post.id for post in posts]
    for post in posts:
        assert labels[post.id] == post.label, post


def test_texts_mostly_unique(posts: list[SamplePost]) -> None:
    texts = {post.text for post in posts}

    assert len(texts) >= 0.95 * COUNT


def test_texts_contain_cleaning_noise() -> None:
    texts = [
        post.text
        for day in (DAY, OTHER_DAY, datetime.date(2027, 1, 1))
        for post in generate_posts(day, COUNT)
    ]

    def count_matching(predicate) -> int:
        return sum(1 for text in texts if predicate(text))

    assert count_matching(lambda text: re.search(r"(?<!\S)#\w+", text)) > 50
    assert count_matching(lambda text: re.search(r"#[^#\s]+#", text)) > 5
    assert count_matching(lambda text: re.search(r"@\w+", text)) > 50
    assert count_matching(lambda text: "https://t.co/" in text) > 20
    assert count_matching(lambda text: "&amp;" in text) > 5
    assert count_matching(lambda text: text.startswith("RT @user_")) > 5
    assert count_matching(EMAIL_PATTERN.search) > 5
    assert count_matching(US_PHONE_PATTERN.search) > 5
    assert count_matching(CN_MOBILE_PATTERN.search) >= 1
    assert count_matching(lambda text: any(e in text for e in POSITIVE_EMOJI)) > 20
    assert count_matching(lambda text: any(e in text for e in NEGATIVE_EMOJI)) > 20
    assert count_matching(lambda text: re.search(r"[a-z][😍🎉👍😡😞👎]", text)) > 5
    assert count_matching(lambda text: "not bad" in text) > 5


def test_raw_lines_have_no_newline(raw_lines: list[bytes]) -> None:
    for line in raw_lines:
        assert b"\n" not in line
        assert line


def test_raw_lines_contain_each_malformed_kind(raw_lines: list[bytes]) -> None:
    kinds = Counter(classify_line(line) for line in raw_lines)
    del kinds[None]

    assert set(MALFORMED_KINDS) == EXPECTED_KINDS
    assert set(kinds) == EXPECTED_KINDS
    assert all(number == 1 for number in kinds.values()), kinds


def test_invalid_utf8_line_contains_ff_fe(raw_lines: list[bytes]) -> None:
    invalid = [line for line in raw_lines if classify_line(line) == "invalid_utf8"]

    assert len(invalid) == 1
    assert b"\xff\xfe" in invalid[0]


def test_long_text_is_50000_chars(raw_lines: list[bytes]) -> None:
    long_lines = [line for line in raw_lines if classify_line(line) == "long_text"]

    assert len(long_lines) == 1
    assert len(json.loads(long_lines[0])["text"]) == 50_000


def test_other_raw_lines_parse_with_text(
    well_formed_records: list[dict[str, str]], posts: list[SamplePost]
) -> None:
    post_ids = {post.id for post in posts}

    for record in well_formed_records:
        assert set(record) == {"id", "text", "created_at", "author", "lang"}, record
        assert record["text"].strip(), record
        assert record["id"] in post_ids or "-repost-" in record["id"], record


def test_raw_lines_include_every_post(well_formed_records: list[dict[str, str]]) -> None:
    record_ids = {record["id"] for record in well_formed_records}

    assert set(gold_labels(DAY, COUNT)) <= record_ids


def test_raw_lines_exact_duplicates(raw_lines: list[bytes], posts: list[SamplePost]) -> None:
    repeats = Counter(raw_lines)
    duplicated = [line for line, number in repeats.items() if number > 1]
    post_ids = {post.id for post in posts}

    assert 0.02 * COUNT <= len(duplicated) <= 0.04 * COUNT
    for line in duplicated:
        assert repeats[line] == 2, line
        assert json.loads(line)["id"] in post_ids, line


def test_raw_lines_reposts_reuse_text(
    well_formed_records: list[dict[str, str]], posts: list[SamplePost]
) -> None:
    text_by_id = {post.id: post.text for post in posts}
    reposts = [record for record in well_formed_records if record["id"] not in text_by_id]

    assert 1 <= len(reposts) <= 0.02 * COUNT
    assert len({record["id"] for record in reposts}) == len(reposts)
    for record in reposts:
        assert record["text"] in text_by_id.values(), record


def test_raw_line_total(raw_lines: list[bytes], posts: list[SamplePost]) -> None:
    distinct_well_formed = {line for line in raw_lines if classify_line(line) is None}
    duplicates = len(raw_lines) - len(set(raw_lines))
    reposts = len(distinct_well_formed) - len(posts)

    assert len(raw_lines) == len(posts) + duplicates + reposts + len(EXPECTED_KINDS)


def test_zero_count_yields_only_malformed_lines() -> None:
    lines = generate_raw_lines(DAY, 0)

    assert generate_posts(DAY, 0) == []
    assert gold_labels(DAY, 0) == {}
    assert {classify_line(line) for line in lines} == EXPECTED_KINDS


def test_negative_count_rejected() -> None:
    with pytest.raises(ValueError, match="count must be >= 0"):
        generate_posts(DAY, -1)


def test_non_date_day_rejected() -> None:
    with pytest.raises(TypeError, match="day must be a datetime.date"):
        generate_posts("2026-12-04", COUNT)  # type: ignore[arg-type]

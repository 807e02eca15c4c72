"""Tests for text normalisation, masking of personal data, language and dedup keys."""

from __future__ import annotations

import pytest

from tasks.clean.text import (
    decode_escapes,
    dedup_key,
    detect_language,
    mask_personal_data,
    normalize_text,
)

# normalize_text


@pytest.mark.parametrize(("raw", "expected"), [
    ("Tom &amp; Jerry", "Tom & Jerry"),
    ("Tom &amp;amp; Jerry", "Tom & Jerry"),
    ("&lt;3 this &quot;app&quot;", '<3 this "app"'),
    ("caf&#233; &#x1F600;", "café 😀"),
])
def test_normalize_html_entities(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("It\\u2019s fine", "It’s fine"),
    ("\\u4f60\\u597d", "你好"),
    ("\\U0001F600 stays", "\\U0001F600 stays"),
    ("half \\ud83d pair", "half \\ud83d pair"),
])
def test_normalize_unicode_escapes(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_nfkc_full_width():
    assert normalize_text("ＡＢＣ１２３！") == "ABC123!"


def test_normalize_nfkc_ligature():
    assert normalize_text("ﬁne") == "fine"


@pytest.mark.parametrize("text", ["love it 😍🎉", "thumbs 👍🏽 up", "family 👨‍👩‍👧 day", "❤️"])
def test_normalize_keeps_emoji(text):
    assert normalize_text(text) == text


def test_normalize_collapses_whitespace():
    assert normalize_text("  a\t\tb\n\nc\u3000d  ") == "a b c d"


def test_normalize_masks_personal_data():
    raw = "Mail bob@example.com or call +1 415-555-0134, see https://t.co/x1 @bob"

    assert normalize_text(raw) == "Mail [email] or call [phone], see http @user"


def test_normalize_masks_full_width_email():
    # NFKC turns the full-width address into ASCII before masking.
    assert normalize_text("ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ") == "[email]"


def test_normalize_masks_escaped_handle():
    assert normalize_text("hi &#64;bob") == "hi @user"


def test_decode_escapes_double_entities():
    assert decode_escapes("&amp;lt;b&amp;gt;") == "<b>"


# mask_personal_data: links


@pytest.mark.parametrize(("raw", "expected"), [
    ("see https://example.com/a?b=1 now", "see http now"),
    ("see http://example.com now", "see http now"),
    ("see HTTPS://EXAMPLE.COM now", "see http now"),
    ("see https://t.co/AbC123 now", "see http now"),
    ("see t.co/AbC123 now", "see http now"),
    ("see bit.ly/xyz now", "see http now"),
    ("see t.cn/A6abc now", "see http now"),
    ("see www.example.com/page now", "see http now"),
])
def test_mask_urls(raw, expected):
    assert mask_personal_data(raw) == expected


# mask_personal_data: e-mail addresses


@pytest.mark.parametrize(("raw", "expected"), [
    ("write bob@example.com today", "write [email] today"),
    ("write a.b+tag@mail.example.co.uk!", "write [email]!"),
    ("write bob@example.com.", "write [email]."),
    ("邮箱 xiao_ming@qq.com 谢谢", "邮箱 [email] 谢谢"),
])
def test_mask_emails(raw, expected):
    assert mask_personal_data(raw) == expected


def test_mask_email_not_handle():
    masked = mask_personal_data("bob@example.com")

    assert "@user" not in masked


# mask_personal_data: phone numbers


@pytest.mark.parametrize(("raw", "expected"), [
    ("call +1 415-555-0134 now", "call [phone] now"),
    ("call (415) 555-0134 now", "call [phone] now"),
    ("call 415-555-0134.", "call [phone]."),
    ("call 415.555.0134", "call [phone]"),
    ("call +1 (415) 555-0134", "call [phone]"),
    ("call +44 20 7946 0958 now", "call [phone] now"),
    ("call 13812345678", "call [phone]"),
    ("手机 13812345678 联系", "手机 [phone] 联系"),
    ("手机：13812345678", "手机：[phone]"),
    ("call +86 138 1234 5678", "call [phone]"),
    ("call +8613812345678", "call [phone]"),
])
def test_mask_phones(raw, expected):
    assert mask_personal_data(raw) == expected


def test_mask_phone_after_cjk():
    assert mask_personal_data("电话13812345678联系我") == "电话[phone]联系我"


def test_mask_phone_no_space():
    assert mask_personal_data("call (415)555-0134") == "call [phone]"


@pytest.mark.parametrize("text", [
    "In 2024 it got better",
    "in 2024, 2025 and 2026",
    "it cost $15.99",
    "it cost $1,299.99 or ¥15.99",
    "meet at 10:30",
    "open 10:30-11:45",
    "on 2024-03-01 at 10:30:00",
    "on 03/01/2024",
    "order 123456789 shipped",
    "1,234,567 users",
    "score 3-2",
    "up +15 points",
    "version 1.2.3.4",
    "ISBN 978-3-16-148410-0",
    "20240301",
])
def test_mask_keeps_plain_numbers(text):
    assert mask_personal_data(text) == text


# mask_personal_data: handles


@pytest.mark.parametrize(("raw", "expected"), [
    ("hi @bob_1 and @alice.", "hi @user and @user."),
    ("@bob: hi", "@user: hi"),
    ("thanks @a", "thanks @user"),
    ("转发//@小明:好棒", "转发//@user:好棒"),
    ("好 //@小明: 同意//@Lily_W:哈哈", "好 //@user: 同意//@user:哈哈"),
])
def test_mask_handles(raw, expected):
    assert mask_personal_data(raw) == expected


def test_mask_no_handle_inside_word():
    assert mask_personal_data("x@bob") == "x@bob"


def test_mask_user_placeholder_stable():
    # Masking twice changes nothing, so re-cleaning cleaned text is safe.
    once = mask_personal_data("RT @bob: mail bob@example.com, +1 415-555-0134 https://t.co/x")

    assert mask_personal_data(once) == once


# detect_language


@pytest.mark.parametrize(("text", "expected"), [
    ("hello world", "en"),
    ("this is great 😍", "en"),
    ("你好世界", "zh"),
    ("今天天气很好 😊", "zh"),
    ("我用iPhone拍的", "zh"),
    ("😍🎉👍", "und"),
    ("12345 !!!", "und"),
    ("", "und"),
])
def test_detect_language(text, expected):
    assert detect_language(text) == expected


def test_detect_language_mostly_latin():
    assert detect_language("a long English sentence that mentions 北京 once") == "en"


# dedup_key


@pytest.mark.parametrize(("text", "expected"), [
    ("RT @user: Hello World", "hello world"),
    ("rt @user Hello World", "hello world"),
    ("RT @user: RT @user: Hello World", "hello world"),
    ("  Hello \t  WORLD  ", "hello world"),
    ("Straße", "strasse"),
])
def test_dedup_key(text, expected):
    assert dedup_key(text) == expected


def test_dedup_key_retweet_matches_original():
    assert dedup_key("RT @user: Great  launch!") == dedup_key("great launch!")


def test_dedup_key_keeps_inner_rt():
    assert dedup_key("I said RT @user: hello") == "i said rt @user: hello"


def test_dedup_key_different_texts():
    assert dedup_key("great launch") != dedup_key("great lunch")

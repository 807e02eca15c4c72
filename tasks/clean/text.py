"""Text normalisation and masking of personal data.

The placeholders match the convention of public tweet corpora (``@user`` for handles,
``http`` for links, ``[email]`` and ``[phone]``), so models trained on such corpora see the
same tokens in production.
"""

from __future__ import annotations

import html
import re
import unicodedata

URL = re.compile(r"(?:https?://|www\.)\S+|\b(?:t\.co|bit\.ly|t\.cn)/\S+", re.IGNORECASE)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Weibo re-post chains name the original author as "//@name:".
HANDLE = re.compile(r"(?<![\w@])@[\w\u4e00-\u9fff.-]{1,30}\w|(?<![\w@])@\w")
# Boundaries are ASCII letters and digits only: Chinese characters count as \w in Python's
# re, and a number written right after them ("电话13812345678") must still match.
PHONE = re.compile(
    r"(?<![0-9A-Za-z_+])(?:"
    r"\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}"  # international, +1 415-555-0134
    r"|(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"  # US, (415) 555-0134 or 415-555-0134
    r"|1[3-9]\d{9}"  # Chinese mobile, 13812345678
    r")(?![0-9A-Za-z_])"
)
UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
WHITESPACE = re.compile(r"\s+")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
RETWEET_PREFIX = re.compile(r"^(?:RT\s+@user:?\s*)+", re.IGNORECASE)


def decode_escapes(text: str) -> str:
    """Turn literal ``\\uXXXX`` sequences and HTML entities into the characters they name."""
    text = UNICODE_ESCAPE.sub(_escape_to_char, text)
    return html.unescape(html.unescape(text))


def _escape_to_char(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    # A lone surrogate half cannot be stored as UTF-8; keep the escape as written.
    return match.group(0) if 0xD800 <= ord(char) <= 0xDFFF else char


def mask_personal_data(text: str) -> str:
    """Replace links, e-mail addresses, phone numbers and handles with placeholders."""
    text = URL.sub("http", text)
    text = EMAIL.sub("[email]", text)
    text = PHONE.sub("[phone]", text)
    return HANDLE.sub("@user", text)


def normalize_text(text: str) -> str:
    """Decode escapes, apply Unicode NFKC, mask personal data and collapse white space.

    Emoji are kept: NFKC leaves them unchanged.
    """
    text = unicodedata.normalize("NFKC", decode_escapes(text))
    text = mask_personal_data(text)
    return WHITESPACE.sub(" ", text).strip()


def detect_language(text: str) -> str:
    """Return 'zh' for mostly Chinese text, 'en' for Latin-script text, else 'und'.

    NOTE: script-based only, so every Latin-script language is reported as 'en'.
    """
    cjk = len(CJK.findall(text))
    latin = len(LATIN.findall(text))
    if cjk and cjk >= latin / 4:
        return "zh"
    if latin:
        return "en"
    return "und"


def dedup_key(text: str) -> str:
    """Key under which two normalized texts count as the same post (retweets included)."""
    text = RETWEET_PREFIX.sub("", text)
    return WHITESPACE.sub(" ", text).strip().casefold()


_PLACEHOLDERS = re.compile(r"@user|\bhttp\b|\[email\]|\[phone\]|#")
_LANGUAGES = ["en", "zh", "es", "pt", "fr", "de", "it", "nl", "id", "tr", "ru", "ar", "ja", "ko"]


def identify_language(text: str) -> str:
    """Return the ISO 639-1 code of the post's language with langid, or 'und'.

    Chinese is decided by script first, because short Chinese posts are reliable by script
    and langid is slower. Text with fewer than 3 letters after removing placeholders is 'und'.
    """
    script = detect_language(text)
    if script == "zh":
        return "zh"
    stripped = _PLACEHOLDERS.sub(" ", text)
    if sum(ch.isalpha() for ch in stripped) < 3:
        return "und"
    return _langid().classify(stripped)[0]


def _langid():
    import langid

    if not getattr(_langid, "ready", False):
        langid.set_languages(_LANGUAGES)
        _langid.ready = True
    return langid

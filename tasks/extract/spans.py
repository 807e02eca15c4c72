"""Convert between entity spans with character offsets and tokens with IOB2 tags.

Text is split into tokens at whitespace and punctuation: a token is a run of letters,
digits and marks, a single Chinese or Japanese character, or any other single grapheme
(a punctuation mark or an emoji with its modifiers). Offsets are Python string indices
(code points) into the original text.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from tasks.extract.conll import OUTSIDE, TaggedPost

log = logging.getLogger(__name__)

_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
TOKEN_PATTERN = regex.compile(
    rf"[{_CJK}]"
    rf"|(?:(?![{_CJK}])[\p{{L}}\p{{M}}\p{{N}}_])+"
    r"|(?![\s\p{Cf}])\X"
)


@dataclass(frozen=True)
class Token:
    """A token and its character offsets in the text it came from."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Span:
    """An entity: its type and character offsets, end exclusive."""

    start: int
    end: int
    type: str


def tokenize_text(text: str, cuts: Iterable[int] = ()) -> list[Token]:
    """Split ``text`` into tokens, also splitting a token wherever a position in ``cuts`` falls.

    Cutting at span boundaries keeps an annotated span that starts or ends inside a word
    (``#Paris`` labeled as ``Paris``) aligned with whole tokens.
    """
    points = sorted(set(cuts))
    tokens = []
    for match in TOKEN_PATTERN.finditer(text):
        first = bisect.bisect_right(points, match.start())
        last = bisect.bisect_left(points, match.end())
        bounds = [match.start(), *points[first:last], match.end()]
        tokens.extend(Token(text[a:b], a, b) for a, b in itertools.pairwise(bounds))
    return tokens


def spans_to_tags(text: str, spans: Sequence[Span]) -> tuple[list[Token], list[str]]:
    """Tokenize ``text`` and tag the tokens inside each span with B-/I- of its type.

    A span that overlaps an earlier (or, at the same start, longer) span is dropped with a
    warning, because IOB2 cannot nest entities. So is a span that covers no token.
    """
    kept = _drop_overlapping(spans)
    tokens = tokenize_text(text, [offset for span in kept for offset in (span.start, span.end)])
    tags = [OUTSIDE] * len(tokens)
    starts = [token.start for token in tokens]
    for span in kept:
        first = bisect.bisect_left(starts, span.start)
        last = bisect.bisect_left(starts, span.end)
        if first == last:
            log.warning("span %d-%d %r covers no token, dropped", span.start, span.end,
                        text[span.start:span.end])
            continue
        tags[first:last] = [f"B-{span.type}"] + [f"I-{span.type}"] * (last - first - 1)
    return tokens, tags


def _drop_overlapping(spans: Sequence[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.start - s.end)):
        if kept and span.start < kept[-1].end:
            log.warning("span %d-%d (%s) overlaps span %d-%d (%s), dropped", span.start,
                        span.end, span.type, kept[-1].start, kept[-1].end, kept[-1].type)
            continue
        kept.append(span)
    return kept


def tags_to_spans(text: str, tokens: Sequence[Token], tags: Sequence[str],
                  scores: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Return the entities that ``tags`` mark as dicts of start, end, type, text and score.

    Offsets index ``text``. An I- tag that does not continue an entity of its type starts
    a new entity, as the IOB2 repair does. The score is the mean of the entity's token
    scores, and it is left out when ``scores`` is None.
    """
    spans: list[dict[str, Any]] = []
    members: list[int] = []
    for index, tag in enumerate(tags):
        if tag.startswith("I-") and members and tags[members[0]][2:] == tag[2:]:
            members.append(index)
            continue
        if members:
            spans.append(_span_record(text, tokens, tags, scores, members))
        members = [] if tag == OUTSIDE else [index]
    if members:
        spans.append(_span_record(text, tokens, tags, scores, members))
    return spans


def _span_record(text: str, tokens: Sequence[Token], tags: Sequence[str],
                 scores: Sequence[float] | None, members: list[int]) -> dict[str, Any]:
    start, end = tokens[members[0]].start, tokens[members[-1]].end
    record: dict[str, Any] = {"start": start, "end": end, "type": tags[members[0]][2:],
                              "text": text[start:end]}
    if scores is not None:
        record["score"] = round(sum(scores[i] for i in members) / len(members), 4)
    return record


def utf16_to_index(text: str, offset: int) -> int | None:
    """Return the string index at UTF-16 code unit ``offset``, or None when there is none.

    JavaScript strings count an emoji outside the Basic Multilingual Plane as two units.
    None means the offset is past the end or falls between the two units of such a
    character.
    """
    units = 0
    for index, char in enumerate(text):
        if units == offset:
            return index
        if units > offset:
            return None
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text) if units == offset else None


def locate_span(text: str, start: int, end: int, expected: str | None) -> tuple[int, int] | None:
    """Return the string offsets of a span given as ``start``/``end`` and its text.

    Label Studio counts offsets in code points in some releases and in UTF-16 code units,
    as JavaScript does, in others (reported for 1.x releases in 2021), where each emoji
    before a span shifts it by one. So both readings are tried, and the one whose slice
    equals ``expected`` wins. When neither
    matches, the occurrence of ``expected`` nearest to ``start`` is used, with a warning.
    Without ``expected``, the offsets are taken as code points. Return None when no
    reading fits.
    """
    readings = [(start, end), (utf16_to_index(text, start), utf16_to_index(text, end))]
    valid = [(a, b) for a, b in readings
             if a is not None and b is not None and 0 <= a < b <= len(text)]
    if expected is None:
        return valid[0] if valid else None
    for a, b in valid:
        if text[a:b] == expected:
            return a, b
    found = [match.start() for match in re.finditer(re.escape(expected), text)] if expected else []
    if not found:
        return None
    nearest = min(found, key=lambda position: abs(position - start))
    log.warning("span %d-%d does not hold %r, using its occurrence at %d", start, end,
                expected, nearest)
    return nearest, nearest + len(expected)


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Return ``start``/``end`` moved inward past whitespace at either end of the span."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def annotation_spans(text: str, results: Iterable[dict[str, Any]]) -> list[Span]:
    """Return the spans of the ``labels`` results of one Label Studio annotation.

    A result with several labels keeps its first label. Results that cannot be located
    in ``text`` or hold only whitespace are dropped with a warning.
    """
    spans = []
    for result in results:
        value = result.get("value") or {}
        if result.get("type") != "labels" or not value.get("labels"):
            continue
        located = locate_span(text, int(value["start"]), int(value["end"]), value.get("text"))
        start, end = trim_span(text, *located) if located else (0, 0)
        if start >= end:
            log.warning("span %s-%s %r not found in the text, dropped", value["start"],
                        value["end"], value.get("text"))
            continue
        if len(value["labels"]) > 1:
            log.warning("span %d-%d has labels %s, keeping %r", start, end, value["labels"],
                        value["labels"][0])
        spans.append(Span(start, end, str(value["labels"][0])))
    return spans


def latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """Return the task's most recently updated annotation that was not cancelled."""
    annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    return max(annotations, key=lambda a: a.get("updated_at") or "", default=None)


def label_studio_posts(tasks: Sequence[dict[str, Any]], text_key: str = "text") -> list[TaggedPost]:
    """Convert Label Studio tasks with span annotations into tokens and IOB2 tags.

    Tasks without a finished annotation or without text are skipped with a warning. An
    annotation with no spans yields a post tagged O throughout. ``line`` is the 1-based
    position of the task in the export.
    """
    posts = []
    for number, task in enumerate(tasks, start=1):
        text = (task.get("data") or {}).get(text_key)
        annotation = latest_annotation(task)
        if not isinstance(text, str) or annotation is None:
            log.warning("Label Studio task %s (item %d) has no %r text or no finished "
                        "annotation, skipped", task.get("id"), number, text_key)
            continue
        spans = annotation_spans(text, annotation.get("result") or [])
        tokens, tags = spans_to_tags(text, spans)
        if tokens:
            posts.append(TaggedPost([token.text for token in tokens], tags, number))
    log.info("converted %d of %d Label Studio tasks into tagged posts", len(posts), len(tasks))
    return posts

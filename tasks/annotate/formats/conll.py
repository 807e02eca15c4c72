"""CoNLL for entity annotation: token TAB tag lines, one post per block.

Each post starts with a ``-DOCSTART-`` line whose second column is the post id, so a
finished file can be matched to its posts, and ``pulse train entities`` still reads it
(it skips ``-DOCSTART-`` lines). Tokens follow the splitting of tasks.extract.spans, and
tags are IOB2. The file carries no annotator, so import takes the file name for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tasks.annotate.formats import ENTITIES, Prediction, annotation_row
from tasks.extract.conll import DOCSTART, parse_conll_line, repair_iob2
from tasks.extract.spans import Span, Token, spans_to_tags, tags_to_spans

log = logging.getLogger(__name__)


def build_conll(posts: Sequence[dict[str, Any]],
                predictions: Sequence[Prediction | None] | None = None) -> str:
    """Return the CoNLL file for ``posts``, tagged with the predicted spans, else all O."""
    predictions = predictions or [None] * len(posts)
    blocks = []
    for post, predicted in zip(posts, predictions, strict=True):
        spans = [Span(s["start"], s["end"], s["type"]) for s in (predicted.spans or [])] \
            if predicted is not None else []
        tokens, tags = spans_to_tags(post["text"], spans)
        lines = [f"{DOCSTART}\t{post['id']}"]
        lines += [f"{token.text}\t{tag}" for token, tag in zip(tokens, tags)]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def read_conll_export(text: str, annotator: str,
                      post_texts: Mapping[str, str]) -> list[dict[str, Any]]:
    """Return one entity annotation row per post of a finished CoNLL file.

    Spans index the post's exported text when ``post_texts`` has its id and every token
    is found in it in order. Otherwise the text is rebuilt by joining the tokens with
    spaces. A block without a post id, or with a line that has no tag, is a parse error.
    """
    rows = []
    for line, post_id, fields in _blocks(text.split("\n")):
        row = annotation_row(line, task=ENTITIES, post_id=post_id, annotator=annotator)
        if post_id is None:
            row["parse_error"] = "post has no '-DOCSTART-<TAB>post id' line before it"
        elif any(len(columns) < 2 for columns in fields):
            row["parse_error"] = "a token line has no tag column"
        else:
            _fill_spans(row, [c[0] for c in fields], [c[-1] for c in fields], post_texts)
        rows.append(row)
    return rows


def _blocks(lines: Sequence[str]) -> list[tuple[int, str | None, list[list[str]]]]:
    """Split lines into posts: (first line number, post id, token lines' columns)."""
    blocks: list[tuple[int, str | None, list[list[str]]]] = []
    post_id: str | None = None
    current: list[list[str]] = []
    start = 0
    for number, raw in enumerate(lines, start=1):
        columns, _ = parse_conll_line(raw)
        if columns and columns[0] != DOCSTART:
            start = start or number
            current.append(columns)
            continue
        if current:
            blocks.append((start, post_id, current))
            current, start = [], 0
        if columns:  # a -DOCSTART- line names the next post
            post_id = columns[1] if len(columns) > 1 else None
    if current:
        blocks.append((start, post_id, current))
    return blocks


def _fill_spans(row: dict[str, Any], words: list[str], tags: list[str],
                post_texts: Mapping[str, str]) -> None:
    try:
        tags, _ = repair_iob2(tags)
    except ValueError as error:
        row["parse_error"] = str(error)
        return
    text = post_texts.get(str(row["post_id"]))
    tokens = align_tokens(text, words) if text is not None else None
    if tokens is None:
        if text is not None:
            log.warning("post %s: tokens do not match its exported text, joining them with "
                        "spaces instead", row["post_id"])
        text, tokens = _joined(words)
    spans = tags_to_spans(text, tokens, tags)
    row.update(text=text, spans=[[s["start"], s["end"], s["type"]] for s in spans])


def align_tokens(text: str, words: Sequence[str]) -> list[Token] | None:
    """Find ``words`` in ``text`` in order and return them as tokens, or None if one is missing."""
    tokens, cursor = [], 0
    for word in words:
        start = text.find(word, cursor)
        if start < 0 or text[cursor:start].strip():
            return None
        tokens.append(Token(word, start, start + len(word)))
        cursor = start + len(word)
    return tokens


def _joined(words: Sequence[str]) -> tuple[str, list[Token]]:
    tokens, position = [], 0
    for word in words:
        tokens.append(Token(word, position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), tokens

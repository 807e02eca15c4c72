"""Extend a WordPiece tokenizer with characters it maps to [UNK] (Chinese, for example)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


def unknown_characters(tokenizer: Any, texts: Iterable[str], min_count: int) -> list[str]:
    """Return characters that tokenize to the unknown token, seen at least ``min_count`` times.

    Only characters that are not white space or ASCII are considered, most frequent first.
    """
    counts = Counter(ch for text in texts for ch in text if ord(ch) > 127 and not ch.isspace())
    unknown_id = tokenizer.unk_token_id
    found = []
    for char, count in counts.most_common():
        if count < min_count:
            break
        if tokenizer(char, add_special_tokens=False)["input_ids"] == [unknown_id]:
            found.append(char)
    return found


def unknown_token_rate(tokenizer: Any, texts: Iterable[str]) -> float:
    """Return the share of non-ASCII, non-space characters that tokenize to [UNK]."""
    chars = [ch for text in texts for ch in text if ord(ch) > 127 and not ch.isspace()]
    if not chars:
        return 0.0
    unknown = set(unknown_characters(tokenizer, ["".join(chars)], min_count=1))
    return sum(ch in unknown for ch in chars) / len(chars)


def extend_vocabulary(tokenizer: Any, model: Any, texts: Iterable[str], min_count: int) -> int:
    """Add unknown characters of ``texts`` as tokens and resize the model's embeddings.

    New embedding rows start at the mean of the existing ones, so they begin as an average
    token instead of noise. Returns the number of tokens added.
    """
    new_tokens = unknown_characters(tokenizer, texts, min_count)
    if not new_tokens:
        return 0
    added = tokenizer.add_tokens(new_tokens)
    embeddings = model.get_input_embeddings().weight
    mean = embeddings.data.mean(dim=0)
    model.resize_token_embeddings(len(tokenizer))
    model.get_input_embeddings().weight.data[-added:] = mean
    log.info("added %d characters to the vocabulary (for example %s)", added, new_tokens[:10])
    return added

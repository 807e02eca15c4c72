"""Cover pre-split posts with overlapping windows of the model's length.

Training and inference share this encoding. A post whose sub-tokens do not fit into
``max_length`` is split by the tokenizer (``return_overflowing_tokens``) into windows
that repeat ``stride`` sub-tokens of the window before. Each word is represented by its
first sub-token, so tags and predictions are per word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_STRIDE = 32
SPECIAL_TOKENS = 2  # [CLS] and [SEP] in every window of a BERT-style encoder


@dataclass
class WindowBatch:
    """Encoded windows and, for each window, where the first sub-token of each word is.

    ``posts[i]`` is the index of the post that window ``i`` belongs to.
    ``word_positions[i]`` maps a word index of that post to the position of its first
    sub-token in window ``i``, for the words whose first sub-token is in the window.
    ``content[i]`` is the first and last position of the window that holds a word.
    """

    encoding: Any
    posts: list[int]
    word_positions: list[dict[int, int]]
    content: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.posts)


def effective_stride(max_length: int, stride: int) -> int:
    """Return ``stride`` capped at half of the window's room for words.

    The tokenizer needs the overlap to be shorter than a window. With half a window of
    overlap, each word already sits about a quarter of a window or more away from the
    cut edges of one of its windows.
    """
    room = max_length - SPECIAL_TOKENS
    if room < 2:
        raise ValueError(f"max_length {max_length} leaves no room for words: use at least 4")
    return max(0, min(stride, room // 2))


def encode_windows(tokenizer: Any, posts: Sequence[Sequence[str]], max_length: int,
                   stride: int = DEFAULT_STRIDE) -> WindowBatch:
    """Encode ``posts`` (lists of words) into overlapping windows of at most ``max_length``.

    Posts must not be empty. The encoding is not padded, so pad it with the tokenizer or
    a data collator.
    """
    encoding = tokenizer(
        [list(words) for words in posts], is_split_into_words=True, truncation=True,
        max_length=max_length, stride=effective_stride(max_length, stride),
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    window_posts = list(encoding["overflow_to_sample_mapping"])
    word_ids = [encoding.word_ids(i) for i in range(len(window_posts))]
    first_starts = _first_sub_token_starts(window_posts, word_ids, encoding["offset_mapping"])
    positions, content = [], []
    for i, post in enumerate(window_posts):
        positions.append(_first_positions(post, word_ids[i], encoding["offset_mapping"][i],
                                          first_starts))
        filled = [p for p, word in enumerate(word_ids[i]) if word is not None]
        content.append((filled[0], filled[-1]) if filled else (0, -1))
    return WindowBatch(encoding, window_posts, positions, content)


def _first_sub_token_starts(
    window_posts: list[int], word_ids: list[list[int | None]],
    offsets: Sequence[Sequence[tuple[int, int]]],
) -> dict[tuple[int, int], int]:
    """Return, per (post, word), the smallest character offset within the word of any sub-token.

    Offsets are relative to each word. A window that begins inside a word sees only its
    later sub-tokens, so comparing with this minimum finds the word's true first sub-token.
    """
    starts: dict[tuple[int, int], int] = {}
    for window, post in enumerate(window_posts):
        for word, (start, _) in zip(word_ids[window], offsets[window]):
            if word is not None:
                key = (post, word)
                starts[key] = min(start, starts.get(key, start))
    return starts


def _first_positions(post: int, word_ids: list[int | None], offsets: Sequence[tuple[int, int]],
                     first_starts: dict[tuple[int, int], int]) -> dict[int, int]:
    positions: dict[int, int] = {}
    for position, (word, (start, _)) in enumerate(zip(word_ids, offsets)):
        if word is not None and word not in positions and start == first_starts[(post, word)]:
            positions[word] = position
    return positions


def label_windows(batch: WindowBatch, tags: Sequence[Sequence[str]],
                  label_ids: dict[str, int]) -> list[list[int]]:
    """Return per-window label ids: the word's tag on its first sub-token, -100 elsewhere.

    -100 is the index that PyTorch's cross-entropy loss ignores.
    """
    labels = []
    for i, post in enumerate(batch.posts):
        row = [-100] * len(batch.encoding["input_ids"][i])
        for word, position in batch.word_positions[i].items():
            row[position] = label_ids[tags[post][word]]
        labels.append(row)
    return labels


def edge_distance(batch: WindowBatch, window: int, position: int) -> int:
    """Return how many sub-tokens separate ``position`` from the nearer edge of its window."""
    first, last = batch.content[window]
    return min(position - first, last - position)

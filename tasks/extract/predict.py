"""Batched entity inference over overlapping windows, merged back into whole posts.

A word that falls into two windows takes the prediction of the window in which it is
farther from the window's edge, because there the model saw more context on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tasks.extract.conll import OUTSIDE, repair_iob2
from tasks.extract.spans import tags_to_spans, tokenize_text
from tasks.extract.windows import DEFAULT_STRIDE, WindowBatch, edge_distance, encode_windows

WordTags = list[tuple[str, float]]


def predict_word_tags(model: Any, tokenizer: Any, posts: Sequence[Sequence[str]],
                      max_length: int = 128, stride: int = DEFAULT_STRIDE, batch_size: int = 32,
                      show_progress: bool = False) -> list[WordTags]:
    """Return a (tag, probability) pair per word of each post, in the order of ``posts``.

    Tags are repaired to valid IOB2. A word that the tokenizer drops entirely (such as a
    lone zero-width character) gets ``O`` with probability 0.0, as does every word of a
    post with no words. Posts are sorted by length before batching so each batch pads to a
    similar length.
    """
    results: list[WordTags] = [[] for _ in posts]
    order = sorted((i for i, words in enumerate(posts) if words), key=lambda i: len(posts[i]))
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    model.eval()
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="tagging", unit="batch", disable=not show_progress):
        chunk = order[start:start + batch_size]
        batch = encode_windows(tokenizer, [posts[i] for i in chunk], max_length, stride)
        probabilities = window_probabilities(model, tokenizer, batch, batch_size)
        merged = merge_windows(batch, probabilities, [len(posts[i]) for i in chunk], labels)
        for local, index in enumerate(chunk):
            results[index] = merged[local]
    return results


def window_probabilities(model: Any, tokenizer: Any, batch: WindowBatch,
                         batch_size: int) -> list[np.ndarray]:
    """Return the label probabilities of each window, shape (window length, labels)."""
    device = next(model.parameters()).device
    names = [name for name in tokenizer.model_input_names if name in batch.encoding]
    output: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            rows = {name: batch.encoding[name][start:start + batch_size] for name in names}
            inputs = tokenizer.pad(rows, return_tensors="pt").to(device)
            probabilities = torch.softmax(model(**inputs).logits.float(), dim=-1).cpu().numpy()
            lengths = [len(ids) for ids in rows["input_ids"]]
            output.extend(probabilities[i, :length] for i, length in enumerate(lengths))
    return output


def merge_windows(batch: WindowBatch, probabilities: Sequence[np.ndarray],
                  lengths: Sequence[int], labels: Sequence[str]) -> list[WordTags]:
    """Pick one prediction per word, from the window where the word is farthest from an edge.

    On a tie, the earlier window wins.
    """
    best: dict[tuple[int, int], tuple[int, int, float]] = {}
    for window, post in enumerate(batch.posts):
        for word, position in batch.word_positions[window].items():
            distance = edge_distance(batch, window, position)
            if (post, word) in best and best[(post, word)][0] >= distance:
                continue
            scores = probabilities[window][position]
            best[(post, word)] = (distance, int(scores.argmax()), float(scores.max()))

    merged = []
    for post, length in enumerate(lengths):
        chosen = [best.get((post, word)) for word in range(length)]
        tags = [OUTSIDE if pick is None else labels[pick[1]] for pick in chosen]
        scores = [0.0 if pick is None else pick[2] for pick in chosen]
        merged.append(list(zip(repair_iob2(tags)[0], scores)))
    return merged


def predict_spans(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int = 128,
                  stride: int = DEFAULT_STRIDE, batch_size: int = 32) -> list[list[dict[str, Any]]]:
    """Return the entities of each text as dicts of start, end, type, text and score.

    ``start`` and ``end`` index the original text (end exclusive) and ``score`` is the
    mean probability of the entity's word tags.
    """
    tokenized = [tokenize_text(text) for text in texts]
    words = [[token.text for token in tokens] for tokens in tokenized]
    word_tags = predict_word_tags(model, tokenizer, words, max_length=max_length, stride=stride,
                                  batch_size=batch_size)
    return [
        tags_to_spans(text, tokens, [tag for tag, _ in tags], [score for _, score in tags])
        for text, tokens, tags in zip(texts, tokenized, word_tags)
    ]

"""Overlapping windows over long posts, and merging their predictions back per word.

The tokenizer is the real base tokenizer. The models are small stand-ins whose output
depends only on the sub-token and its place in the window, so the expected tags are known.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer

from tasks.extract.predict import predict_spans, predict_word_tags
from tasks.extract.spans import tokenize_text
from tasks.extract.windows import effective_stride, encode_windows, label_windows
from tasks.settings import reload_settings

MAX_LENGTH = 16
STRIDE = 4
LONG_TEXT = ("Flew  from Paris to 北京 today 😀 and the crew said tokyo was next, "
             "so we packed again 👩🏽‍💻 for Tokyo.\n") * 4


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(reload_settings().base_model_path)


class StandInTagger(torch.nn.Module):
    """Tags a sub-token B-edge at either end of a window's words, B-location for listed ids."""

    def __init__(self, tokenizer, location_words: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(num_labels=4, id2label={
            0: "O", 1: "B-edge", 2: "B-location", 3: "I-location"})
        self.specials = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id,
                                      tokenizer.pad_token_id])
        self.location_ids = torch.tensor(tokenizer.convert_tokens_to_ids(list(location_words)))
        self.mark_edges = not location_words
        self.windows = 0

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        self.windows += input_ids.shape[0]
        logits = torch.zeros(*input_ids.shape, 4)
        logits[..., 0] = 1.0
        logits[..., 2] += 5.0 * torch.isin(input_ids, self.location_ids)
        if self.mark_edges:
            for row in range(input_ids.shape[0]):
                words = (~torch.isin(input_ids[row], self.specials)).nonzero().flatten()
                logits[row, words[0], 1] = logits[row, words[-1], 1] = 5.0
        return SimpleNamespace(logits=logits)


def _words(text: str) -> list[str]:
    return [token.text for token in tokenize_text(text)]


def test_windows_cover_every_word(tokenizer):
    words = _words(LONG_TEXT)
    batch = encode_windows(tokenizer, [words, ["short", "post"]], MAX_LENGTH, STRIDE)

    long_windows = [i for i, post in enumerate(batch.posts) if post == 0]
    assert len(long_windows) > 5
    assert all(len(batch.encoding["input_ids"][i]) <= MAX_LENGTH for i in range(len(batch)))
    covered = {word for i in long_windows for word in batch.word_positions[i]}
    assert covered == set(range(len(words)))
    assert set(batch.word_positions[len(batch) - 1]) == {0, 1}


def test_windows_overlap_by_stride(tokenizer):
    batch = encode_windows(tokenizer, [_words(LONG_TEXT)], MAX_LENGTH, STRIDE)
    first, second = batch.encoding["input_ids"][0], batch.encoding["input_ids"][1]
    assert first[-1 - STRIDE:-1] == second[1:1 + STRIDE]


def test_effective_stride_is_capped():
    assert effective_stride(16, 4) == 4
    assert effective_stride(16, 32) == 7
    assert effective_stride(128, 32) == 32
    with pytest.raises(ValueError, match="max_length 3"):
        effective_stride(3, 1)


def test_labels_only_on_first_sub_tokens(tokenizer):
    words = ["unbelievably", "Paris"]
    batch = encode_windows(tokenizer, [words], MAX_LENGTH, STRIDE)
    labels = label_windows(batch, [["O", "B-location"]], {"O": 0, "B-location": 1})[0]

    assert len(batch.encoding.tokens(0)) > 4
    assert labels[0] == -100
    assert labels[-1] == -100
    assert sorted(label for label in labels if label != -100) == [0, 1]
    assert labels.count(-100) == len(labels) - 2


def test_merge_prefers_farther_from_edge(tokenizer):
    words = _words(LONG_TEXT)
    model = StandInTagger(tokenizer)

    tags = predict_word_tags(model, tokenizer, [words], MAX_LENGTH, STRIDE, batch_size=3)[0]

    assert model.windows > 5
    assert len(tags) == len(words)
    edge_words = [index for index, (tag, _) in enumerate(tags) if tag == "B-edge"]
    assert edge_words == [0, len(words) - 1]


def test_spans_index_the_original_text(tokenizer):
    model = StandInTagger(tokenizer, location_words=("paris", "tokyo"))

    found = predict_spans(model, tokenizer, [LONG_TEXT, "", "no places"], MAX_LENGTH, STRIDE)[0]

    expected = [match.span() for match in re.finditer(r"(?i)paris|tokyo", LONG_TEXT)]
    assert [(span["start"], span["end"]) for span in found] == expected
    assert all(LONG_TEXT[span["start"]:span["end"]] == span["text"] for span in found)
    assert {span["type"] for span in found} == {"location"}
    assert all(0.9 < span["score"] <= 1.0 for span in found)


def test_empty_posts_keep_their_place(tokenizer):
    model = StandInTagger(tokenizer, location_words=("paris",))
    posts = [["a", "long", "post", "in", "Paris"], [], ["Paris"]]

    tags = predict_word_tags(model, tokenizer, posts, MAX_LENGTH, STRIDE, batch_size=1)

    assert [len(post) for post in tags] == [5, 0, 1]
    assert tags[0][4][0] == "B-location"
    assert tags[2][0][0] == "B-location"


def test_dropped_word_tagged_outside(tokenizer):
    model = StandInTagger(tokenizer, location_words=("paris",))
    tags = predict_word_tags(model, tokenizer, [["Paris", "\u200b", "x"]], MAX_LENGTH, STRIDE)[0]
    assert tags[1] == ("O", 0.0)

"""Text preparation for the model's tokenizer, applied the same way in training and scoring."""

from __future__ import annotations

import re

import emoji

_EMOJI_NAME = re.compile(r":([a-z0-9_&.'-]+):")


def prepare_model_text(text: str) -> str:
    """Spell emoji out as words, because the base tokenizer maps every emoji to [UNK].

    "awesome😍" becomes "awesome smiling face with heart-eyes", so the word before an emoji
    also survives tokenization instead of being swallowed into one unknown token.
    """
    spelled = emoji.demojize(text, delimiters=(" :", ": "))
    spelled = _EMOJI_NAME.sub(lambda match: match.group(1).replace("_", " "), spelled)
    return " ".join(spelled.split())

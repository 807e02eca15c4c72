"""Checks that stop retrieval training before any model is loaded or trained."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.retrieve.config import RetrievalSettings
from tasks.retrieve.data import GROUPS_MODE, RetrievalData
from tasks.retrieve.train import fine_tune_encoder, train_and_register_retrieval


def test_single_post_validation_groups_rejected(settings):
    frame = pd.DataFrame({"text": [f"post {i}" for i in range(4)],
                          "group": ["e1", "e2", "e3", "e4"]})
    data = RetrievalData(frame, GROUPS_MODE, "event")
    with pytest.raises(ValueError, match="validation groups have no query"):
        train_and_register_retrieval(data, settings, RetrievalSettings(), {})


def test_one_training_group_rejected(tmp_path):
    pairs = pd.DataFrame({"anchor": ["a", "b"], "positive": ["b", "a"], "group": ["e1", "e1"]})
    with pytest.raises(ValueError, match="at least two training groups"):
        fine_tune_encoder(pairs, "unused-model-path", RetrievalSettings(), tmp_path)

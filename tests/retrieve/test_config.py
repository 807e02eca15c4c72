"""The retrieval settings section, with and without a ``retrieval`` field in the settings."""

from __future__ import annotations

from tasks.retrieve.config import RetrievalSettings, retrieval_settings
from tasks.settings import Settings


class _SettingsWithRetrieval(Settings):
    retrieval: RetrievalSettings = RetrievalSettings()


def test_defaults_without_section():
    config = retrieval_settings(Settings())
    assert config == RetrievalSettings()
    assert config.model_name == "social-pulse-retrieval"


def test_section_read_from_environment(monkeypatch):
    monkeypatch.setenv("PULSE_RETRIEVAL__EPOCHS", "2.5")
    monkeypatch.setenv("PULSE_RETRIEVAL__MAX_POSTS_PER_GROUP", "400")
    config = retrieval_settings(_SettingsWithRetrieval())
    assert config.epochs == 2.5
    assert config.max_posts_per_group == 400

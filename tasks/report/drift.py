"""Drift of one day's posts from the posts the sentiment champion was trained on.

The reference sample is the validation set that the champion's training run logged as
``evaluation/validation.parquet`` (columns ``text`` and ``label``). It is a hash split of
the same labels the champion trained on, so it serves as a sample of the training data,
which no run stores. Four comparisons, each with a threshold in the ``report`` settings:

- text length in characters: two-sample Kolmogorov-Smirnov statistic (0 to 1);
- language mix: population stability index (PSI) of the language shares;
- the day's predicted sentiment labels against the reference labels: Jensen-Shannon
  distance with base 2 (0 to 1);
- embeddings: cosine distance between the centroid of the day's FAISS index and the
  centroid of the reference texts, embedded with the model that built that index.

A value above its threshold is logged as a WARNING and listed in the report.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tasks import storage
from tasks.retrieve.encoder import Encoder
from tasks.settings import Settings

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "evaluation/validation.parquet"
# Share given to a category that one side lacks, so that PSI stays finite.
PSI_FLOOR = 1e-4
# Vectors read from the index at a time when summing it, to bound memory on large days.
CENTROID_CHUNK = 100_000

TEXT_LENGTH = "text length"
LANGUAGE_MIX = "language mix"
LABELS = "sentiment labels"
EMBEDDING_CENTROID = "embedding centroid"


@dataclass
class Reference:
    """Validation posts (``text``, ``label``) of a model version, as compared with the day.

    ``posts`` may be a seeded sample of the ``available`` posts that the run logged.
    """

    posts: pd.DataFrame
    model: str
    version: str
    run_id: str
    available: int


@dataclass
class DriftMetric:
    """One comparison of the day with the reference.

    ``value`` is None when the comparison could not be made, and ``note`` gives the reason.
    ``reference`` and ``current`` are the compared samples (raw lengths, or shares per
    category) for plotting.
    """

    name: str
    statistic: str
    value: float | None
    threshold: float
    note: str = ""
    reference: pd.Series | None = None
    current: pd.Series | None = None

    @property
    def exceeded(self) -> bool:
        return self.value is not None and self.value > self.threshold


@dataclass
class DriftReport:
    """The drift metrics of one day, or a note on why none were measured."""

    reference: Reference | None
    metrics: list[DriftMetric] = field(default_factory=list)
    note: str = ""

    @property
    def warnings(self) -> list[DriftMetric]:
        return [metric for metric in self.metrics if metric.exceeded]


def ks_statistic(reference: Sequence[float], current: Sequence[float]) -> float:
    """Return the two-sample Kolmogorov-Smirnov statistic: the largest gap between the CDFs."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(np.asarray(reference, dtype=float),
                          np.asarray(current, dtype=float)).statistic)


def category_shares(values: pd.Series, categories: Sequence[str]) -> pd.Series:
    """Return the share of each of ``categories`` in ``values`` (0 for absent ones)."""
    counts = values.astype(str).value_counts()
    shares = counts.reindex(list(categories), fill_value=0).astype(float)
    return shares / shares.sum() if shares.sum() else shares


def population_stability_index(reference: pd.Series, current: pd.Series) -> float:
    """Return the PSI of two share vectors indexed by category.

    PSI = sum((current - reference) * ln(current / reference)). A share below PSI_FLOOR
    counts as PSI_FLOOR, so a category seen on one side only adds a large but finite term.
    """
    expected = reference.clip(lower=PSI_FLOOR)
    actual = current.reindex(reference.index, fill_value=0.0).clip(lower=PSI_FLOOR)
    return float(((actual - expected) * np.log(actual / expected)).sum())


def jensen_shannon_distance(reference: pd.Series, current: pd.Series) -> float:
    """Return the Jensen-Shannon distance (base 2, 0 to 1) of two share vectors."""
    from scipy.spatial.distance import jensenshannon

    aligned = current.reindex(reference.index, fill_value=0.0)
    return float(jensenshannon(reference.to_numpy(), aligned.to_numpy(), base=2))


def cosine_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Return 1 minus the cosine similarity of two vectors."""
    norms = float(np.linalg.norm(first) * np.linalg.norm(second))
    if norms == 0.0:
        raise ValueError("cosine distance of a zero vector is undefined")
    return float(1.0 - np.dot(first, second) / norms)


def compare_text_lengths(reference_texts: pd.Series, texts: pd.Series,
                         threshold: float) -> DriftMetric:
    """Compare the length in characters of the day's texts with the reference texts."""
    reference = reference_texts.astype(str).str.len()
    current = texts.astype(str).str.len()
    metric = DriftMetric(TEXT_LENGTH, "KS statistic", None, threshold,
                         reference=reference, current=current)
    if current.empty or reference.empty:
        metric.note = "no posts on one side"
        return metric
    metric.value = ks_statistic(reference, current)
    metric.note = (f"median {current.median():.0f} characters, reference "
                   f"{reference.median():.0f}")
    return metric


def compare_categories(name: str, reference_values: pd.Series, values: pd.Series,
                       threshold: float, statistic: str) -> DriftMetric:
    """Compare category shares with ``statistic``: 'PSI' or 'Jensen-Shannon distance'."""
    categories = sorted(set(reference_values.astype(str)) | set(values.astype(str)))
    reference = category_shares(reference_values, categories)
    current = category_shares(values, categories)
    metric = DriftMetric(name, statistic, None, threshold, reference=reference, current=current)
    if values.empty or reference_values.empty:
        metric.note = "no values on one side"
        return metric
    if statistic == "PSI":
        metric.value = population_stability_index(reference, current)
    else:
        metric.value = jensen_shannon_distance(reference, current)
    metric.note = f"day: {describe_shares(current)}; reference: {describe_shares(reference)}"
    return metric


def describe_shares(shares: pd.Series, top: int = 3) -> str:
    """Return the ``top`` largest shares as text, e.g. 'en 85.0%, zh 15.0%'."""
    largest = shares[shares > 0].sort_values(ascending=False).head(top)
    return ", ".join(f"{name} {100 * share:.1f}%" for name, share in largest.items())


def load_reference(settings: Settings) -> tuple[Reference | None, str]:
    """Download the sentiment champion's validation posts.

    Returns the reference, or None and a note with the reason: no champion, or a
    champion whose run logged no ``evaluation/validation.parquet``.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from tasks.registry.tracking import champion_version, configure_mlflow

    name = settings.registry.sentiment_model
    alias = settings.registry.champion_alias
    version = champion_version(configure_mlflow(settings), name, alias)
    if version is None:
        return None, f"{name} has no '{alias}' version, so there is no training data to compare with"
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=folder)
        except (MlflowException, OSError) as error:
            log.warning("drift not measured: %s v%s (run %s) has no %s: %s", name,
                        version.version, version.run_id, REFERENCE_ARTIFACT, error)
            return None, (f"the run of {name} version {version.version} ({version.run_id}) "
                          f"logged no {REFERENCE_ARTIFACT}")
        posts = pd.read_parquet(Path(path))
    return Reference(posts, name, str(version.version), str(version.run_id), len(posts)), ""


def day_centroid(store: storage.Store, day: dt.date) -> tuple[np.ndarray, str] | None:
    """Return the mean embedding of the day's index and the model that built it.

    None when the day has no index or an empty one.
    """
    from tasks.retrieve import index

    try:
        loaded = index.load_index(store, day)
    except FileNotFoundError:
        return None
    total = loaded.index.ntotal
    if total == 0:
        return None
    summed = np.zeros(loaded.index.d, dtype=np.float64)
    for start in range(0, total, CENTROID_CHUNK):
        count = min(CENTROID_CHUNK, total - start)
        summed += loaded.index.reconstruct_n(start, count).sum(axis=0)
    return summed / total, str(loaded.manifest["model"])


def compare_centroids(store: storage.Store, day: dt.date, reference_texts: pd.Series,
                      threshold: float, load_encoder: Callable[[str], Encoder]) -> DriftMetric:
    """Compare the day's embedding centroid with the reference texts' centroid."""
    metric = DriftMetric(EMBEDDING_CENTROID, "cosine distance", None, threshold)
    found = day_centroid(store, day)
    if found is None:
        metric.note = f"no embedding index for {day.isoformat()}"
        return metric
    if reference_texts.empty:
        metric.note = "no reference posts"
        return metric
    centroid, model_uri = found
    embeddings = load_encoder(model_uri).encode(list(reference_texts.astype(str)))
    metric.value = cosine_distance(centroid, embeddings.mean(axis=0))
    metric.note = f"embedded with {model_uri}, the model that built the day's index"
    return metric


def default_encoder_loader(settings: Settings) -> Callable[[str], Encoder]:
    """Return a function that loads the encoder at a URI with the retrieval settings."""
    from tasks.retrieve.config import retrieval_settings
    from tasks.retrieve.encoder import load_encoder

    config = retrieval_settings(settings)
    return lambda uri: load_encoder(uri, max_length=config.max_length,
                                    batch_size=config.encode_batch_size)


def measure_drift(store: storage.Store, day: dt.date, settings: Settings, posts: pd.DataFrame,
                  scores: pd.DataFrame | None,
                  load_encoder: Callable[[str], Encoder] | None = None) -> DriftReport:
    """Compare the day's clean posts and scores with the sentiment champion's reference.

    ``load_encoder`` maps the URI of the model that built the day's index to an encoder
    (default: the retrieval loader). Each metric above its threshold is logged as a WARNING.
    """
    reference, note = load_reference(settings)
    if reference is None:
        log.info("drift of %s not measured: %s", day, note)
        return DriftReport(None, note=note)
    config = settings.report
    if len(reference.posts) > config.reference_max_posts:
        reference.posts = reference.posts.sample(config.reference_max_posts, random_state=0)
    sample = reference.posts

    from tasks.clean.text import identify_language

    texts = posts["text"] if "text" in posts else pd.Series(dtype=str)
    languages = posts["lang"] if "lang" in posts else pd.Series(dtype=str)
    labels = scores["label"].dropna() if scores is not None and "label" in scores \
        else pd.Series(dtype=str)
    metrics = [
        compare_text_lengths(sample["text"], texts, config.length_ks_threshold),
        compare_categories(LANGUAGE_MIX, sample["text"].astype(str).map(identify_language),
                           languages.fillna("und"), config.language_psi_threshold, "PSI"),
        compare_categories(LABELS, sample.get("label", pd.Series(dtype=str)), labels,
                           config.label_js_threshold,
                           "Jensen-Shannon distance"),
        compare_centroids(store, day, sample["text"], config.centroid_cosine_threshold,
                          load_encoder or default_encoder_loader(settings)),
    ]
    if labels.empty:
        metrics[2].note = f"no sentiment labels in the scores of {day.isoformat()}"
    _log_drift(day, reference, metrics)
    return DriftReport(reference, metrics)


def _log_drift(day: dt.date, reference: Reference, metrics: list[DriftMetric]) -> None:
    for metric in metrics:
        if metric.exceeded:
            log.warning("drift on %s: %s %s = %.3f, above the threshold %.3f (reference: "
                        "%s v%s)", day, metric.name, metric.statistic, metric.value,
                        metric.threshold, reference.model, reference.version)
    measured = {metric.name: metric.value for metric in metrics if metric.value is not None}
    log.info("drift of %s against %s v%s (%d reference posts): %s", day, reference.model,
             reference.version, len(reference.posts), measured)

"""Drift metrics on constructed distributions, and against a registered reference sample."""

from __future__ import annotations

import datetime as dt
import logging
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from report_builders import DAY, ScriptEncoder, clean_frame, html_tables, register_champion

from tasks import storage
from tasks.clean.text import identify_language
from tasks.collect import sample
from tasks.collect.stage import CLEAN
from tasks.registry.tracking import configure_mlflow
from tasks.report import daily, drift
from tasks.retrieve import index
from tasks.score.batch import SCORES
from tasks.settings import RegistrySettings, ReportSettings, Settings

LABELS = ["negative", "neutral", "positive"]
NAMES = [drift.TEXT_LENGTH, drift.LANGUAGE_MIX, drift.LABELS, drift.EMBEDDING_CENTROID]


def shares(values: list[float]) -> pd.Series:
    return pd.Series(values, index=LABELS[: len(values)], dtype=float)


def test_ks_identical_is_zero():
    assert drift.ks_statistic([10, 20, 30, 40], [10, 20, 30, 40]) == 0.0


def test_ks_disjoint_is_one():
    assert drift.ks_statistic([10, 11, 12], [100, 101, 102]) == 1.0


def test_psi_identical_is_zero():
    assert drift.population_stability_index(shares([0.5, 0.5]), shares([0.5, 0.5])) == 0.0


def test_psi_by_hand():
    # 0.4 * ln(0.9 / 0.5) + (-0.4) * ln(0.1 / 0.5) = 0.4 * (ln 1.8 + ln 5)
    expected = 0.4 * (math.log(1.8) + math.log(5))
    value = drift.population_stability_index(shares([0.5, 0.5]), shares([0.9, 0.1]))
    assert value == pytest.approx(expected)


def test_psi_new_category_finite():
    reference = pd.Series([1.0, 0.0], index=["en", "zh"])
    current = pd.Series([0.0, 1.0], index=["en", "zh"])
    value = drift.population_stability_index(reference, current)
    assert math.isfinite(value)
    assert value > 10


def test_js_identical_is_zero():
    assert drift.jensen_shannon_distance(shares([0.35, 0.3, 0.35]),
                                         shares([0.35, 0.3, 0.35])) == pytest.approx(0.0)


def test_js_disjoint_is_one():
    assert drift.jensen_shannon_distance(shares([1.0, 0.0, 0.0]),
                                         shares([0.0, 0.0, 1.0])) == pytest.approx(1.0)


def test_category_shares_fill_absent():
    values = pd.Series(["en", "en", "zh", "en"])
    assert drift.category_shares(values, ["en", "es", "zh"]).tolist() == [0.75, 0.0, 0.25]


def test_cosine_distance_values():
    assert drift.cosine_distance(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == 0.0
    assert drift.cosine_distance(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == 1.0


def test_cosine_distance_zero_vector_rejected():
    with pytest.raises(ValueError, match="zero vector"):
        drift.cosine_distance(np.zeros(2), np.array([1.0, 0.0]))


def english_posts(count: int) -> list[sample.SamplePost]:
    posts = sample.generate_posts(dt.date(2026, 3, 1), 200)
    return [post for post in posts if post.lang == "en"][:count]


def chinese_posts(count: int) -> list[sample.SamplePost]:
    posts = sample.generate_posts(dt.date(2026, 3, 2), 400)
    return [post for post in posts if post.lang == "zh"][:count]


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory):
    """One MLflow database for the module; each case registers its own model name."""
    home = tmp_path_factory.mktemp("drift-home")
    configure_mlflow(Settings(home=home))
    return home


def case(mlflow_home, tmp_path, model: str) -> SimpleNamespace:
    settings = Settings(home=mlflow_home, store_uri=str(tmp_path / "store"),
                        registry=RegistrySettings(sentiment_model=model))
    return SimpleNamespace(settings=settings, store=storage.open_store(settings.store))


def write_day(store, texts: list[str], labels: list[str]) -> None:
    """Write DAY's clean posts (languages as the cleaning stage finds them), scores and index."""
    posts = clean_frame(DAY, texts).assign(lang=[identify_language(t) for t in texts])
    storage.write_frame(store, CLEAN, DAY, posts)
    storage.write_frame(store, SCORES, DAY, pd.DataFrame(
        {"id": posts["id"], "label": labels, "confidence": 0.9}))
    index.build_index(store, DAY, ScriptEncoder())


def measure(settings, store) -> drift.DriftReport:
    loaded: list[str] = []

    def load_encoder(uri: str) -> ScriptEncoder:
        loaded.append(uri)
        return ScriptEncoder()

    posts = storage.read_frame(store, CLEAN, DAY)
    scores = storage.read_frame(store, SCORES, DAY)
    report = drift.measure_drift(store, DAY, settings, posts, scores, load_encoder)
    assert loaded in ([], [ScriptEncoder.uri])
    return report


def test_identical_day_has_no_drift(mlflow_home, tmp_path, caplog):
    setup = case(mlflow_home, tmp_path, "drift-identical")
    posts = english_posts(30)
    texts, labels = [p.text for p in posts], [p.label for p in posts]
    register_champion(setup.settings, pd.DataFrame({"text": texts, "label": labels}))
    write_day(setup.store, texts, labels)

    with caplog.at_level(logging.INFO, logger="tasks.report.drift"):
        report = measure(setup.settings, setup.store)

    assert [m.name for m in report.metrics] == NAMES
    for metric in report.metrics:
        assert metric.value == pytest.approx(0.0, abs=1e-6), metric.name
        assert not metric.exceeded
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert report.reference.version == "1"


def test_shifted_day_warns(mlflow_home, tmp_path, caplog):
    setup = case(mlflow_home, tmp_path, "drift-shifted")
    reference = english_posts(30)
    register_champion(setup.settings, pd.DataFrame(
        {"text": [p.text for p in reference], "label": [p.label for p in reference]}))
    # Long Chinese posts, all predicted negative.
    texts = [post.text * 20 for post in chinese_posts(30)]
    write_day(setup.store, texts, ["negative"] * len(texts))

    with caplog.at_level(logging.INFO, logger="tasks.report.drift"):
        report = measure(setup.settings, setup.store)

    values = {metric.name: metric.value for metric in report.metrics}
    assert values[drift.TEXT_LENGTH] == 1.0
    assert values[drift.LANGUAGE_MIX] > 5
    assert values[drift.LABELS] > 0.5
    assert values[drift.EMBEDDING_CENTROID] > 0.5
    assert [m.name for m in report.warnings] == NAMES
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    for name, message in zip(NAMES, warnings):
        assert f"drift on 2026-03-03: {name}" in message


def test_shifted_day_report_section(mlflow_home, tmp_path):
    setup = case(mlflow_home, tmp_path, "drift-report")
    reference = english_posts(20)
    register_champion(setup.settings, pd.DataFrame(
        {"text": [p.text for p in reference], "label": [p.label for p in reference]}))
    texts = [post.text * 20 for post in chinese_posts(20)]
    write_day(setup.store, texts, ["negative"] * len(texts))

    report = daily.build_report(setup.store, DAY, setup.settings,
                                load_encoder=lambda uri: ScriptEncoder())

    assert '<div class="warning"><strong>Warning</strong>' in report.html
    assert "text length: KS statistic 1.000 is above the threshold 0.200" in report.html
    assert "evaluation/validation.parquet" in report.html
    statuses = [row[4] for row in html_tables(report.html)["drift"][0][1:]]
    assert statuses == ["above threshold"] * 4
    assert '<img src="drift.png"' in report.html
    assert report.metrics["drift.text_length"] == 1.0


def test_no_champion_note(mlflow_home, tmp_path):
    setup = case(mlflow_home, tmp_path, "drift-no-champion")
    report = drift.measure_drift(setup.store, DAY, setup.settings, pd.DataFrame(), None)
    assert report.reference is None
    assert report.metrics == []
    assert report.note == ("drift-no-champion has no 'champion' version, so there is no "
                           "training data to compare with")


def test_champion_without_reference_note(mlflow_home, tmp_path, caplog):
    setup = case(mlflow_home, tmp_path, "drift-no-artifact")
    run_id = register_champion(setup.settings, None)
    with caplog.at_level(logging.WARNING, logger="tasks.report.drift"):
        report = drift.measure_drift(setup.store, DAY, setup.settings, pd.DataFrame(), None)
    assert report.reference is None
    assert report.note == (f"the run of drift-no-artifact version 1 ({run_id}) logged no "
                           "evaluation/validation.parquet")
    assert any("drift not measured" in r.getMessage() for r in caplog.records)


def test_missing_index_and_scores(mlflow_home, tmp_path):
    setup = case(mlflow_home, tmp_path, "drift-no-index")
    posts = english_posts(10)
    texts = [p.text for p in posts]
    register_champion(setup.settings, pd.DataFrame(
        {"text": texts, "label": [p.label for p in posts]}))
    frame = clean_frame(DAY, texts)
    report = drift.measure_drift(setup.store, DAY, setup.settings, frame, None,
                                 lambda uri: ScriptEncoder())
    by_name = {metric.name: metric for metric in report.metrics}
    assert by_name[drift.TEXT_LENGTH].value == 0.0
    assert by_name[drift.LABELS].value is None
    assert by_name[drift.LABELS].note == "no sentiment labels in the scores of 2026-03-03"
    assert by_name[drift.EMBEDDING_CENTROID].value is None
    assert by_name[drift.EMBEDDING_CENTROID].note == "no embedding index for 2026-03-03"


def test_reference_capped_to_sample(mlflow_home, tmp_path):
    setup = case(mlflow_home, tmp_path, "drift-capped")
    settings = setup.settings.model_copy(update={"report": ReportSettings(reference_max_posts=10)})
    posts = english_posts(30)
    register_champion(settings, pd.DataFrame(
        {"text": [p.text for p in posts], "label": [p.label for p in posts]}))
    write_day(setup.store, [p.text for p in posts[:5]], [p.label for p in posts[:5]])

    report = daily.build_report(setup.store, DAY, settings,
                                load_encoder=lambda uri: ScriptEncoder())

    assert "Reference: a seeded sample of 10 of the 30 validation posts of drift-capped" \
        in report.html
    assert len(report.drift.reference.posts) == 10


def test_day_without_posts_not_measured(mlflow_home, tmp_path):
    setup = case(mlflow_home, tmp_path, "drift-empty-day")
    posts = english_posts(10)
    register_champion(setup.settings, pd.DataFrame(
        {"text": [p.text for p in posts], "label": [p.label for p in posts]}))

    report = daily.build_report(setup.store, DAY, setup.settings,
                                load_encoder=lambda uri: ScriptEncoder())

    assert [m.value for m in report.drift.metrics] == [None] * 4
    assert report.drift.warnings == []
    statuses = [row[4] for row in html_tables(report.html)["drift"][0][1:]]
    assert statuses == ["not measured"] * 4
    assert "No manifests or clean posts in the last 14 days." in report.html

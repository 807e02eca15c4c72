"""The daily report on a store of three days written by hand (see report_builders)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import matplotlib.image
import pandas as pd
import pytest
from report_builders import (
    DAY,
    SCRIPT_POST,
    build_store,
    clean_frame,
    html_tables,
    png_size,
    scores_frame,
)

from tasks import storage
from tasks.collect.stage import CLEAN
from tasks.report import daily, plots
from tasks.score.batch import SCORES
from tasks.settings import ReportSettings, Settings

EXPECTED_FILES = ["drift.png", "entities.png", "report.html", "sentiment.png", "volume.png"]
SECTION_TITLES = ["Post volume", "Sentiment share", "Top entities", "Representative posts",
                  "Data quality", "Model versions", "Drift"]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Publish the report of DAY once for the module; MLflow set-up takes seconds."""
    settings = Settings(home=tmp_path_factory.mktemp("report-home"))
    store = storage.open_store(settings.store)
    build_store(store)
    result = daily.publish_report(store, DAY, settings)
    html = store.read_bytes(storage.partition_key(daily.REPORTS, DAY, daily.REPORT_FILE)).decode()
    return SimpleNamespace(settings=settings, store=store, result=result, html=html,
                           tables=html_tables(html))


def rows(published, section: str, number: int = 0) -> list[list[str]]:
    """Return the body rows of the ``number``-th table of ``section``."""
    return published.tables[section][number][1:]


def test_report_has_every_section(published):
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in published.html


def test_volume_per_day(published):
    assert rows(published, "volume") == [
        ["2026-03-01", "6", "4", "1", "1"],
        ["2026-03-02", "", "5", "", ""],
        ["2026-03-03", "12", "8", "2", "2"],
    ]


def test_sentiment_shares_per_day(published):
    assert rows(published, "sentiment") == [
        ["2026-03-01", "4", "50.0%", "25.0%", "25.0%"],
        ["2026-03-02", "5", "0.0%", "0.0%", "100.0%"],
        ["2026-03-03", "8", "25.0%", "25.0%", "50.0%"],
    ]


def test_post_text_escaped(published):
    assert "<script>" not in published.html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in published.html


def test_entity_text_escaped(published):
    assert "<b>Acme</b>" not in published.html
    assert "&lt;b&gt;Acme&lt;/b&gt;" in published.html


def test_representative_posts_by_confidence(published):
    negative = rows(published, "representative", 0)
    positive = rows(published, "representative", 1)
    assert negative == [["2026-03-03-0", "0.990", SCRIPT_POST],
                        ["2026-03-03-1", "0.800", "Flight to Boston delayed three hours"]]
    assert [row[:2] for row in positive] == [["2026-03-03-4", "0.950"],
                                             ["2026-03-03-5", "0.900"],
                                             ["2026-03-03-6", "0.850"]]


def test_top_entities_counted(published):
    assert rows(published, "entities", 0) == [["corporation", "Delta", "3"],
                                              ["location", "Boston", "2"],
                                              ["product", "<b>Acme</b>", "1"]]
    assert rows(published, "entities", 1) == [["corporation", "3"], ["location", "2"],
                                              ["product", "1"]]


def test_quality_section_counts(published):
    counts, failed, reasons = (rows(published, "quality", n) for n in range(3))
    assert counts == [["12", "8", "2", "2"]]
    assert failed == [["raw_posts", "expect_column_values_to_not_be_null(text): 2 rows"]]
    assert reasons == [["text", "expect_column_values_to_not_be_null", "2",
                        "test line 1, field 'text': text is empty"]]


def test_model_versions_listed(published):
    assert rows(published, "models") == [["entities", "2", "8"], ["retrieval", "base-model", "8"],
                                         ["sentiment", "3", "8"]]


def test_stored_files_are_valid_pngs(published):
    assert published.result["files"] == EXPECTED_FILES
    for name in EXPECTED_FILES[:2] + EXPECTED_FILES[3:]:
        data = published.store.read_bytes(storage.partition_key(daily.REPORTS, DAY, name))
        width, height = png_size(data)
        assert width > 100
        assert height > 50
        assert matplotlib.image.imread(io.BytesIO(data), format="png").ndim == 3


def test_plots_linked_relatively(published):
    for name in ("volume.png", "sentiment.png", "entities.png"):
        assert f'<img src="{name}"' in published.html


def test_result_names_report_uri(published):
    key = storage.partition_key(daily.REPORTS, DAY, daily.REPORT_FILE)
    assert published.result["report"] == published.store.uri(key)
    assert published.result["report"].endswith("reports/date=2026-03-03/report.html")
    assert published.result["drift_warnings"] == []


def test_mlflow_run_has_report_artifacts(published):
    from mlflow import MlflowClient

    settings = published.settings
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name("social-pulse-reports")
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_name for run in runs] == ["report-2026-03-03"]
    run = runs[0]
    assert run.info.run_id == published.result["mlflow_run_id"]
    assert sorted(item.path for item in client.list_artifacts(run.info.run_id)) == EXPECTED_FILES
    assert run.data.metrics["posts.clean"] == 8
    assert run.data.metrics["posts.quarantined"] == 2
    assert run.data.metrics["share.positive"] == 0.5
    assert run.data.metrics["entity_mentions"] == 6


def test_publish_again_reuses_run(published):
    from mlflow import MlflowClient

    again = daily.publish_report(published.store, DAY, published.settings)
    client = MlflowClient(published.settings.tracking_uri)
    experiment = client.get_experiment_by_name("social-pulse-reports")
    assert again["mlflow_run_id"] == published.result["mlflow_run_id"]
    assert len(client.search_runs([experiment.experiment_id])) == 1
    training = client.get_experiment_by_name(published.settings.registry.experiment)
    assert client.search_runs([training.experiment_id]) == []


def test_missing_scores_give_notes(published, tmp_path):
    settings = published.settings.model_copy(update={"store_uri": str(tmp_path / "store")})
    store = storage.open_store(settings.store)
    build_store(store, with_scores=False)
    report = daily.build_report(store, DAY, settings)
    assert "No sentiment scores in this period" in report.html
    assert "No scores for 2026-03-03." in report.html
    assert "Drift not measured: social-pulse-sentiment has no &#x27;champion&#x27; version" \
        in report.html
    assert sorted(report.files) == EXPECTED_FILES
    for name, data in report.figures.items():
        assert png_size(data)[0] > 0, name


def test_scores_without_entities_note(published, tmp_path):
    settings = published.settings.model_copy(update={"store_uri": str(tmp_path / "store")})
    store = storage.open_store(settings.store)
    posts = clean_frame(DAY, ["only post"])
    storage.write_frame(store, CLEAN, DAY, posts)
    storage.write_frame(store, SCORES, DAY, scores_frame(posts, ["neutral"], [0.7]))
    report = daily.build_report(store, DAY, settings)
    assert "have no entity spans: no entities champion scored them" in report.html
    assert "No manifest for 2026-03-03" in report.html
    assert "No post predicted negative." in report.html
    assert report.metrics["share.neutral"] == 1.0


def test_entity_with_dollar_sign_plots():
    entities = pd.DataFrame({"type": ["corporation"], "text": ["$AAPL up $5"], "count": [2]})
    assert png_size(plots.plot_entities(entities))[0] > 0


def test_cli_prints_report_path(published, monkeypatch, capsys):
    from tasks.cli import main
    from tasks.settings import reload_settings

    monkeypatch.setenv("PULSE_HOME", str(published.settings.home))
    reload_settings()
    try:
        code = main(["report", "--date", "2026-03-03"])
    finally:
        monkeypatch.undo()
        reload_settings()
    assert code == 0
    assert capsys.readouterr().out.strip() == published.result["report"]


def test_s3_store_report(published, moto_endpoint, monkeypatch):
    from conftest import MOTO_BUCKET

    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)  # configure_mlflow sets it
    settings = published.settings.model_copy(update={
        "store_uri": f"s3://{MOTO_BUCKET}/report-test", "s3_endpoint_url": moto_endpoint,
        "report": ReportSettings(experiment="social-pulse-reports-s3")})
    store = storage.open_store(settings.store, moto_endpoint)
    build_store(store)
    result = daily.publish_report(store, DAY, settings)
    assert result["report"] == f"s3://{MOTO_BUCKET}/report-test/reports/date=2026-03-03/report.html"
    keys = store.list_keys("reports/date=2026-03-03/")
    assert keys == [f"reports/date=2026-03-03/{name}" for name in EXPECTED_FILES]
    html = store.read_bytes("reports/date=2026-03-03/report.html").decode()
    assert html_tables(html)["volume"][0][1:][2] == ["2026-03-03", "12", "8", "2", "2"]

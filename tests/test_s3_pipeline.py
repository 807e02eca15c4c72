"""The whole pipeline with the store and MLflow artifacts on S3 (a moto server on loopback)."""

from __future__ import annotations

import datetime as dt

import boto3
import mlflow
import pytest

from conftest import MOTO_BUCKET
from tasks import jobs, storage
from tasks.registry.tracking import configure_mlflow
from tasks.settings import reload_settings

DAY = dt.date(2026, 12, 3)


@pytest.fixture(scope="module")
def s3_run(moto_endpoint, tmp_path_factory):
    home = tmp_path_factory.mktemp("s3home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(home))
        patch.setenv("PULSE_STORE_URI", f"s3://{MOTO_BUCKET}/pipeline")
        patch.setenv("PULSE_S3_ENDPOINT_URL", moto_endpoint)
        patch.setenv("PULSE_MLFLOW_ARTIFACT_ROOT", f"s3://{MOTO_BUCKET}/mlflow")
        patch.setenv("PULSE_COLLECT__SAMPLE_SIZE", "160")
        patch.setenv("PULSE_ANNOTATION__EXPORT_SIZE", "120")
        patch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
        settings = reload_settings()
        results = {
            "manifest": jobs.collect_day(DAY, "sample", settings),
            "export": jobs.export_annotations(DAY, settings),
            "simulate": jobs.simulate_annotator(DAY, settings),
            "labels": jobs.import_labels(DAY, settings),
            "train": jobs.train_sentiment(DAY, settings),
            "promotion": jobs.promote_sentiment(settings),
            "scores": jobs.score_sentiment(DAY, settings),
        }
        yield settings, results, moto_endpoint
    reload_settings()


def _keys(endpoint: str, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=MOTO_BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_partitions_on_s3(s3_run):
    _, _, endpoint = s3_run
    keys = _keys(endpoint, "pipeline/")
    for dataset in ("raw_posts", "quarantine", "clean_posts", "duplicates", "labels", "scores"):
        assert f"pipeline/{dataset}/date={DAY.isoformat()}/part-0.parquet" in keys


def test_manifest_counts_add_up(s3_run):
    manifest = s3_run[1]["manifest"]
    assert manifest["partitions"]["clean_posts"].startswith("s3://")
    assert manifest["collected"] == manifest["clean"] + manifest["duplicates"] + manifest["quarantined"]


def test_model_artifacts_on_s3(s3_run):
    settings, results, endpoint = s3_run
    configure_mlflow(settings)
    version = mlflow.MlflowClient().get_model_version(settings.registry.sentiment_model,
                                                      results["train"]["version"])
    run = mlflow.get_run(version.run_id)
    assert run.info.artifact_uri.startswith(f"s3://{MOTO_BUCKET}/mlflow/")
    assert any(key.endswith("confusion_matrix.png") for key in _keys(endpoint, "mlflow/"))


def test_scores_read_back(s3_run):
    settings, results, _ = s3_run
    store = storage.open_store(settings.store, settings.s3_endpoint_url)
    scores = storage.read_frame(store, "scores", DAY)
    clean = storage.read_frame(store, "clean_posts", DAY)
    assert results["promotion"]["promoted"]
    assert set(scores["id"]) == set(clean["id"])

"""The daily report: one HTML page with PNG plots per partition date.

Sections: post volume and sentiment share over the last ``report.history_days`` days, top
entities, representative posts, data quality, model versions and drift. The representative
posts of a class are the ones its champion predicted with the highest confidence.

The report is stored as ``reports/date=D/report.html`` with its PNGs beside it, linked
relatively, and logged as the artifacts of the MLflow run ``report-D`` in the experiment
``report.experiment``. The same five files are written every time, with a placeholder
image where a plot has no data, so building a day again replaces the whole report.
A missing input (no scores, no entities champion, no manifest) becomes a note in its
section.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks import storage
from tasks.collect.stage import CLEAN
from tasks.report import inputs, plots
from tasks.report.drift import REFERENCE_ARTIFACT, DriftReport, measure_drift
from tasks.report.render import (
    Section,
    escape,
    image,
    note,
    page,
    paragraph,
    table,
    warning_box,
)
from tasks.retrieve.encoder import Encoder
from tasks.score.batch import SCORES
from tasks.settings import Settings

log = logging.getLogger(__name__)

REPORTS = "reports"
REPORT_FILE = "report.html"
VOLUME_PNG = "volume.png"
SENTIMENT_PNG = "sentiment.png"
ENTITIES_PNG = "entities.png"
DRIFT_PNG = "drift.png"
REPRESENTATIVE_CLASSES = ("negative", "positive")


@dataclass
class DailyReport:
    """A built report: the HTML page, its PNGs by file name, and the metrics logged with it."""

    day: dt.date
    html: str
    figures: dict[str, bytes]
    metrics: dict[str, float]
    drift: DriftReport

    @property
    def files(self) -> dict[str, bytes]:
        """Every file of the report by name, the HTML page last."""
        return {**self.figures, REPORT_FILE: self.html.encode()}

    def write_to(self, folder: Path) -> list[Path]:
        """Write the report's files into ``folder``; return their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
            paths.append(folder / name)
        return paths


def sentiment_labels(settings: Settings) -> list[str]:
    """Return the sentiment label set from the settings, in their order."""
    return list(settings.classification_tasks.get("sentiment",
                                                  ["negative", "neutral", "positive"]))


def build_report(store: storage.Store, day: dt.date, settings: Settings,
                 load_encoder: Callable[[str], Encoder] | None = None) -> DailyReport:
    """Read the day's data and history from the store and build the report.

    ``load_encoder`` is passed to :func:`tasks.report.drift.measure_drift`.
    """
    config = settings.report
    labels = sentiment_labels(settings)
    days = inputs.history_days(store, day, config.history_days)
    posts = inputs.read_partition(store, CLEAN, day)
    scores = inputs.read_partition(store, SCORES, day)
    volume = inputs.load_volume(store, days)
    shares = inputs.load_sentiment_shares(store, days, labels)
    drift = measure_drift(store, day, settings, posts if posts is not None else pd.DataFrame(),
                          scores, load_encoder)

    figures: dict[str, bytes] = {}
    volume_part, figures[VOLUME_PNG] = volume_section(volume, config.history_days)
    sentiment_part, figures[SENTIMENT_PNG] = sentiment_section(shares, labels, day)
    entities_part, figures[ENTITIES_PNG] = entities_section(scores, day, config.top_entities)
    drift_part, figures[DRIFT_PNG] = drift_section(drift)
    sections = [
        volume_part,
        sentiment_part,
        entities_part,
        representative_section(scores, posts, day, config.representative_posts),
        quality_section(store, day),
        models_section(scores, day),
        drift_part,
    ]
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    html = page(f"Social Pulse daily report {day.isoformat()}",
                f"Generated {generated} from the store {store.uri('')}.", sections)
    metrics = report_metrics(volume, shares, scores, drift, day)
    return DailyReport(day, html, figures, metrics, drift)


def volume_section(volume: pd.DataFrame, days: int) -> tuple[Section, bytes]:
    """Build the volume section: collected, clean, duplicate and quarantined posts per day."""
    title = "Post volume"
    if volume[inputs.VOLUME_COLUMNS].isna().all().all():
        message = f"No manifests or clean posts in the last {days} days."
        return Section("volume", title, note(message)), plots.plot_message(message)
    body = (paragraph(f"Last {len(volume)} of up to {days} days. A day without a manifest "
                      "shows its clean posts only.")
            + image(VOLUME_PNG, "posts per day") + table(volume))
    return Section("volume", title, body), plots.plot_volume(volume)


def sentiment_section(shares: pd.DataFrame, labels: list[str],
                      day: dt.date) -> tuple[Section, bytes]:
    """Build the sentiment section: the share of each predicted label per day."""
    title = "Sentiment share"
    if shares.empty:
        message = ("No sentiment scores in this period: no day in it was scored by a "
                   "sentiment champion.")
        return Section("sentiment", title, note(message)), plots.plot_message(message)
    formatted = shares.assign(**{label: shares[label].map(lambda share: f"{100 * share:.1f}%")
                             for label in labels})
    body = image(SENTIMENT_PNG, "sentiment share per day") + table(formatted)
    if day.isoformat() not in set(shares["date"]):
        body = note(f"No sentiment scores for {day.isoformat()}.") + body
    return Section("sentiment", title, body), plots.plot_sentiment(shares, labels)


def entities_section(scores: pd.DataFrame | None, day: dt.date,
                     top: int) -> tuple[Section, bytes]:
    """Build the entities section: the day's most frequent spans by type and text."""
    title = "Top entities"
    if scores is None:
        message = f"No scores for {day.isoformat()}."
    elif "entities" not in scores:
        message = (f"The scores of {day.isoformat()} have no entity spans: no entities "
                   "champion scored them.")
    else:
        entities = inputs.count_entities(scores)
        message = "" if not entities.empty else f"No entity spans in the scores of {day.isoformat()}."
    if message:
        return Section("entities", title, note(message)), plots.plot_message(message)
    by_type = entities.groupby("type", as_index=False)["count"].sum().sort_values(
        ["count", "type"], ascending=[False, True])
    body = (image(ENTITIES_PNG, "top entities") + table(entities.head(top))
            + paragraph("Mentions per type:") + table(by_type))
    return Section("entities", title, body), plots.plot_entities(entities.head(top))


def representative_section(scores: pd.DataFrame | None, posts: pd.DataFrame | None,
                           day: dt.date, count: int) -> Section:
    """Build the section of negative and positive posts with the highest confidence."""
    title = "Representative posts"
    if scores is None or "label" not in scores:
        return Section("representative", title,
                       note(f"No sentiment scores for {day.isoformat()}."))
    posts = posts if posts is not None else pd.DataFrame(columns=["id", "text"])
    body = paragraph(f"Per class, the {count} posts that the sentiment champion predicted "
                     "with the highest confidence.")
    for label in REPRESENTATIVE_CLASSES:
        chosen = inputs.representative_posts(scores, posts, label, count)
        body += f"<h3>{escape(label)}</h3>"
        body += table(chosen) if not chosen.empty else note(f"No post predicted {label}.")
    return Section("representative", title, body)


def quality_section(store: storage.Store, day: dt.date) -> Section:
    """Build the data-quality section from the day's manifest, quarantine and suite results."""
    title = "Data quality"
    manifest = inputs.read_manifest(store, day)
    if manifest is None:
        body = note(f"No manifest for {day.isoformat()}: collect_posts has not finished that day.")
    else:
        counts = pd.DataFrame([{name: manifest.get(name) for name in inputs.VOLUME_COLUMNS}])
        body = table(counts) + _failed_expectations(manifest)
    reasons = inputs.load_quarantine_reasons(store, day)
    body += "<h3>Quarantine reasons</h3>"
    if reasons is None:
        body += note(f"No quarantine partition for {day.isoformat()}.")
    else:
        body += table(reasons) if not reasons.empty else paragraph("No record was quarantined.")
    results = inputs.load_validation_results(store, day)
    body += "<h3>Validation results</h3>"
    body += table(results) if not results.empty else note("No stored validation results.")
    return Section("quality", title, body)


def _failed_expectations(manifest: dict[str, Any]) -> str:
    failed = manifest.get("failed_expectations") or {}
    rows = [{"suite": suite, "expectation": item}
            for suite, items in failed.items() for item in items]
    if not rows:
        return paragraph("No expectation failed.")
    return "<h3>Failed expectations</h3>" + table(pd.DataFrame(rows))


def models_section(scores: pd.DataFrame | None, day: dt.date) -> Section:
    """Build the section listing each task's model version with the posts it scored."""
    title = "Model versions"
    if scores is None or "model_versions" not in scores:
        return Section("models", title, note(f"No scores for {day.isoformat()}."))
    versions = inputs.count_model_versions(scores)
    return Section("models", title,
                   paragraph("From the model_versions column of the scores partition; "
                             "'retrieval' is the model that built the embedding index.")
                   + table(versions))


def drift_section(drift: DriftReport) -> tuple[Section, bytes]:
    """Build the drift section from the comparisons with the champion's reference."""
    title = "Drift"
    if drift.reference is None:
        message = f"Drift not measured: {drift.note}."
        return Section("drift", title, note(message)), plots.plot_message(message)
    reference = drift.reference
    used = f"the {reference.available}" if len(reference.posts) == reference.available \
        else f"a seeded sample of {len(reference.posts)} of the {reference.available}"
    body = paragraph(
        f"Reference: {used} validation posts of {reference.model} version "
        f"{reference.version} (run {reference.run_id}), logged by its training run as "
        f"{REFERENCE_ARTIFACT}. They are a hash split of the labels that the champion trained "
        "on, so they serve as a sample of its training data.")
    if drift.warnings:
        body += warning_box([f"{m.name}: {m.statistic} {m.value:.3f} is above the threshold "
                             f"{m.threshold:.3f}" for m in drift.warnings])
    rows = [{"comparison": m.name, "statistic": m.statistic, "value": m.value,
             "threshold": m.threshold,
             "status": "not measured" if m.value is None
             else "above threshold" if m.exceeded else "ok",
             "detail": m.note} for m in drift.metrics]
    body += table(pd.DataFrame(rows))
    try:
        figure = plots.plot_drift(drift.metrics)
    except ValueError:
        return Section("drift", title, body), plots.plot_message("No drift metric was measured.")
    return Section("drift", title, image(DRIFT_PNG, "drift distributions") + body), figure


def report_metrics(volume: pd.DataFrame, shares: pd.DataFrame, scores: pd.DataFrame | None,
                   drift: DriftReport, day: dt.date) -> dict[str, float]:
    """Return the day's numbers to log with the MLflow run: counts, shares, drift values."""
    metrics: dict[str, float] = {}
    today = volume[volume["date"] == day.isoformat()]
    for name in inputs.VOLUME_COLUMNS:
        if not today.empty and not pd.isna(today[name].iloc[0]):
            metrics[f"posts.{name}"] = float(today[name].iloc[0])
    for row in shares[shares["date"] == day.isoformat()].to_dict("records"):
        metrics.update({f"share.{k}": float(v) for k, v in row.items() if k != "date"})
    if scores is not None and "entities" in scores:
        metrics["entity_mentions"] = float(inputs.count_entities(scores)["count"].sum())
    for metric in drift.metrics:
        if metric.value is not None:
            metrics[f"drift.{metric.name.replace(' ', '_')}"] = metric.value
    return metrics


def log_report_run(settings: Settings, day: dt.date, folder: Path,
                   metrics: dict[str, float]) -> str:
    """Log ``folder`` and ``metrics`` to the MLflow run ``report-D``; return its run id.

    A day that has a run already gets it again, so each day keeps one run whose
    artifacts are the latest report. The run is written through the client, so the
    process's active experiment (the training one) stays as it is.
    """
    from tasks.registry.tracking import configure_mlflow

    client = configure_mlflow(settings)
    experiment_id = report_experiment(client, settings)
    found = client.search_runs([experiment_id], f"tags.report_date = '{day.isoformat()}'",
                               max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        run_id = client.create_run(experiment_id, run_name=f"report-{day.isoformat()}",
                                   tags={"report_date": day.isoformat()}).info.run_id
    try:
        for name, value in metrics.items():
            client.log_metric(run_id, name, value)
        client.log_artifacts(run_id, str(folder))
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def report_experiment(client: Any, settings: Settings) -> str:
    """Return the id of the report experiment, creating it beside the training experiment."""
    name = settings.report.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = settings.artifact_root
    if "://" in root:
        location = f"{root.rstrip('/')}/{name}"
    else:
        path = Path(root) / name
        path.mkdir(parents=True, exist_ok=True)
        location = path.resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def publish_report(store: storage.Store, day: dt.date, settings: Settings,
                   load_encoder: Callable[[str], Encoder] | None = None) -> dict[str, Any]:
    """Build the day's report, replace it in the store and log it to MLflow.

    Returns the report's URI, its file names, the MLflow run id and the names of the
    drift metrics above their thresholds.
    """
    log.info("building the report of %s", day)
    report = build_report(store, day, settings, load_encoder)
    for name, data in report.files.items():
        store.write_bytes(storage.partition_key(REPORTS, day, name), data)
    with tempfile.TemporaryDirectory() as folder:
        report.write_to(Path(folder))
        run_id = log_report_run(settings, day, Path(folder), report.metrics)
    uri = store.uri(storage.partition_key(REPORTS, day, REPORT_FILE))
    warnings = [metric.name for metric in report.drift.warnings]
    log.info("report of %s written to %s with %d files (MLflow run %s, drift warnings: %s)",
             day, uri, len(report.files), run_id, warnings or "none")
    return {"report": uri, "files": sorted(report.files), "mlflow_run_id": run_id,
            "drift_warnings": warnings}

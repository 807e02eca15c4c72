"""One function per pipeline step, bound to the settings and the store.

DAG tasks and the ``pulse`` CLI call these. Each takes the partition date and returns a
small JSON-ready summary (it becomes the task's XCom in Airflow).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from typing import Any

from tasks import storage
from tasks.annotate import export, labels, simulate
from tasks.collect import sample, stage
from tasks.collect.sources import Source, open_source
from tasks.settings import Settings, get_settings

# Model code (torch, transformers, MLflow) is imported inside the functions that need it,
# so that collection tasks start in seconds.

log = logging.getLogger(__name__)

SENTIMENT_LABELS = list(sample.SENTIMENT_LABELS)


def as_date(day: str | dt.date) -> dt.date:
    return day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])


def _context(settings: Settings | None) -> tuple[Settings, storage.Store]:
    settings = settings or get_settings()
    return settings, storage.open_store(settings.store, settings.s3_endpoint_url or None)


def open_sources(specs: str, settings: Settings, store: storage.Store) -> list[Source]:
    """Open every source in ``specs``, a comma-separated list of source specs.

    A spec is 'sample', a local folder or file, an ``s3://bucket/prefix``, or a platform API
    such as ``mastodon+https://mastodon.social/tags/python`` (see tasks.collect.apis).
    """
    sources: list[Source] = []
    for spec in (part.strip() for part in specs.split(",")):
        if not spec:
            continue
        if "+http" in spec.partition("://")[0]:
            from tasks.collect.apis import open_api_source

            sources.append(open_api_source(spec, store))
            continue
        # The ledger is named after the location, so switching folders never mixes ledgers.
        name = "files-" + hashlib.sha1(spec.encode()).hexdigest()[:10]
        sources.append(open_source(spec, settings.collect.sample_size, store=store,
                                   endpoint_url=settings.s3_endpoint_url or None, name=name))
    if not sources:
        raise ValueError("no source configured: set collect.source (PULSE_COLLECT__SOURCE)")
    return sources


def collect_raw(day: str | dt.date, source: str | None = None,
                settings: Settings | None = None) -> dict[str, Any]:
    """Fetch the day's posts from the configured (or given) sources into raw_posts."""
    settings, store = _context(settings)
    specs = source or settings.collect.source
    count = stage.collect_raw(open_sources(specs, settings, store), store, as_date(day))
    return {"source": specs, "collected": count}


def validate_raw(day: str | dt.date, settings: Settings | None = None) -> dict[str, int]:
    """Run the raw_posts suite; quarantine failing records."""
    settings, store = _context(settings)
    return stage.validate_raw(store, as_date(day), settings)


def clean(day: str | dt.date, settings: Settings | None = None) -> dict[str, int]:
    """Normalise, mask and de-duplicate the valid posts into clean_posts."""
    settings, store = _context(settings)
    return stage.clean_posts(store, as_date(day), settings)


def write_manifest(day: str | dt.date, source: str | None = None,
                   settings: Settings | None = None) -> dict[str, Any]:
    """Check collected = clean + duplicates + quarantined and store the manifest."""
    settings, store = _context(settings)
    return stage.write_manifest(store, as_date(day), source or settings.collect.source)


def collect_day(day: str | dt.date, source: str | None = None,
                settings: Settings | None = None) -> dict[str, Any]:
    """Run every collection step for one day, as the collect_posts DAG does."""
    collect_raw(day, source, settings)
    validate_raw(day, settings)
    clean(day, settings)
    return write_manifest(day, source, settings)


def export_annotations(day: str | dt.date, settings: Settings | None = None,
                       formats: list[str] | None = None) -> dict[str, Any]:
    """Export the day's chosen clean posts as annotation tasks, pre-annotated by champions.

    Up to ``annotation.export_size`` posts are chosen by ``annotation.selection_strategy``.
    The 'active' strategy embeds posts with the retrieval champion, else the base model.
    ``formats`` defaults to ``annotation.export_formats``.
    """
    from tasks.annotate.preannotate import load_champion
    from tasks.annotate.select import serving_embed

    settings, store = _context(settings)
    posts = storage.read_frame(store, stage.CLEAN, as_date(day))
    formats = formats or settings.annotation.export_formats
    tasks = export.exportable_tasks(settings.annotation.export_tasks, formats)
    annotation = settings.annotation
    return export.export_for_labeling(
        store, as_date(day), posts, annotation.export_size, SENTIMENT_LABELS,
        formats=formats, tasks=tasks,
        entity_types=annotation.entity_types,
        champions={task: load_champion(task, settings) for task in tasks},
        strategy=annotation.selection_strategy, measure=annotation.uncertainty_measure,
        pool_factor=annotation.candidate_pool_factor, embed=serving_embed(settings))


def simulate_annotator(day: str | dt.date, settings: Settings | None = None) -> dict[str, str]:
    """Complete the day's exported sample tasks with the sample's own labels (demo only)."""
    settings, store = _context(settings)
    name = export.export_file_name("sentiment", export.LABEL_STUDIO)
    key = storage.partition_key(export.ANNOTATION_TASKS, as_date(day), name)
    gold = sample.gold_labels(as_date(day), count=settings.collect.sample_size)
    finished = simulate.complete_label_studio_tasks(storage.read_json(store, key), gold)
    path = simulate.write_export(finished, settings.label_inbox, as_date(day))
    return {"export": str(path)}


def import_labels(day: str | dt.date, settings: Settings | None = None,
                  files: list[Any] | None = None) -> dict[str, int]:
    """Import finished label files as the day's batch of labels.

    ``files`` (paths) defaults to the inbox files that are new or were imported for ``day``.
    """
    settings, store = _context(settings)
    if files is None:
        files = labels.files_to_import(store, settings.label_inbox, as_date(day))
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"label files not found: {', '.join(missing)}")
    return labels.import_labels(store, as_date(day), files, SENTIMENT_LABELS,
                                settings.annotation.entity_types)


def pseudo_label(day: str | dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Store the sentiment champion's confident predictions on the day's unlabeled posts.

    Only when ``train.use_pseudo_labels`` is set; they go to ``pseudo_labels``, apart from
    the human labels. Returns the counts, or a reason when nothing was done.
    """
    from tasks.annotate.preannotate import load_champion
    from tasks.annotate.pseudo import create_pseudo_labels

    settings, store = _context(settings)
    if not settings.train.use_pseudo_labels:
        return {"skipped": "train.use_pseudo_labels is off"}
    champion = load_champion("sentiment", settings)
    if champion is None:
        return {"skipped": "the sentiment model has no champion to pseudo-label with"}
    return create_pseudo_labels(store, as_date(day), champion, SENTIMENT_LABELS,
                                settings.annotation.pseudo_label_threshold,
                                settings.annotation.pseudo_label_max_per_class)


def train_sentiment(day: str | dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Train on every label imported up to ``day`` and register a sentiment model version.

    The run is tagged with the hash of the label versions it trained on, and the full list
    of ``label_id@version`` entries is stored under ``label_versions/`` in the store and
    logged with the run as ``data/label_versions.json``. With
    ``train.use_pseudo_labels``, the pseudo labels stored up to ``day`` join the training
    posts, except those of posts that humans labeled. The hash covers human labels only.
    """
    from tasks.annotate import history, pseudo
    from tasks.train.classifier import split_by_hash
    from tasks.train.pipeline import train_and_register

    settings, store = _context(settings)
    frame = labels.load_all_labels(store, as_date(day))
    train, validation = split_by_hash(frame, settings.train.validation_percent)
    partitions = sorted(set(frame["partition"])) if not frame.empty else []
    versions = history.label_versions(frame)
    data_tags = {"data.labels_partitions": ",".join(partitions),
                 "data.labels_store": store.uri(labels.LABELS),
                 "data.label_versions_sha256": versions.sha256,
                 "data.label_versions_uri": history.save_label_versions(store, versions),
                 "data.train_size": str(len(train)), "data.validation_size": str(len(validation))}
    pseudo_labels = None
    if settings.train.use_pseudo_labels:
        stored = pseudo.load_pseudo_labels(store, as_date(day))
        pseudo_labels = pseudo.pseudo_labels_for_training(stored, frame)
        data_tags.update({"data.pseudo_labels_store": store.uri(pseudo.PSEUDO_LABELS),
                          "data.pseudo_labels_size": str(len(pseudo_labels))})
    registered = train_and_register(train, validation, SENTIMENT_LABELS, settings,
                                    settings.registry.sentiment_model, data_tags,
                                    pseudo_labels=pseudo_labels)
    # The run also stores the exact label list, so MLflow alone records what it trained on.
    import mlflow

    mlflow.MlflowClient(settings.tracking_uri).log_dict(
        registered.run_id, {**dataclasses.asdict(versions), "count": versions.count},
        "data/label_versions.json")
    return {"model_uri": registered.uri, "version": registered.version,
            "macro_f1": registered.metrics["macro_f1"],
            "macro_recall": registered.metrics["macro_recall"],
            "pseudo_labels": 0 if pseudo_labels is None else len(pseudo_labels)}


def promote_sentiment(settings: Settings | None = None) -> dict[str, Any]:
    """Run the promotion gate on the newest sentiment model version."""
    return promote("sentiment", settings)


def promote(task: str, settings: Settings | None = None) -> dict[str, Any]:
    """Validate the newest version of ``task``'s model and deploy it as champion if it passes.

    ``task`` is 'entities' (span F1), 'retrieval' (recall@10) or a classification task
    such as 'sentiment' (macro-F1).
    """
    from tasks.commands import model_name
    from tasks.registry import promotion

    settings, _ = _context(settings)
    decision = promotion.promote_latest(settings, model_name(task, settings),
                                        promotion.gate_for(task, settings))
    return dataclasses.asdict(decision)


def validate_candidate(task: str, settings: Settings | None = None) -> dict[str, Any]:
    """Run the gate of ``task`` on its newest version; a pass sets the challenger alias."""
    from tasks.commands import model_name
    from tasks.registry import promotion

    settings, _ = _context(settings)
    decision = promotion.validate_latest(settings, model_name(task, settings),
                                         promotion.gate_for(task, settings))
    return dataclasses.asdict(decision)


def deploy_candidate(task: str, settings: Settings | None = None) -> dict[str, Any]:
    """Move ``task``'s champion alias to its challenger version and record the decision."""
    from tasks.commands import model_name
    from tasks.registry import promotion

    settings, _ = _context(settings)
    return dataclasses.asdict(promotion.deploy_challenger(settings, model_name(task, settings)))


def rollback(task: str, reason: str, settings: Settings | None = None) -> dict[str, Any]:
    """Return ``task``'s champion to the version it replaced, recording ``reason``."""
    from tasks.commands import model_name
    from tasks.registry import promotion

    settings, _ = _context(settings)
    return promotion.rollback(settings, model_name(task, settings), reason)


def promotion_tasks(settings: Settings | None = None) -> list[str]:
    """Return the tasks whose gates the scoring DAG runs: the scoring tasks and retrieval."""
    settings = settings or get_settings()
    return list(dict.fromkeys([*settings.score.tasks, "retrieval"]))


def score_posts(day: str | dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Score the day's clean posts with the champion of every task in ``score.tasks``."""
    from tasks.score import batch

    settings, store = _context(settings)
    return batch.score_partition(store, as_date(day), settings)


def plan_scoring(day: str | dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Fix the champion versions and the shard count for scoring the day's posts."""
    from tasks.score import batch

    settings, store = _context(settings)
    return batch.plan_scoring(store, as_date(day), settings)


def score_shard(day: str | dt.date, plan: dict[str, Any], shard: int,
                settings: Settings | None = None) -> dict[str, Any]:
    """Score one shard of the day's posts with the planned versions."""
    from tasks.score import batch

    settings, store = _context(settings)
    return batch.score_shard(store, as_date(day), settings, plan, shard)


def merge_scores(day: str | dt.date, plan: dict[str, Any],
                 settings: Settings | None = None) -> dict[str, Any]:
    """Join the scored shards into the day's validated scores partition."""
    from tasks.score import batch

    settings, store = _context(settings)
    return batch.merge_shards(store, as_date(day), settings, plan)


def score_sentiment(day: str | dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Score the day's clean posts with the champion sentiment model only."""
    from tasks.score import batch

    settings, store = _context(settings)
    return batch.score_partition(store, as_date(day), settings, ["sentiment"])


def daily_report(day: str | dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Build the day's HTML report, replace it under ``reports/`` and log it to MLflow.

    Works on any day with data: missing scores or champions become notes in the report.
    Returns the report's URI, its files, the MLflow run id and the drift warnings.
    """
    from tasks.report import daily

    settings, store = _context(settings)
    return daily.publish_report(store, as_date(day), settings)

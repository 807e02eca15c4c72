"""Data-quality checks of the data a model is trained on, recorded with its MLflow run.

Training runs the check, logs the Great Expectations result under ``data_quality/`` and
tags the run ``data_quality`` with ``passed``, ``failed: <reasons>`` or ``not checked:
<why>``. The promotion gate reads that tag: a model trained on failing data does not
become champion. Training itself goes on, so the failing run can still be inspected.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tasks.validate.suites import ValidationReport, validate_frame

if TYPE_CHECKING:
    from tasks.extract.conll import TaggedPost

log = logging.getLogger(__name__)

DATA_QUALITY_TAG = "data_quality"
PASSED = "passed"
NOT_CHECKED = "not checked"


def check_training_set(train: pd.DataFrame, validation: pd.DataFrame,
                       labels: Sequence[str], multi_label: bool = False) -> ValidationReport:
    """Run the ``training_set`` suite on a classifier's train and validation posts.

    Multi-label frames (a ``labels`` list column) are checked one row per post and label;
    a post with no label counts for its text only.
    """
    frames = []
    for split, frame in (("train", train), ("validation", validation)):
        if multi_label:
            # A post with no label gets a null label, which the label checks skip.
            frame = frame.explode("labels").rename(columns={"labels": "label"})
        frames.append(frame[["text", "label"]].assign(split=split))
    rows = pd.concat(frames, ignore_index=True)
    return validate_frame(rows, "training_set", {"label_set": list(labels)})


def check_tagged_posts(train: Sequence[TaggedPost],
                       validation: Sequence[TaggedPost]) -> ValidationReport:
    """Run the ``tagged_posts`` suite on an entity tagger's train and validation posts."""
    from tasks.extract.conll import check_tag

    rows = [
        {"text": " ".join(post.tokens), "token_count": len(post.tokens),
         "tag_count": len(post.tags), "invalid_tags": sum(not check_tag(t) for t in post.tags),
         "split": split}
        for split, posts in (("train", train), ("validation", validation)) for post in posts
    ]
    return validate_frame(pd.DataFrame(rows), "tagged_posts")


def verdict(report: ValidationReport) -> str:
    """Return the tag value for ``report``: 'passed' or 'failed: <what failed>'."""
    critical = [f.describe() for f in report.failures if f.severity == "critical"]
    return PASSED if not critical else "failed: " + "; ".join(critical)


def log_data_quality(report: ValidationReport | None, reason: str = "") -> str:
    """Log ``report`` to the active MLflow run and tag the run; return the tag value.

    With ``report`` None, the run is tagged 'not checked: <reason>'.
    """
    import mlflow

    if report is None:
        value = f"{NOT_CHECKED}: {reason}"
    else:
        value = verdict(report)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{report.suite}.json"
            path.write_text(json.dumps(report.summary, indent=1))
            mlflow.log_artifact(str(path), "data_quality")
            if report.html:
                page = path.with_suffix(".html")
                page.write_text(report.html)
                mlflow.log_artifact(str(page), "data_quality")
    # Tag values are limited in length; the full result is in the artifact.
    mlflow.set_tag(DATA_QUALITY_TAG, value[:4000])
    if value != PASSED:
        log.warning("training data quality: %s", value)
    return value

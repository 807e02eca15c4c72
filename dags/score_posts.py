"""
### Score posts

Runs when a day's `clean_posts` are published and when a new sentiment model version is
registered:

1. **promote**: the newest model version becomes the `champion` alias only if its macro-F1
   reaches `registry.macro_f1_floor` and is no worse than the current champion's on the
   candidate's validation set. The decision and reasons are written onto the version.
2. **score**: score the day's clean posts with `models:/<name>@champion` into `scores`
   (post id, label, class probabilities, model version, scoring time). Skipped, not
   failed, while no champion exists.
3. **index_posts**: embed the day's clean posts with the retrieval champion (the base
   model while there is none) into a FAISS index under `embeddings`, for `pulse search`.
"""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from pulse_airflow import (
    CLEAN_POSTS,
    DATE_PARAM_DOC,
    SCORES,
    SENTIMENT_MODEL,
    mark_partition,
    partition_date,
)

from tasks import jobs
from tasks.score.batch import NoChampionError
from tasks.settings import get_settings

log = logging.getLogger(__name__)


@dag(
    dag_id="score_posts",
    schedule=(CLEAN_POSTS | SENTIMENT_MODEL),
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["social-pulse", "score"],
    params={"date": Param(None, type=["null", "string"], format="date", description=DATE_PARAM_DOC)},
    doc_md=__doc__,
)
def score_posts():
    @task
    def resolve_date() -> str:
        """Pick the partition date this run works on."""
        return partition_date(get_current_context())

    @task
    def promote() -> dict:
        """Run the promotion gate on the newest sentiment model version."""
        decision = jobs.promote_sentiment()
        log.info("promotion decision: %s", decision)
        return decision

    @task(outlets=[SCORES])
    def score(day: str, decision: dict) -> dict:
        """Score the day's clean posts with the champion."""
        try:
            result = jobs.score_sentiment(day)
        except NoChampionError as error:
            raise AirflowSkipException(str(error)) from error
        mark_partition(get_current_context(), SCORES, day, version=result["model_version"])
        return result

    @task
    def index_posts(day: str) -> dict:
        """Embed the day's clean posts and store their FAISS index for `pulse search`."""
        from tasks.retrieve.commands import build_index

        return build_index(day, get_settings())

    day = resolve_date()
    score(day, promote())
    index_posts(day)


score_posts()

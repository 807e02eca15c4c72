"""
### Score posts

Runs when a day's `clean_posts` are published and when a new sentiment model version is
registered:

1. **promote_{task}**, one per task in `score.tasks` plus `retrieval`: the newest
   version of the task's model becomes its `champion` alias only if its main metric
   (macro-F1, span F1 or recall@10) reaches the floor in `registry` and is no worse than the
   current champion's on the candidate's frozen evaluation set. The decision and its
   reasons are written onto the model version.
2. **index_posts**: embed the day's clean posts with the retrieval champion (the base
   model while there is none) into a FAISS index under `embeddings`, for `pulse search`.
3. **score**: one `scores` row per clean post with every champion's output: sentiment
   label and probabilities, other classifiers' labels, entity spans, and the post's
   position in the day's embedding index, with the model versions used. Skipped, not
   failed, while no task has a champion.
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

    def promote(task_name: str):
        @task(task_id=f"promote_{task_name}")
        def gate() -> dict:
            """Run the promotion gate on the newest version of this task's model."""
            decision = jobs.promote(task_name)
            log.info("promotion decision: %s", decision)
            return decision

        return gate()

    @task(outlets=[SCORES])
    def score(day: str) -> dict:
        """Score the day's clean posts with every task's champion."""
        try:
            result = jobs.score_posts(day)
        except NoChampionError as error:
            raise AirflowSkipException(str(error)) from error
        mark_partition(get_current_context(), SCORES, day, models=result["models"])
        return result

    @task
    def index_posts(day: str) -> dict:
        """Embed the day's clean posts and store their FAISS index for `pulse search`."""
        from tasks.retrieve.commands import build_index

        return build_index(day, get_settings())

    day = resolve_date()
    gates = {name: promote(name) for name in jobs.promotion_tasks()}
    indexed = index_posts(day)
    gates["retrieval"] >> indexed
    scored = score(day)
    [*gates.values(), indexed] >> scored


score_posts()

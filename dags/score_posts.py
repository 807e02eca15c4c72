"""
### Score posts

Runs when a day's `clean_posts` are published and when a new sentiment model version is
registered. One task group per model (each task in `score.tasks`, plus `retrieval`):

1. **validate**: the newest version of the model (the candidate) is checked on its own
   frozen evaluation set: main metric (macro-F1, span F1 or recall@10) at least the floor
   in `registry`, no regression against the champion measured on the same set, no class
   or span type more than `registry.class_tolerance` below the champion, and a passing
   data-quality result for its training data. A pass sets the `challenger` alias.
2. **deploy**: moves `champion` to the challenger. *Skipped* (not failed) when the
   candidate was rejected or there is nothing new: the reasons are in the task log and on
   the model version in MLflow (tags and description).

Then **index_posts** embeds the day's clean posts with the retrieval champion (the base
model while there is none) into a FAISS index under `embeddings`, for `pulse search`.
**plan_scoring** fixes the champion versions and splits the day into shards of
`score.shard_size` posts; one mapped **score_shard** task scores each shard; **score** joins
them into one `scores` row per clean post with every champion's output: sentiment label and
probabilities, other classifiers' labels, entity spans, and the post's position in the
day's index, with the model versions used. Scoring is skipped, not failed, while no task
has a champion. `pulse rollback TASK --reason ...` undoes a deployment.

Last, **report** writes the day's HTML report with plots to `reports/date=D/` and logs it to
the MLflow experiment `report.experiment`: volume, sentiment share, top entities,
representative posts, data quality, model versions and drift. It runs when scoring was
skipped too, so a day without a champion still gets a report of its data.
"""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import Param, TaskGroup, TriggerRule, dag, get_current_context, task
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

    def promotion(task_name: str):
        with TaskGroup(group_id=f"promote_{task_name}",
                       tooltip=f"validate and deploy the newest {task_name} model") as group:

            @task(task_id="validate")
            def validate() -> dict:
                """Check the newest version against the gate; a pass sets `challenger`."""
                decision = jobs.validate_candidate(task_name)
                log.info("%s v%s: %s", decision["model"], decision["candidate"],
                         "; ".join(decision["reasons"]))
                return decision

            @task(task_id="deploy")
            def deploy(decision: dict) -> dict:
                """Move `champion` to the challenger; skip when there is none."""
                if decision["status"] == "rejected":
                    raise AirflowSkipException(
                        f"{decision['model']} v{decision['candidate']} rejected: "
                        + "; ".join(decision["reasons"]))
                deployed = jobs.deploy_candidate(task_name)
                if not deployed["promoted"]:
                    raise AirflowSkipException("; ".join(deployed["reasons"] + decision["reasons"]))
                log.info("deployed: %s", "; ".join(deployed["reasons"]))
                return deployed

            deploy(validate())
        return group

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def plan_scoring(day: str) -> dict:
        """Fix the champion versions and split the day into shards of `score.shard_size`."""
        try:
            return jobs.plan_scoring(day)
        except NoChampionError as error:
            raise AirflowSkipException(str(error)) from error

    @task
    def shards(plan: dict) -> list[int]:
        """List the shard numbers, one mapped `score_shard` task each."""
        return list(range(plan["shards"]))

    # A mapped task does not take its docstring as documentation: give it explicitly.
    @task(doc_md="Score one shard of the day's clean posts with every planned champion.")
    def score_shard(day: str, plan: dict, shard: int) -> dict:
        """Score one shard of the day's clean posts with every planned champion."""
        return jobs.score_shard(day, plan, shard)

    @task(outlets=[SCORES])
    def score(day: str, plan: dict, scored: list[dict]) -> dict:
        """Join the shards into the day's scores, with index positions; validate and write."""
        result = jobs.merge_scores(day, plan)
        mark_partition(get_current_context(), SCORES, day, models=result["models"])
        return result

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def index_posts(day: str) -> dict:
        """Embed the day's clean posts and store their FAISS index for `pulse search`."""
        from tasks.retrieve.commands import build_index

        return build_index(day, get_settings())

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def report(day: str) -> dict:
        """Build the day's HTML report with drift checks, store it and log it to MLflow."""
        return jobs.daily_report(day)

    day = resolve_date()
    gates = {name: promotion(name) for name in jobs.promotion_tasks()}
    indexed = index_posts(day)
    gates["retrieval"] >> indexed
    plan = plan_scoring(day)
    [*gates.values(), indexed] >> plan
    scored = score_shard.partial(day=day, plan=plan).expand(shard=shards(plan))
    merged = score(day, plan, scored)
    merged >> report(day)


score_posts()

"""
### Collect posts

Daily collection of social-media posts into date-partitioned datasets:

1. **collect_raw**: fetch the day's posts from every source in `collect.source` (the
   built-in sample, JSONL/CSV/Parquet files in a folder or an S3 prefix, or the Mastodon,
   Bluesky, Reddit and X APIs) into `raw_posts`.
2. **validate_raw**: run the `raw_posts` Great Expectations suite; records that fail a
   critical expectation go to `quarantine` with the line, the field and the fix.
3. **clean**: normalise text, mask links, handles, e-mail addresses and phone numbers,
   and move duplicates to `duplicates`; the `clean_posts` suite checks the result.
4. **write_manifest**: check that collected = clean + duplicates + quarantined and
   publish the `clean_posts` asset, which triggers annotation and scoring.

Rerunning a date replaces that date's partitions.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task
from pulse_airflow import (
    CLEAN_POSTS,
    DATE_PARAM_DOC,
    export_platform_tokens,
    mark_partition,
    partition_date,
)

from tasks import jobs


@dag(
    dag_id="collect_posts",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["social-pulse", "collect"],
    params={
        "date": Param(None, type=["null", "string"], format="date", description=DATE_PARAM_DOC),
        "source": Param(None, type=["null", "string"],
                        description="Override collect.source for this run: 'sample' or a path."),
    },
    doc_md=__doc__,
)
def collect_posts():
    @task
    def resolve_date() -> str:
        """Pick the partition date this run works on."""
        return partition_date(get_current_context())

    # One paragraph on purpose: Python 3.11 keeps a docstring's indentation, Airflow 3.3 uses the
    # docstring as doc_md unchanged, and Markdown shows an indented paragraph after a blank
    # line as a code block.
    @task
    def collect_raw(day: str) -> dict:
        """Fetch the day's posts from the configured sources into `raw_posts`. Platform API
        tokens come from environment variables, or from the Airflow connections `pulse_x`,
        `pulse_mastodon`, `pulse_reddit` and `pulse_bluesky`.
        """
        export_platform_tokens()
        return jobs.collect_raw(day, get_current_context()["params"]["source"])

    @task
    def validate_raw(day: str, collected: dict) -> dict:
        """Validate with the `raw_posts` suite and quarantine failing records."""
        return jobs.validate_raw(day)

    @task
    def clean(day: str, validated: dict) -> dict:
        """Normalise, mask and de-duplicate the valid posts."""
        return jobs.clean(day)

    @task(outlets=[CLEAN_POSTS])
    def write_manifest(day: str, cleaned: dict) -> dict:
        """Check the counts add up, store the manifest and publish `clean_posts`."""
        manifest = jobs.write_manifest(day, get_current_context()["params"]["source"])
        mark_partition(get_current_context(), CLEAN_POSTS, day, clean=manifest["clean"])
        return manifest

    day = resolve_date()
    collected = collect_raw(day)
    validated = validate_raw(day, collected)
    cleaned = clean(day, validated)
    write_manifest(day, cleaned)


collect_posts()

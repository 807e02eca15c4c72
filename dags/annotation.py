"""
### Annotation

Runs when a day's `clean_posts` are published:

1. **export_tasks**: write a sample of the day's clean posts (masked text only) as a
   Label Studio import file, with a matching labeling config, under `annotation_tasks`.
2. **simulate_annotator**: only when the `simulate_annotator` param is true (the demo),
   complete the sample's tasks with its known labels and write a Label Studio export to the inbox.
3. **import_labels**: import finished exports from the label inbox (Label Studio JSON, or
   JSONL/CSV with `text` and `label`), validate them with the `labels` suite and write the
   day's `labels` partition.
4. **publish_labels**: publish the `labels` asset, which triggers training, when new
   labels arrived; otherwise it is skipped.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from pulse_airflow import CLEAN_POSTS, DATE_PARAM_DOC, LABELS, mark_partition, partition_date

from tasks import jobs


@dag(
    dag_id="annotation",
    schedule=[CLEAN_POSTS],
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["social-pulse", "annotation"],
    params={
        "date": Param(None, type=["null", "string"], format="date", description=DATE_PARAM_DOC),
        "simulate_annotator": Param(False, type="boolean",
                                    description="Complete exported sample tasks with their known labels (demo only)."),
    },
    doc_md=__doc__,
)
def annotation():
    @task
    def resolve_date() -> str:
        """Pick the partition date this run works on."""
        return partition_date(get_current_context())

    @task
    def export_tasks(day: str) -> dict:
        """Export a sample of the day's clean posts for Label Studio."""
        return jobs.export_annotations(day)

    @task
    def simulate_annotator(day: str, exported: dict) -> dict:
        """Complete the exported tasks with the sample's labels; skipped unless asked for."""
        if not get_current_context()["params"]["simulate_annotator"]:
            raise AirflowSkipException("simulate_annotator is false: waiting for real annotators")
        return jobs.simulate_annotator(day)

    @task(trigger_rule="none_failed")
    def import_labels(day: str) -> dict:
        """Import finished label exports from the inbox into the day's `labels` partition."""
        return jobs.import_labels(day)

    @task(outlets=[LABELS])
    def publish_labels(day: str, imported: dict) -> None:
        """Publish the `labels` asset when this run imported labels."""
        if not imported["files"]:
            raise AirflowSkipException("no new label files in the inbox")
        mark_partition(get_current_context(), LABELS, day, labels=imported["labels"])

    day = resolve_date()
    exported = export_tasks(day)
    imported = import_labels(day)
    simulate_annotator(day, exported) >> imported
    publish_labels(day, imported)


annotation()

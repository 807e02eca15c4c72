"""
### Annotation

Runs when a day's `clean_posts` are published:

1. **export_tasks**: write a sample of the day's clean posts under `annotation_tasks`, in
   each format of `annotation.export_formats` (or the `export_formats` param):
   `label_studio` (JSON tasks and a labeling config), `doccano` (JSONL) and `conll`
   (entities only). The text is masked again before it is written. When a task's
   registered model has a `champion`, its predictions are included as pre-annotations.
2. **simulate_annotator**: only when the `simulate_annotator` param is true (the demo),
   complete the sample's sentiment tasks with their known labels and write a Label Studio
   export to the inbox.
3. **import_labels**: import finished exports from the label inbox (Label Studio JSON,
   doccano JSONL or ZIP, CoNLL, or JSONL/CSV with `text` and `label`) as the day's batch.
   Several annotators per post are resolved by majority into `labels` and
   `entity_labels`; ties go to `labels_review`, failing rows to `labels_quarantine`, and
   the batch's agreement report (Cohen's or Fleiss' kappa) is stored beside its labels.
4. **pseudo_label**: when `train.use_pseudo_labels` is set, store the sentiment
   champion's predictions above `annotation.pseudo_label_threshold` on the day's unlabeled
   posts in `pseudo_labels`, apart from the human labels; otherwise it is skipped.
5. **publish_labels**: publish the `labels` asset, which triggers training, when new
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
        "export_formats": Param(None, type=["null", "array"],
                                items={"type": "string",
                                       "enum": ["label_studio", "doccano", "conll"]},
                                description="Formats to export ('label_studio', 'doccano', "
                                "'conll'); empty means annotation.export_formats."),
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
        """Export a sample of the day's clean posts as annotation tasks."""
        formats = get_current_context()["params"]["export_formats"]
        return jobs.export_annotations(day, formats=formats)

    @task
    def simulate_annotator(day: str, exported: dict) -> dict:
        """Complete the exported tasks with the sample's labels; skipped unless asked for."""
        if not get_current_context()["params"]["simulate_annotator"]:
            raise AirflowSkipException("simulate_annotator is false: waiting for real annotators")
        return jobs.simulate_annotator(day)

    @task(trigger_rule="none_failed")
    def import_labels(day: str) -> dict:
        """Import finished label exports from the inbox as the day's batch of labels."""
        return jobs.import_labels(day)

    @task
    def pseudo_label(day: str, imported: dict) -> dict:
        """Store the champion's confident predictions on unlabeled posts as pseudo labels."""
        result = jobs.pseudo_label(day)
        if "skipped" in result:
            raise AirflowSkipException(result["skipped"])
        return result

    # Runs after pseudo_label, so training reads its output, and also when it was skipped.
    @task(outlets=[LABELS], trigger_rule="none_failed")
    def publish_labels(day: str, imported: dict) -> None:
        """Publish the `labels` asset when this run imported labels."""
        if not imported["files"]:
            raise AirflowSkipException("no new label files in the inbox")
        mark_partition(get_current_context(), LABELS, day, labels=imported["labels"])

    day = resolve_date()
    exported = export_tasks(day)
    imported = import_labels(day)
    simulate_annotator(day, exported) >> imported
    pseudo_label(day, imported) >> publish_labels(day, imported)


annotation()

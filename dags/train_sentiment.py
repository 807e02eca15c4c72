"""
### Train sentiment

Runs when new labels are published. Fine-tunes the base encoder (the bundled
all-MiniLM-L6-v2 unless `train.base_model` is set) for negative / neutral / positive with
the Hugging Face Trainer on every label imported so far. Validation is a fixed split by a
hash of the text. Accuracy, macro precision/recall/F1, per-class scores and a confusion
matrix go to MLflow, and the model is registered as a new version of
`registry.sentiment_model`, tagged with its label partitions and code version.

Publishes the `sentiment_model` asset, which triggers the promotion gate in `score_posts`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from pulse_airflow import DATE_PARAM_DOC, LABELS, SENTIMENT_MODEL, mark_partition, partition_date

from tasks import jobs


@dag(
    dag_id="train_sentiment",
    schedule=[LABELS],
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["social-pulse", "train"],
    params={"date": Param(None, type=["null", "string"], format="date", description=DATE_PARAM_DOC)},
    doc_md=__doc__,
)
def train_sentiment():
    @task
    def resolve_date() -> str:
        """Pick the partition date this run works on."""
        return partition_date(get_current_context())

    @task(outlets=[SENTIMENT_MODEL], queue="training")
    def train(day: str) -> dict:
        """Train on all labels up to the date, evaluate, log to MLflow and register."""
        result = jobs.train_sentiment(day)
        mark_partition(get_current_context(), SENTIMENT_MODEL, day, version=result["version"])
        return result

    train(resolve_date())


train_sentiment()

"""Airflow-only glue shared by the Social Pulse DAGs: assets and the partition date.

Airflow puts the plugins folder on ``sys.path``, so DAG files import this as
``pulse_airflow``. Domain logic stays in ``tasks``, so nothing here handles posts.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import Asset

log = logging.getLogger(__name__)

CLEAN_POSTS = Asset(name="social_pulse.clean_posts", uri="social-pulse://datasets/clean_posts")
LABELS = Asset(name="social_pulse.labels", uri="social-pulse://datasets/labels")
SENTIMENT_MODEL = Asset(name="social_pulse.sentiment_model",
                        uri="social-pulse://models/sentiment")
SCORES = Asset(name="social_pulse.scores", uri="social-pulse://datasets/scores")

DATE_PARAM_DOC = (
    "Partition date (YYYY-MM-DD) to process. Leave empty to use the date of the asset "
    "event that triggered the run, else the start of the run's data interval."
)


def partition_date(context: dict[str, Any]) -> str:
    """Return the partition date a run works on, as YYYY-MM-DD.

    In order: the ``date`` param, the newest ``date`` in the triggering asset events'
    extra, the start of the data interval, and the run's ``run_after`` time.
    """
    requested = (context.get("params") or {}).get("date")
    if requested:
        return dt.date.fromisoformat(str(requested)).isoformat()

    event_dates = [
        str(event.extra["date"])
        for events in (context.get("triggering_asset_events") or {}).values()
        for event in events
        if event.extra and event.extra.get("date")
    ]
    if event_dates:
        return max(event_dates)

    interval_start = context.get("data_interval_start")
    if interval_start is not None:
        return interval_start.date().isoformat()
    return context["dag_run"].run_after.date().isoformat()


def mark_partition(context: dict[str, Any], asset: Asset, day: str, **extra: Any) -> None:
    """Attach the partition date (and ``extra``) to the asset event this task emits."""
    context["outlet_events"][asset].extra = {"date": day, **extra}


# Environment variable read by each platform API source, and the Airflow connection whose
# password supplies it when the variable is not set.
TOKEN_CONNECTIONS = {
    "PULSE_X_BEARER_TOKEN": "pulse_x",
    "PULSE_MASTODON_TOKEN": "pulse_mastodon",
    "PULSE_REDDIT_TOKEN": "pulse_reddit",
    "PULSE_BLUESKY_TOKEN": "pulse_bluesky",
}


def export_platform_tokens() -> list[str]:
    """Copy API tokens from Airflow connections into this task's environment.

    A variable that is already set wins. Returns the connection ids used, never the tokens.
    """
    import os

    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    used = []
    for variable, conn_id in TOKEN_CONNECTIONS.items():
        if os.environ.get(variable):
            continue
        try:
            connection = Connection.get(conn_id)
        except AirflowNotFoundException:
            continue
        if connection.password:
            os.environ[variable] = connection.password
            used.append(conn_id)
    if used:
        log.info("API tokens taken from Airflow connections %s", used)
    return used

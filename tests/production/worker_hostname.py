"""Task-instance hostname for Celery workers that share one machine in the tests.

Airflow stores the result of ``[core] hostname_callable`` as each task instance's
``hostname``, and every worker on one machine would report the same FQDN. The test gives each
worker its own PULSE_TEST_WORKER_NAME and points ``hostname_callable`` here, so the REST API
shows which worker ran each task.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """Return this worker's test name, or the FQDN outside the test's workers."""
    return os.environ.get("PULSE_TEST_WORKER_NAME") or socket.getfqdn()

"""Create the S3 buckets and the Airflow admin password file for docker/compose.yaml.

The airflow-init service runs this once per ``docker compose up``, after ``airflow db
migrate``. Both steps are idempotent: existing buckets are kept, and the password file is
rewritten with the password from docker/.env, so a changed password applies on the next start.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger("prepare")

# Settings in tasks/settings.py whose values may be s3:// URIs that need a bucket.
BUCKET_URI_VARIABLES = ("PULSE_STORE_URI", "PULSE_MLFLOW_ARTIFACT_ROOT")
PASSWORDS_FILE_VARIABLE = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
CONNECT_ATTEMPTS = 5
RETRY_WAIT_S = 3.0


def bucket_names(uris: Iterable[str]) -> list[str]:
    """Return the sorted, distinct bucket names of the ``s3://`` URIs; other URIs are skipped."""
    names = set()
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise ValueError(f"invalid S3 URI {uri!r}: use s3://bucket/prefix")
            names.add(parsed.netloc)
    return sorted(names)


def create_buckets(client: Any, names: Iterable[str]) -> list[str]:
    """Create each bucket that does not exist yet; return the names created."""
    from botocore.exceptions import ClientError

    created = []
    for name in names:
        try:
            client.head_bucket(Bucket=name)
            log.info("bucket %s exists", name)
            continue
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
        client.create_bucket(Bucket=name)
        log.info("bucket %s created", name)
        created.append(name)
    return created


def create_buckets_with_retry(client: Any, names: list[str]) -> list[str]:
    """Run create_buckets, retrying while the S3 endpoint refuses connections."""
    from botocore.exceptions import EndpointConnectionError

    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return create_buckets(client, names)
        except EndpointConnectionError as error:
            if attempt == CONNECT_ATTEMPTS:
                raise
            log.warning("S3 endpoint not reachable (attempt %d of %d): %s; retrying in %.0f s",
                        attempt, CONNECT_ATTEMPTS, error, RETRY_WAIT_S)
            time.sleep(RETRY_WAIT_S)
    return []


def write_password_file(path: Path, user: str, password: str) -> None:
    """Write the simple auth manager's password file ({user: password}), readable by owner only."""
    if not user or not password:
        raise ValueError("AIRFLOW_ADMIN_USER and AIRFLOW_ADMIN_PASSWORD must both be set")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({user: password}) + "\n")
    os.replace(temporary, path)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    environment = os.environ
    names = bucket_names(environment.get(name, "") for name in BUCKET_URI_VARIABLES)
    if names:
        import boto3

        endpoint = environment.get("PULSE_S3_ENDPOINT_URL") or None
        log.info("preparing buckets %s at %s", names, endpoint or "AWS S3")
        create_buckets_with_retry(boto3.client("s3", endpoint_url=endpoint), names)
    else:
        log.info("no s3:// URI in %s: no bucket to create", ", ".join(BUCKET_URI_VARIABLES))

    passwords_file = environment.get(PASSWORDS_FILE_VARIABLE)
    if not passwords_file:
        log.error("%s is not set: cannot write the admin password", PASSWORDS_FILE_VARIABLE)
        return 1
    try:
        write_password_file(Path(passwords_file), environment.get("AIRFLOW_ADMIN_USER", ""),
                            environment.get("AIRFLOW_ADMIN_PASSWORD", ""))
    except ValueError as error:
        log.error("%s: set them in docker/.env", error)
        return 1
    log.info("admin password for %s written to %s", environment.get("AIRFLOW_ADMIN_USER"),
             passwords_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# One-shot set-up run by the airflow-init service of docker/compose.yaml: the Airflow metadata
# schema, the S3 buckets and the Airflow admin password. Every step is safe to rerun.
set -euo pipefail

echo "airflow-init: migrating the Airflow metadata database"
airflow db migrate

echo "airflow-init: creating buckets and writing the admin password file"
exec python "$(dirname "$0")/prepare.py"

#!/usr/bin/env bash
# Create the Airflow and MLflow roles and databases. The postgres image runs the scripts in
# /docker-entrypoint-initdb.d once, when its data volume is empty, with POSTGRES_USER and
# POSTGRES_DB set. docker/compose.yaml also passes AIRFLOW_DB_PASSWORD and MLFLOW_DB_PASSWORD.
# To rerun it, remove the volume (docker compose down --volumes) or run it with psql by hand.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set}"

# psql quotes :'name' variables as SQL literals, so the passwords need no escaping here.
# Each database is owned by its role, and other roles may not connect to it.
psql --no-psqlrc --set ON_ERROR_STOP=1 \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  --set airflow_password="$AIRFLOW_DB_PASSWORD" \
  --set mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE airflow LOGIN PASSWORD %L', :'airflow_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'airflow') \gexec
SELECT format('CREATE ROLE mlflow LOGIN PASSWORD %L', :'mlflow_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mlflow') \gexec
SELECT 'CREATE DATABASE airflow OWNER airflow'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'airflow') \gexec
SELECT 'CREATE DATABASE mlflow OWNER mlflow'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow') \gexec
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
SQL
echo "init-databases: roles and databases airflow and mlflow are ready"

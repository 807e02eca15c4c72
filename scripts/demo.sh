#!/usr/bin/env bash
# Install, then run every DAG for one date on the embedded defaults (`pulse demo`).
# Arguments are passed to `pulse demo`, e.g. --date 2026-12-04 or --labels F --posts F.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/pulse demo "$@"

#!/usr/bin/env bash
# Install, then run the test suite. Arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m pytest "$@"

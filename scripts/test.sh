#!/usr/bin/env bash
# Install, then run the test suite. Arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# Without the browser the tests in tests/ui skip, or fail when CI is set.
bash scripts/install_browser.sh || echo "test: continuing without chromium" >&2
exec .venv/bin/python -m pytest "$@"

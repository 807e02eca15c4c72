#!/usr/bin/env bash
# Install Social Pulse and its pinned dependencies into .venv inside the project folder.
# Safe to rerun: it does nothing when pyproject.toml and constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: Python 3.11 is required (found: ${python:-none}); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

stamp=.venv/.install-stamp
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "install: .venv is up to date"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  echo "install: creating .venv with $python"
  "$python" -m venv .venv
fi
echo "install: installing dependencies (a few minutes on a new machine)"
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
# constraints.txt pins every package to versions tested together; torch 2.13.0 is the CPU build.
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
echo "$wanted" > "$stamp"
versions=$(.venv/bin/python - <<'PY'
from importlib.metadata import version
names = ["apache-airflow", "mlflow", "torch", "transformers", "great-expectations"]
print(", ".join(f"{name} {version(name)}" for name in names))
PY
)
echo "install: done ($versions)"

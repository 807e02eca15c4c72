#!/usr/bin/env bash
# Install Social Pulse into the Python environment that PYTHON belongs to.
#
# docker/Dockerfile runs this script, and so does the image install check
# (scripts/check_docker.py --install), so the image and the check run the same pip commands.
#
# Usage: install-python-deps.sh deps|project PROJECT_DIR
#   deps     torch, the pinned dependencies and the image-only packages, without the project
#   project  the project itself, editable and without dependency resolution
#
# Environment:
#   PYTHON            interpreter whose pip installs (default: python)
#   VARIANT           cpu (default) or cuda
#   TORCH_CPU_INDEX   extra index for the CPU torch wheel; empty: only pip's configured indexes
#   TORCH_CUDA_INDEX  extra index for a CUDA torch wheel; empty: PyPI's torch, a CUDA build on
#                     Linux x86_64
set -euo pipefail

step=${1:?usage: install-python-deps.sh deps|project PROJECT_DIR}
project=${2:?usage: install-python-deps.sh deps|project PROJECT_DIR}
python=${PYTHON:-python}
variant=${VARIANT:-cpu}

if [ "$step" = project ]; then
  # Editable, so that PROJECT_ROOT in tasks/settings.py is the project folder, where dags/,
  # plugins/ and expectations/ are.
  "$python" -m pip install --no-deps --editable "$project"
  exit 0
fi
if [ "$step" != deps ]; then
  echo "error: unknown step '$step': use deps or project" >&2
  exit 2
fi

constraints="$project/constraints.txt"
image_constraints="$project/docker/constraints-image.txt"
# constraints.txt pins the CPU build of torch as torch==X+cpu.
torch_version=$(sed -n 's/^torch==\([^+]*\).*/\1/p' "$constraints")
if [ -z "$torch_version" ]; then
  echo "error: no torch pin found in $constraints" >&2
  exit 1
fi

case "$variant" in
  cpu)
    torch_requirement="torch==$torch_version+cpu"
    torch_index=${TORCH_CPU_INDEX:-}
    ;;
  cuda)
    torch_requirement="torch==$torch_version"
    torch_index=${TORCH_CUDA_INDEX:-}
    ;;
  *)
    echo "error: invalid VARIANT '$variant': use cpu or cuda" >&2
    exit 2
    ;;
esac

# The CUDA build must not meet the +cpu pin, so that variant installs against a copy of
# constraints.txt without the torch line.
active_constraints=$(mktemp)
trap 'rm -f "$active_constraints"' EXIT
if [ "$variant" = cuda ]; then
  grep -v '^torch==' "$constraints" > "$active_constraints"
else
  cp "$constraints" "$active_constraints"
fi

index_options=()
if [ -n "$torch_index" ]; then
  index_options=(--extra-index-url "$torch_index")
fi

"$python" -m pip install --upgrade pip setuptools wheel

# torch alone first, so the torch index is consulted for torch only.
echo "install-python-deps: $torch_requirement (${variant}, index: ${torch_index:-pip default})"
"$python" -m pip install -c "$active_constraints" "${index_options[@]}" "$torch_requirement"

# Every dependency from pyproject.toml, plus what the containers need beyond the local
# install: the Celery and Kubernetes executors and the PostgreSQL drivers. The project itself
# comes in the 'project' step, after its sources are copied.
requirements=$(mktemp)
trap 'rm -f "$active_constraints" "$requirements"' EXIT
"$python" - "$project/pyproject.toml" > "$requirements" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    project = tomllib.load(handle)["project"]
for requirement in project["dependencies"]:
    print(requirement)
PY
airflow_version=$(sed -n 's/^apache-airflow==\(.*\)$/\1/p' "$constraints")
echo "apache-airflow[celery,cncf-kubernetes,postgres]==$airflow_version" >> "$requirements"

echo "install-python-deps: dependencies of $(grep -c . "$requirements") requirements"
"$python" -m pip install -c "$active_constraints" -c "$image_constraints" -r "$requirements"
"$python" -m pip check

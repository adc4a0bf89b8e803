#!/usr/bin/env bash
# The test command: install what is missing, start the native infrastructure, run lint, type checks
# and the whole test suite (unit and integration against the real Kafka, PostgreSQL, Prometheus).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k ingest`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

ensure_python_env
ensure_debian_tools
bash scripts/infra.sh up
load_infra_env

echo "== ruff / mypy / import-linter"
ruff check .
ruff format --check .
mypy
lint-imports

echo "== pytest"
python -m pytest "$@"

#!/usr/bin/env bash
# Install intjax with its test extra into .venv, then run the test suite (slow tests skipped),
# with a line per test file and the slowest tests at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# two worker processes (INTJAX_TEST_WORKERS to change; 0 runs in this process)
.venv/bin/python -m pytest -q -n "${INTJAX_TEST_WORKERS:-2}" --durations=15 "$@"

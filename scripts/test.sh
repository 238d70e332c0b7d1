#!/usr/bin/env bash
# Install intjax with its test extra into .venv, then run the test suite (slow tests skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
.venv/bin/python -m pytest -q --durations=15 "$@"

#!/usr/bin/env bash
# Create .venv (if missing) and install intjax into it, with optional extras.
# Usage: bash scripts/install.sh            # runtime only
#        bash scripts/install.sh test       # + pytest, torch (CPU), transformers
#        bash scripts/install.sh test,bench # + TransformerLens for benchmarks/
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [[ -n "$extras" ]]; then
  # The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
  python -m pip install -q "torch==${INTJAX_TORCH_VERSION:-2.13.0}"
  python -m pip install -q -e ".[$extras]"
else
  python -m pip install -q -e .
fi

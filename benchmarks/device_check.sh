#!/usr/bin/env bash
# Device check for a GPU/TPU machine, in under 8 minutes (each step has a time limit):
#   (a) intjax's GPT-2 against HuggingFace's (tests/test_parity_hf.py, matmuls at highest precision);
#   (b) the NIE and interactions benchmarks: the intjax command against the batched torch baseline
#       (and TransformerLens when it is importable), torch on cuda when it sees a GPU;
#   (c) the 10,440-subset sweep: every head alone and every pair of the 144 heads of the
#       GPT-2-small-shaped random checkpoint, 16 prompts x 15 tokens, through `intjax patch
#       --order 2 --components heads` (wall time) and through the library (wall time, peak device memory);
#   (d) `intjax ioi` with its defaults on that checkpoint with the shipped IOI tokenizer beside it
#       (the plan, then each stage's time; the values mean nothing on random weights).
#
# Usage, from anywhere (it runs in the repository root):
#   bash benchmarks/device_check.sh                      # the full check
#   DEVICE_CHECK_SMALL=1 bash benchmarks/device_check.sh # a smoke run at tiny sizes (a CPU will do)
# Everything printed also goes to $OUT/device_check.txt when $OUT is set. A step that fails or
# runs out of time is reported and the others still run; the exit status is 1 if any failed.
# Time limits per step (seconds) can be set with LIMIT_PARITY, LIMIT_NIE, LIMIT_INT, LIMIT_SWEEP, LIMIT_IOI;
# DEVICE_CHECK_STEPS (default "a b c d") picks the steps, e.g. DEVICE_CHECK_STEPS=c for the sweep alone.
# Python: INTJAX_PYTHON if set, else .venv/bin/python, else a python3 that already has jax, equinox,
# torch and transformers (a device image with no package registry: intjax then runs from this checkout
# through `python -m intjax`), else .venv is installed (bash scripts/install.sh test,bench).
set -euo pipefail
cd "$(dirname "$0")/.."
# the intjax command and the torch baseline share the GPU: neither may take 75% of it up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false

if [[ "${DEVICE_CHECK_SMALL:-0}" == 1 ]]; then
  PROMPTS=2 TOKENS=6 POOL=4 TL_PAIRS=2
  SWEEP_SPEC=$(echo L11H{0..11} | tr ' ' ',')  # 12 heads: 1 + 12 + 66 subsets
  IOI_ARGS=(--model ioi-small --smoke)
  : "${LIMIT_PARITY:=180}" "${LIMIT_NIE:=240}" "${LIMIT_INT:=240}" "${LIMIT_SWEEP:=240}" "${LIMIT_IOI:=240}"
else
  PROMPTS=16 TOKENS=15 POOL=24 TL_PAIRS=24
  SWEEP_SPEC=heads  # 144 heads: 1 + 144 + 10,296 subsets
  IOI_ARGS=()  # the defaults, on the GPT-2-small-shaped folder made in main
  : "${LIMIT_PARITY:=60}" "${LIMIT_NIE:=120}" "${LIMIT_INT:=150}" "${LIMIT_SWEEP:=55}" "${LIMIT_IOI:=180}"
fi
FAILED=()

choose_python() {  # sets PY and INTJAX (the command as a user runs it)
  if [[ -n "${INTJAX_PYTHON:-}" ]] || { [[ ! -x .venv/bin/python ]] && python3 -c 'import jax, equinox, torch, transformers' 2>/dev/null; }; then
    PY=${INTJAX_PYTHON:-python3}
    local bin
    bin=$(mktemp -d)
    printf '#!/bin/sh\nexec "%s" -m intjax "$@"\n' "$(command -v "$PY")" >"$bin/intjax"
    chmod +x "$bin/intjax"
    export PATH="$bin:$PATH" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    INTJAX=$bin/intjax
    echo "python: $PY with intjax from this checkout (no install); the intjax command is $INTJAX"
  else
    if [[ ! -x .venv/bin/python ]]; then
      echo "no .venv: installing it (bash scripts/install.sh test,bench)"
      bash scripts/install.sh test,bench
    fi
    PY=.venv/bin/python
    INTJAX=.venv/bin/intjax
  fi
}

# (c2): the sweep as library calls; prints the first call's time and peak memory before timing a second call
SWEEP_LIBRARY_PY=$(cat <<'PYEOF'
import resource
import sys
import time

import jax

import intjax
from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.patching import build_problem, evaluate, parse_components, read_prompts
from intjax.runtime import enable_compilation_cache

enable_compilation_cache()  # as the intjax command does: the programs (c1) compiled
ckpt, data, spec = sys.argv[1:4]
t0 = time.perf_counter()
model, _ = intjax.load_model(ckpt, tokenizer=False)
prompts = read_prompts(data)
components = parse_components(spec, model.config)
masks = subset_masks(subsets_up_to(len(components), 2), len(components))
problem = build_problem(model, prompts, components, direction="denoising")
values = evaluate(problem, masks)
first = time.perf_counter() - t0
device = jax.devices()[0]
print(f"library: {masks.shape[0]} subsets x {len(prompts)} prompts = {values.size} patched runs on {device}")
print(f"library: load + build_problem + evaluate {first:.1f} s (first call)")
stats = device.memory_stats()
if stats and "peak_bytes_in_use" in stats:
    print(f"library: peak device memory {stats['peak_bytes_in_use'] / 2**30:.3f} GiB (peak_bytes_in_use; "
          f"bytes_limit {stats.get('bytes_limit', 0) / 2**30:.1f} GiB)")
else:
    print(f"library: peak device memory n/a (no memory_stats on {device.platform})")
print(f"library: peak RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
t0 = time.perf_counter()
evaluate(problem, masks)
again = time.perf_counter() - t0
print(f"library: evaluate again {again:.2f} s = {values.size / again:.0f} patched runs/s")
PYEOF
)

seconds_since() {  # seconds_since T0: seconds since T0 (from `date +%s.%N`), one decimal
  awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'
}

wanted() {  # wanted LETTER: whether DEVICE_CHECK_STEPS (default "a b c d") asks for step LETTER
  [[ " ${DEVICE_CHECK_STEPS:-a b c d} " == *" $1 "* ]]
}

step() {  # step NAME LIMIT CMD...: run CMD under a time limit, print its wall time and status; never stops the script
  local name=$1 limit=$2 t0 rc=0
  shift 2
  if ! wanted "${name:1:1}"; then  # NAME starts "(x)"
    echo "=== $name: skipped (DEVICE_CHECK_STEPS) ==="
    return 0
  fi
  echo
  echo "=== $name (limit $limit s) ==="
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  if [[ $rc == 124 || $rc == 137 ]]; then
    echo "=== $name: TIMED OUT after $(seconds_since "$t0") s ==="
    FAILED+=("$name (timed out)")
  elif [[ $rc != 0 ]]; then
    echo "=== $name: FAILED (exit $rc) after $(seconds_since "$t0") s ==="
    FAILED+=("$name (exit $rc)")
  else
    echo "=== $name: ok, $(seconds_since "$t0") s (spawn to exit) ==="
  fi
}

sweep_steps() {  # sweep_steps CKPT DATA: (c1) and (c2)
  local ckpt=$1 data=$2 sweep_cache sweep_out force
  sweep_cache=$(mktemp -d)
  sweep_out=$(mktemp -d)
  echo
  echo "(c) subsets of size <= 2 of --components $SWEEP_SPEC, ${PROMPTS} prompts x ${TOKENS} tokens, denoising;"
  echo "    c1 with an empty compilation cache, c2 (library) with the programs c1 cached"
  # the command asks for --force above a sweep size (200,000 patched runs when written; this one is
  # 10,441 x 16 = 167,056): pass it wherever the installed intjax knows it, so a lower limit cannot stop the check
  force=()
  if "$INTJAX" patch --help | grep -q -- "--force"; then
    force=(--force)
  fi
  step "(c1) subset sweep, intjax patch --order 2" "$LIMIT_SWEEP" \
    env INTJAX_COMPILATION_CACHE="$sweep_cache" "$INTJAX" patch --model "$ckpt" --data "$data" \
    --components "$SWEEP_SPEC" --order 2 --direction denoising --out "$sweep_out/run" --quiet ${force[@]+"${force[@]}"}
  if [[ -f "$sweep_out/run/summary.json" ]]; then
    "$PY" -c 'import json, sys; s = json.load(open(sys.argv[1])); print("c1 arrays:", {k: v["shape"] for k, v in s["arrays"].items()}); print("c1 timings (s):", {k: round(v, 1) for k, v in s["timings"].items()})' "$sweep_out/run/summary.json"
  fi
  step "(c2) subset sweep, library" "$LIMIT_SWEEP" \
    env INTJAX_COMPILATION_CACHE="$sweep_cache" "$PY" -u -c "$SWEEP_LIBRARY_PY" "$ckpt" "$data" "$SWEEP_SPEC"
  rm -rf "$sweep_cache" "$sweep_out"
}

ioi_step() {  # ioi_step CKPT: (d)
  local ckpt=$1 ioi_dir
  ioi_dir=$(mktemp -d)
  if ((${#IOI_ARGS[@]} == 0)); then  # GPT-2 small's shape with the shipped tokenizer, whose IOI prompts have GPT-2's lengths
    mkdir -p "$ioi_dir/model"
    ln -s "$(realpath "$ckpt")/config.json" "$(realpath "$ckpt")/model.safetensors" "$ioi_dir/model/"
    cp intjax/assets/ioi-small/tokenizer.json "$ioi_dir/model/"
    IOI_ARGS=(--model "$ioi_dir/model")
  fi
  echo
  echo "(d) intjax ioi ${IOI_ARGS[*]} (an empty compilation cache; progress lines show each stage's time)"
  step "(d) intjax ioi" "$LIMIT_IOI" env INTJAX_COMPILATION_CACHE="$ioi_dir/xla" "$INTJAX" ioi "${IOI_ARGS[@]}" --out "$ioi_dir/run"
  if [[ -f "$ioi_dir/run/summary.json" ]]; then
    "$PY" -c 'import json, sys; s = json.load(open(sys.argv[1])); print("d timings (s):", {k: round(v, 1) for k, v in s.get("timings", {}).items()})' "$ioi_dir/run/summary.json"
  fi
  rm -rf "$ioi_dir"
}

main() {  # every step, in order
  local t_start commit ckpt data bench_args
  t_start=$(date +%s.%N)
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
  if [[ -n $(git status --porcelain 2>/dev/null || true) ]]; then
    commit="$commit + uncommitted changes"
  fi
  echo "# intjax device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, DEVICE_CHECK_SMALL=${DEVICE_CHECK_SMALL:-0}"
  choose_python
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  fi
  "$PY" -c 'import jax, torch; print(f"jax {jax.__version__}: {jax.devices()}"); print(f"torch {torch.__version__}: cuda available: {torch.cuda.is_available()}")'
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "note: torch sees no GPU: the torch baseline (and TransformerLens) run on the CPU"
  fi
  bench_args=(--prompts "$PROMPTS" --tokens "$TOKENS")
  if ! "$PY" -c 'import transformer_lens' 2>/dev/null; then
    echo "note: TransformerLens is not importable: the benchmarks run with --skip-tl"
    bench_args+=(--skip-tl)
  fi
  echo "making the GPT-2-small-shaped random checkpoint and ${PROMPTS}x${TOKENS} prompts (cached in benchmarks/.cache)"
  read -r ckpt data < <("$PY" -c "
import sys; sys.path.insert(0, 'benchmarks')
from common import CACHE, gpt2_small_checkpoint, random_prompts
print(gpt2_small_checkpoint(), random_prompts(CACHE / 'prompts_${PROMPTS}x${TOKENS}.jsonl', ${PROMPTS}, ${TOKENS}))
")

  step "(a) HF parity tests" "$LIMIT_PARITY" \
    env JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q tests/test_parity_hf.py
  step "(b1) NIE benchmark" "$LIMIT_NIE" "$PY" -u benchmarks/nie_heads_vs_transformerlens.py "${bench_args[@]}"
  step "(b2) interactions benchmark" "$LIMIT_INT" "$PY" -u benchmarks/interactions_vs_transformerlens.py \
    "${bench_args[@]}" --pool "$POOL" --tl-pairs "$TL_PAIRS"

  if wanted c; then sweep_steps "$ckpt" "$data"; else echo "=== (c) subset sweep: skipped (DEVICE_CHECK_STEPS) ==="; fi
  if wanted d; then ioi_step "$ckpt"; else echo "=== (d) intjax ioi: skipped (DEVICE_CHECK_STEPS) ==="; fi

  echo
  echo "# device check done in $(seconds_since "$t_start") s"
  if ((${#FAILED[@]})); then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    return 1
  fi
  echo "all steps ok"
}

if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  main 2>&1 | tee "$OUT/device_check.txt"
else
  main
fi

"""`intjax --help` answers at once (no JAX import) and names every model family."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ("GPT-2", "Llama", "Qwen2", "Mistral", "GPT-NeoX")
PROBE = """
import sys, time
t0 = time.perf_counter()
from intjax.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert e.code == 0, e.code
heavy = sorted(m for m in ("jax", "numpy", "orbax", "intjax.loading") if m in sys.modules)
print("HEAVY", heavy, "SECONDS", time.perf_counter() - t0, file=sys.stderr)
"""


@pytest.mark.parametrize("command", [["--help"], ["patch", "--help"], ["ioi", "--help"]])
def test_help_imports_no_jax_and_names_every_family(command):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY [] SECONDS" in done.stderr, done.stderr  # jax alone took 2-5 s to import
    if command != ["patch", "--help"]:
        text = " ".join(done.stdout.split())
        assert all(family in text for family in FAMILIES), text


def test_package_description_names_every_family():
    description = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["description"]
    assert all(family in description for family in FAMILIES), description


def test_every_long_command_takes_quiet():
    """patch, theorems, ioi and demo print plans and stage lines; each can be silenced the same way."""
    from intjax.cli import build_parser

    parser = build_parser()
    for command in (["patch", "--model", "m", "--data", "d", "--components", "heads", "--out", "o"],
                    ["theorems", "--model", "m", "--data", "d", "--components", "heads", "--out", "o"],
                    ["ioi", "--model", "m", "--out", "o"], ["demo"]):
        assert parser.parse_args([*command, "--quiet"]).quiet, command

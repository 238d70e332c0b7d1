"""intjax's jaxtyping annotations checked at call time (beartype) on the main paths, in a fresh
process (the import hook must be installed before intjax is imported): `intjax patch` with NIE,
linear estimates and pairwise interactions on role-position, pattern, MLP and group components,
and `intjax theorems`. The whole suite runs under the same checks with
`INTJAX_TYPECHECK=on bash scripts/test.sh`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent.parent / "intjax" / "assets" / "ioi-small"

SCRIPT = textwrap.dedent("""
    import sys
    from jaxtyping import TypeCheckError, install_import_hook

    with install_import_hook("intjax", "typechecker.checked"):  # checks the modules imported in this block
        import jax.numpy as jnp
        import intjax
        import intjax.loading  # `import intjax` alone imports no JAX code (lazy): loading and model, as before
        import intjax.runs.patch, intjax.runs.theorems  # and the engine: problems, sweeps, estimands
        from intjax.cli import main

    model, data, out = sys.argv[1:4]
    assert main(["patch", "--model", model, "--data", data, "--components",
                 "L0H1@S2,L1H0PATTERN@END,L1MLP,g=L0H0+L1H2", "--order", "2", "--linear",
                 "--out", out + "/patch"]) == 0
    assert main(["theorems", "--model", model, "--data", data, "--components", "L0H1,L1H0",
                 "--order", "2", "--n-check", "2", "--out", out + "/theorems", "--quiet"]) == 0
    gpt2, _ = intjax.load_model(model)
    try:  # the checks are on: a wrongly typed call is refused
        gpt2.unembed(jnp.zeros((3,), jnp.int32))
    except TypeCheckError:
        print("typecheck active")
""")


def test_main_paths_pass_their_annotation_checks(tmp_path):
    rows = [
        {"clean": "When Mary and John went to the store, John gave a drink to",
         "corrupted": "When Mary and John went to the store, Mary gave a drink to",
         "target": " Mary", "foil": " John", "positions": {"S2": 10}},
        {"clean": "When Tom and Anna went to the park, Anna gave a ball to",
         "corrupted": "When Tom and Anna went to the park, Tom gave a ball to",
         "target": " Tom", "foil": " Anna", "positions": {"S2": 10}},
    ]
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(SHIPPED), str(data), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "typecheck active" in done.stdout
    assert (tmp_path / "patch" / "values.npz").exists() and (tmp_path / "theorems" / "theorems.json").exists()

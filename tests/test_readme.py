"""The README's Python examples run verbatim, offline, in order (one namespace, as a reader
pastes them), and the numbers they print are the library's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run_verbatim():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    cfg = namespace["model"].config
    assert namespace["acts"].z.shape == (cfg.n_layers, len(namespace["tokens"]), cfg.n_heads, cfg.d_head)
    np.testing.assert_allclose(namespace["batch_logits"][0], namespace["logits"], atol=1e-4)
    effects, problem = namespace["effects"], namespace["problem"]
    assert effects.shape == (8, cfg.n_layers * cfg.n_heads)
    # NIE of head 0 is f(alpha = e_0) - f(0), with f from the differentiable path
    f0 = np.asarray(problem(0 * namespace["alpha"]))
    np.testing.assert_allclose(effects[:, 0], np.asarray(problem(namespace["alpha"])) - f0, atol=1e-4)
    assert namespace["study"].faithfulness.shape == (2, 2)

"""scripts/train_ioi_model.py: a killed run resumes bit-identically; a failed run leaves --out alone.

Tiny settings (1 layer, d_model 32, 4 steps): what is tested is the bookkeeping, not the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--layers", "1", "--heads", "2", "--d-model", "32", "--steps", "4", "--batch", "8", "--ckpt-every", "2",
        "--log-every", "100", "--eval-prompts", "20", "--no-verify-hf", "--no-circuit", "--attn-dropout", "0.1",
        "--resid-dropout", "0.1", "--head-dropout", "0.5", "--induction-frac", "0.25", "--io-prob", "0.8",
        "--hold-out-objects"]


@pytest.fixture(scope="module")
def train():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train_ioi_model
    finally:
        sys.path.pop(0)

    def run(work: Path, out: Path, *extra: str) -> int:
        return train_ioi_model.main([*TINY, "--work-dir", str(work), "--out", str(out), *extra])

    return run


def _tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow  # 46 s of training steps: the suite is at its 10-minute limit; run with -m slow
def test_killed_run_resumes_bit_identically_and_failed_run_keeps_out(train, tmp_path):
    assert train(tmp_path / "a", tmp_path / "A", "--min-accuracy", "0") == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "A").iterdir()}
    assert "Dropout during training: attention weights 0.1" in before["README.md"].decode()
    # run b into the same --out, killed after step 2 (its checkpoint written), then the same
    # command again: it resumes; its held-out accuracy is below --min-accuracy, so --out is kept
    # as it was and the export waits in b/export
    args = (tmp_path / "b", tmp_path / "A", "--min-accuracy", "1.01")
    assert train(*args, "--stop-after", "2") == 3
    assert train(*args) == 1
    assert {p.name: p.read_bytes() for p in (tmp_path / "A").iterdir()} == before
    assert not list(tmp_path.glob(".A.*"))  # no staging folder left behind
    a, b = _tensors(tmp_path / "A"), _tensors(tmp_path / "b" / "export")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

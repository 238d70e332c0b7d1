"""Shared fixtures: tiny random HuggingFace GPT-2 checkpoints built on the spot.

No hub access: every reference model is made here with transformers + torch,
given random weights (biases and LayerNorm parameters included, so a dropped
term shows) and saved with `save_pretrained`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

# Tests never write the user's persistent compilation cache.
os.environ.setdefault("INTJAX_COMPILATION_CACHE", "off")

# The tests compile far more than they compute (tiny models, many programs). Without LLVM's
# optimisation passes XLA's CPU backend compiles about 40% faster (tests/test_cli_patch.py: 65 s,
# then 38 s); the programs do the same float operations, whose rounding may differ in the last bits.
# Set before JAX starts its backend; the intjax commands the tests spawn inherit it.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# INTJAX_TYPECHECK=on checks every jaxtyping annotation in intjax at call time (shapes, dtypes,
# dimension names consistent within a call) for the whole suite: about twice as slow, so off by
# default; tests/test_typecheck.py runs the main paths under the same checks in every run.
if os.environ.get("INTJAX_TYPECHECK", "off") == "on":
    from jaxtyping import install_import_hook

    install_import_hook("intjax", "typechecker.checked")

TRAIN_TEXT = [
    "When Mary and John went to the store, John gave a drink to Mary.",
    "When Tom and Anna went to the park, Anna gave a ball to Tom.",
    "Then, Alice and Bob had a lot of fun at the school. Bob gave a ring to Alice.",
    "The quick brown fox jumps over the lazy dog 0123456789 times!",
] * 4


def save_tokenizer(folder: Path, vocab_size: int = 300) -> int:
    """Train a small byte-level BPE; write tokenizer.json, vocab.json, merges.txt."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(TRAIN_TEXT, vocab_size=vocab_size, min_frequency=1, show_progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    tok.save_model(str(folder))
    return tok.get_vocab_size()


def save_hf_gpt2(
    folder: Path, *, seed: int = 0, with_tokenizer: bool = True, std: float = 0.1, **overrides
):
    """Save a random GPT2LMHeadModel into `folder`; returns the torch model (eval mode).

    Every parameter is drawn from N(0, std), LayerNorm weights from N(1, 2·std).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab = save_tokenizer(folder) if with_tokenizer else 300
    kwargs = dict(vocab_size=vocab, n_positions=32, n_embd=64, n_layer=3, n_head=4,
                  bos_token_id=0, eos_token_id=0)
    kwargs.update(overrides)
    config = GPT2Config(**kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_ln_weight = (".ln_" in name or name.startswith("transformer.ln_f")) and name.endswith("weight")
            p.copy_(torch.randn_like(p) * (2 * std if is_ln_weight else std) + float(is_ln_weight))
    model.save_pretrained(folder, safe_serialization=True)
    return model


def hf_forward(model, tokens: np.ndarray):
    """HF logits [T, V] and hidden_states [(L+1), T, D] for one sequence, as numpy."""
    import torch

    with torch.no_grad():
        out = model(torch.tensor(np.asarray(tokens)[None]), output_hidden_states=True)
    hidden = np.stack([h[0].numpy() for h in out.hidden_states])
    return out.logits[0].numpy(), hidden


def _memory_maps() -> int:
    """Memory mappings this process holds (0 where /proc is not there)."""
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


@pytest.fixture(scope="module", autouse=True)
def release_compiled_programs():
    """Drop JAX's compiled programs after a test module once the process holds many memory maps.

    Every compiled XLA program keeps memory mappings, and Linux allows a process
    vm.max_map_count of them (65,530 by default). The whole suite in one process
    compiles enough programs to pass that, and XLA then crashes inside compilation
    (a segfault or an abort, late in the run, in whichever test compiles next).
    """
    yield
    if _memory_maps() > 20_000:
        import gc

        import jax

        jax.clear_caches()
        gc.collect()


@pytest.fixture(scope="session", autouse=True)
def torch_one_thread():
    """The torch references run one small model at a time: one thread avoids spinning on shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ctrl_c_as_in_a_terminal() -> None:
    """For `Popen(preexec_fn=...)`: give the child the SIGINT a terminal gives. A process started in the
    background by a non-interactive shell (CI launched with `&`) inherits SIGINT ignored, and intjax
    rightly leaves an ignored SIGINT ignored (as under nohup), so a test of Ctrl-C must undo that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c_raises():
    """In this process, SIGINT raises KeyboardInterrupt for the test's length, however pytest was started."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def x64():
    """Float64 JAX for one test (identities and derivatives checked to rounding)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(folder, torch model) of a tiny random GPT-2 with a tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    return folder, save_hf_gpt2(folder)


@pytest.fixture(scope="session")
def tiny_model(tiny):
    """The tiny checkpoint loaded by intjax: (GPT2, tokenizer)."""
    import intjax

    return intjax.load_model(tiny[0])


_PER_FILE: dict[str, list] = {}  # test file -> [passed, failed, skipped, seconds], filled as reports arrive


def pytest_runtest_logreport(report) -> None:
    """Count each test's outcome and time under its file (with xdist: in the controller, from every worker)."""
    counts = _PER_FILE.setdefault(report.nodeid.split("::")[0], [0, 0, 0, 0.0])
    counts[3] += report.duration
    if report.when == "call" or (report.when == "setup" and not report.passed):
        counts[0 if report.passed else 2 if report.skipped else 1] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per test file: passed, failed, skipped and the time its tests took."""
    if not _PER_FILE:
        return
    terminalreporter.section("per test file")
    for name, (passed, failed, skipped, seconds) in sorted(_PER_FILE.items()):
        extra = (f", {failed} failed" if failed else "") + (f", {skipped} skipped" if skipped else "")
        terminalreporter.write_line(f"{name:45s} {passed:3d} passed{extra}  {seconds:7.1f} s")

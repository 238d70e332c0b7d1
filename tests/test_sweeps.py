"""Sweeps: several devices give the values of one; a killed sweep resumes exactly; bad resumes refuse."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import intjax.sweeps.runner as runner

loop = importlib.import_module("intjax.patching.evaluate")  # the module (the package exports the function)
from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.patching import build_problem, make_prompt_set, parse_components
from intjax.sweeps import ResumeError, run_sweep
from test_patching import prompt_rows

ROOT = Path(__file__).resolve().parent.parent
SETUP = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
import intjax
from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.patching import build_problem, make_prompt_set, parse_components
from test_patching import prompt_rows
model, _ = intjax.load_model({folder!r}, tokenizer=False)
problem = build_problem(model, make_prompt_set(prompt_rows(300, (7, 9, 8))),
                        parse_components("heads,mlps", model.config))
masks = subset_masks(subsets_up_to(15, 2), 15)
"""


def make_problem(model):
    return build_problem(model, make_prompt_set(prompt_rows(300, (7, 9, 8))),
                         parse_components("heads,mlps", model.config))


def run_script(code, env=None):
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_four_devices_give_the_values_of_one(tiny, tiny_model, tmp_path):
    code = SETUP.format(tests=str(ROOT / "tests"), folder=str(tiny[0])) + textwrap.dedent(f"""
        import jax
        from intjax.sweeps import run_sweep
        assert len(jax.devices()) == 4, jax.devices()
        np.save({str(tmp_path / "four.npy")!r}, run_sweep(problem, masks, chunk=8, quiet=True))
    """)
    proc = run_script(code, {"XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"})
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    problem = make_problem(tiny_model[0])
    masks = subset_masks(subsets_up_to(15, 2), 15)
    one = run_sweep(problem, masks, chunk=8, quiet=True)
    np.testing.assert_allclose(np.load(tmp_path / "four.npy"), one, atol=1e-5, rtol=0)


def test_killed_sweep_resumes_with_identical_values_each_chunk_once(tiny, tiny_model, tmp_path, monkeypatch):
    folder = tmp_path / "sweep"
    code = SETUP.format(tests=str(ROOT / "tests"), folder=str(tiny[0])) + textwrap.dedent(f"""
        import time
        import importlib
        import intjax.sweeps.runner as runner
        loop = importlib.import_module("intjax.patching.evaluate")
        slow = loop.run_chunk
        def run_chunk(*args, **kwargs):  # slow enough to be killed in the middle
            time.sleep(0.3)
            return slow(*args, **kwargs)
        loop.run_chunk = run_chunk
        runner.run_sweep(problem, masks, {str(folder)!r}, chunk=4, quiet=True)
    """)
    proc = run_script(code)
    log = folder / "chunks.log"
    deadline = time.time() + 300
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(log.read_text().splitlines()) >= 4, proc.stderr.read()[-3000:]

    problem = make_problem(tiny_model[0])
    masks = subset_masks(subsets_up_to(15, 2), 15)
    import orbax.checkpoint as ocp

    manager = runner._manager(folder)
    n_chunks = len(loop.plan_chunks(problem, masks, 4))
    saved = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(
        {"values": np.zeros((len(masks), 3)), "done": np.zeros(n_chunks, bool)}))["done"]
    manager.close()
    assert 0 < saved.sum() < n_chunks

    ran = []
    real = loop.run_chunk
    monkeypatch.setattr(loop, "run_chunk", lambda p, m, c, *rest: ran.append(tuple(c.rows)) or real(p, m, c, *rest))
    resumed = run_sweep(problem, masks, folder, chunk=4, quiet=True)
    chunks = loop.plan_chunks(problem, masks, 4)
    assert sorted(ran) == sorted(tuple(c.rows) for c, s in zip(chunks, saved) if not s)
    monkeypatch.setattr(loop, "run_chunk", real)
    np.testing.assert_array_equal(resumed, run_sweep(problem, masks, None, chunk=4, quiet=True))


def test_changed_inputs_refuse_to_resume(tiny, tiny_model, tmp_path):
    model, _ = tiny_model
    problem = make_problem(model)
    masks = np.eye(15)
    run_sweep(problem, masks, tmp_path, quiet=True)
    with pytest.raises(ResumeError, match=r"other inputs: masks"):
        run_sweep(problem, np.eye(15)[::-1], tmp_path, quiet=True)
    other = build_problem(model, problem_prompts(), problem.components, direction="denoising")
    with pytest.raises(ResumeError, match="direction"):
        run_sweep(other, masks, tmp_path, quiet=True)
    with pytest.raises(ResumeError, match="prompts"):
        run_sweep(build_problem(model, problem_prompts(seed=5), problem.components), masks, tmp_path, quiet=True)
    again = run_sweep(other, masks, tmp_path, quiet=True, restart=True)
    np.testing.assert_allclose(again, run_sweep(other, masks, None, quiet=True))


def problem_prompts(seed=0):
    return make_prompt_set(prompt_rows(300, (7, 9, 8), seed=seed))


def test_damaged_checkpoint_is_reported(tiny_model, tmp_path):
    problem = make_problem(tiny_model[0])
    masks = np.eye(15)
    run_sweep(problem, masks, tmp_path, chunk=4, quiet=True)
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"\x00" * 7)
    with pytest.raises(ResumeError, match="cannot be read.*--restart"):
        run_sweep(problem, masks, tmp_path, chunk=4, quiet=True)
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(ResumeError, match="damaged"):
        run_sweep(problem, masks, tmp_path, chunk=4, quiet=True)
    values = run_sweep(problem, masks, tmp_path, chunk=4, quiet=True, restart=True)
    assert np.isfinite(values).all()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_split_the_chunks_and_gather_the_values(tiny, tiny_model, tmp_path):
    """Two JAX processes (as on two hosts) via jax.distributed.initialize on localhost."""
    port = free_port()
    procs = []
    for pid in range(2):
        code = textwrap.dedent(f"""
            import jax
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(coordinator_address="127.0.0.1:{port}", num_processes=2, process_id={pid})
        """) + SETUP.format(tests=str(ROOT / "tests"), folder=str(tiny[0])) + textwrap.dedent(f"""
            from intjax.sweeps import run_sweep
            np.save({str(tmp_path)!r} + "/p{pid}.npy", run_sweep(problem, masks, {str(tmp_path / "ck")!r}, chunk=8, quiet=True))
        """)
        procs.append(run_script(code))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    one = run_sweep(make_problem(tiny_model[0]), subset_masks(subsets_up_to(15, 2), 15), chunk=8, quiet=True)
    for pid in range(2):
        np.testing.assert_allclose(np.load(tmp_path / f"p{pid}.npy"), one, atol=1e-5, rtol=0)
        log = (tmp_path / "ck" / f"process_{pid}_of_2" / "chunks.log").read_text().split()
        assert {int(k) % 2 for k in log[::2]} == {pid}  # each process ran only its own chunks


def test_model_digest_is_computed_once_per_model_and_tracks_content(monkeypatch):
    """The memo returns hash_arrays' value, hashes a set of weight arrays once (also when a
    problem wraps them in a new module), and a model with one changed weight gets a new digest."""
    import equinox as eqx
    import jax
    import intjax
    from intjax.sweeps import fingerprint

    model, _ = intjax.load_model("ioi-small")
    calls = []
    real = fingerprint.hash_arrays
    monkeypatch.setattr(fingerprint, "hash_arrays", lambda *t: calls.append(1) or real(*t))
    rewrapped = jax.tree.unflatten(*reversed(jax.tree.flatten(model)))  # a new module, the same arrays
    assert rewrapped is not model
    d1, d2 = fingerprint.model_digest(model), fingerprint.model_digest(rewrapped)
    assert d1 == d2 == real(model) and len(calls) == 1
    changed = eqx.tree_at(lambda m: m.lnf_b, model, model.lnf_b.at[0].add(1e-3))
    assert fingerprint.model_digest(changed) not in (d1, None) and len(calls) == 2


def test_sweep_stopped_by_an_error_keeps_its_finished_chunks(tiny_model, tmp_path, monkeypatch):
    """Checkpoints are throttled (here: never before the end), yet chunks finished before an
    exception (as Ctrl-C raises) are saved, and the rerun computes only the rest."""
    problem = make_problem(tiny_model[0])
    masks = np.eye(15)
    real, ran = loop.run_chunk, []

    def failing(p, m, c, *rest):
        if len(ran) == 3:
            raise KeyboardInterrupt
        ran.append(tuple(c.rows))
        return real(p, m, c, *rest)

    monkeypatch.setattr(loop, "run_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(problem, masks, tmp_path, chunk=4, quiet=True, save_every_s=1e9)
    assert len((tmp_path / "chunks.log").read_text().splitlines()) == 3
    first, ran[:] = list(ran), []
    monkeypatch.setattr(loop, "run_chunk", lambda p, m, c, *rest: ran.append(tuple(c.rows)) or real(p, m, c, *rest))
    resumed = run_sweep(problem, masks, tmp_path, chunk=4, quiet=True, save_every_s=1e9)
    chunks = loop.plan_chunks(problem, masks, 4)
    assert sorted(first + ran) == sorted(tuple(c.rows) for c in chunks) and not set(first) & set(ran)
    monkeypatch.setattr(loop, "run_chunk", real)
    np.testing.assert_array_equal(resumed, run_sweep(problem, masks, None, chunk=4, quiet=True))

"""The command line under real use: interrupts, locked output folders, validation before work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from intjax.cli import main
from intjax.errors import InputError
from intjax.outdir import LOCK_NAME, claimed_output
from intjax.results import read_results
from conftest import ctrl_c_as_in_a_terminal
from test_cli_patch import write_jsonl
from test_patching import prompt_rows


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps(dict(pid=os.getpid(), host=os.uname().nodename,
                                                 command="intjax patch ...", started="today")))
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6, 6)))
    args = ["patch", "--model", str(tiny[0]), "--data", str(data), "--components", "L0H1", "--out", str(out),
            "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"is in use by process {os.getpid()}" in err and err.count("\n") == 1
    (out / LOCK_NAME).write_text(json.dumps(dict(pid=dead_pid(), host=os.uname().nodename, command="old")))
    with claimed_output(out, "new") as folder:
        assert json.loads((folder / LOCK_NAME).read_text())["command"] == "new"
        with pytest.raises(InputError, match="in use by process"):  # a second claim while this one holds it
            with claimed_output(out, "second"):
                pass
    assert "taking over" in capsys.readouterr().err and not (out / LOCK_NAME).exists()


def test_unwritable_output_and_bad_flags_fail_in_one_line_before_model_work(tiny, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6, 6)))
    base = ["patch", "--model", str(tiny[0]), "--data", str(data), "--components", "heads"]
    t0 = time.perf_counter()
    assert main([*base, "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and "Traceback" not in err and err.count("\n") == 1
    assert time.perf_counter() - t0 < 2  # refused before loading the model
    for flag, value in (("--chunk", "0"), ("--memory-gb", "0"), ("--order", "-1")):
        with pytest.raises(SystemExit):
            main([*base, "--out", str(tmp_path / "o"), flag, value])
        assert "too small" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "o"), "--order", "13"]) == 2
    assert "above the number of components (12)" in capsys.readouterr().err
    many = write_jsonl(tmp_path / "many.jsonl", prompt_rows(300, (6,) * 50))
    assert main([*base, "--data", str(many), "--out", str(tmp_path / "o"), "--order", "12"]) == 2
    err = capsys.readouterr().err
    assert "4,096 subsets, 409,600 patched runs" in err and "--force" in err


def test_target_equal_to_foil_is_refused(tiny, tmp_path, capsys):
    rows = prompt_rows(300, (6, 6))
    rows[1]["foil_id"] = rows[1]["target_id"]
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    assert main(["patch", "--model", str(tiny[0]), "--data", str(data), "--components", "L0H1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "line 2" in capsys.readouterr().err


def saved_chunks(out: Path) -> int:
    """Chunks the sweeps under `out` have saved so far (lines of their chunks.log). The pattern does
    not descend into the sweeps' state folders, whose temporary folders orbax renames while it saves."""
    return sum(len(p.read_text().splitlines()) for p in out.glob("checkpoints/*/sweep_*/chunks.log"))


def interrupt(cmd: list[str], out: Path, sig: int) -> subprocess.CompletedProcess:
    """Start `cmd`, send `sig` as soon as it has saved chunks of its own, and return how it ended."""
    before = saved_chunks(out)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    deadline = time.time() + 120
    while time.time() < deadline and saved_chunks(out) == before and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, "", err)


def test_interrupted_sweeps_exit_cleanly_and_the_same_command_resumes(tiny, tmp_path):
    """SIGTERM (143) and Ctrl-C (130), each on a fresh run once it has saved chunks (its second
    sweep is still ahead): one line, no traceback, the chunks saved, the lock gone; the same
    command then completes the stopped run."""
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6, 7)))

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "intjax.cli", "patch", "--model", str(tiny[0]), "--data", str(data),
                "--components", "heads,mlps", "--order", "2", "--chunk", "1", "--out", str(out), "--quiet"]

    for sig, code, out in ((signal.SIGTERM, 143, tmp_path / "a"), (signal.SIGINT, 130, tmp_path / "b")):
        stopped = interrupt(command(out), out, sig)
        err = stopped.stderr
        assert stopped.returncode == code, err[-2000:]
        assert "Traceback" not in err and "run the same command again to resume" in err, err[-2000:]
        assert not (out / LOCK_NAME).exists()  # the lock went with the run
        assert saved_chunks(out) > 0
    done = subprocess.run(command(tmp_path / "a"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    arrays, _ = read_results(tmp_path / "a")
    assert arrays["int2_noising"].shape == (2, 105) and np.isfinite(arrays["int2_noising"]).all()


def test_bad_circuit_file_is_refused_before_any_patching(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"name_mover": ["L0H1", "L9H0"]}))  # ioi-small has layers 0..3
    t0 = time.perf_counter()
    for path, message in ((broken, "cannot read circuit file"), (wrong, "layer 9 is out of range"),
                          (tmp_path / "typo", "unknown circuit")):
        assert main(["ioi", "--model", "ioi-small", "--out", str(tmp_path / "o"), "--circuit", str(path),
                     "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert time.perf_counter() - t0 < 20  # loading the small model at most, no patching

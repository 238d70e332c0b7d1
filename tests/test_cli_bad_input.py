"""Issue 32's bad inputs: each is refused in one line on stderr (exit 2, no traceback) before the work
it would spoil; an early Ctrl-C exits 130 in one line; a full disk is one line."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import intjax.loading
import intjax.runs.patch
from intjax.cli import main
from intjax.errors import InputError, LoadError
from intjax.interrupts import raising_signals
from intjax.loading.resolve import resolve_model_dir
from intjax.model import GPT2Config
from intjax.patching import parse_components, read_prompts
from intjax.write_errors import write_failure
from conftest import ctrl_c_as_in_a_terminal
from test_cli_patch import write_jsonl
from test_patching import prompt_rows

REPO = Path(__file__).resolve().parent.parent
GOOD = dict(clean_ids=[1, 2, 3], corrupted_ids=[4, 5, 6], target_id=7, foil_id=8)


def one_line(capsys) -> str:
    """The stderr of the last call, asserted to be one line without a traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def patch_args(tiny, data, out, *extra: str) -> list[str]:
    return ["patch", "--model", str(tiny[0]), "--data", str(data), "--components", "L0H1,L1H0", "--out", str(out),
            *extra]


def no_model_load(monkeypatch) -> None:
    """Make loading a model fail the test: the input must be refused before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was refused")

    monkeypatch.setattr(intjax.loading, "load_model", refuse)


@pytest.mark.parametrize("content, message", [
    ([{**GOOD, "clean_ids": "abc"}], 'clean_ids must be a list of whole-number token ids, not "abc"'),
    ([{**GOOD, "clean_ids": [[1, 2, 3]]}], "clean_ids must be a list of whole-number token ids, not [1, 2, 3]"),
    ([{**GOOD, "clean_ids": [1.9, 2, 3]}], "not 1.9"),  # was truncated to 1 and run
    ([{**GOOD, "target_id": 5.7}], "target_id must be one whole-number token id, not 5.7"),
    ([{**GOOD, "corrupted_ids": [4, 5, 2**32 + 6]}], "not 4294967302"),  # int32 wrapped it to 6
    ([{**GOOD, "foil_id": True}], "foil_id must be one whole-number token id, not true"),
    ([{**GOOD, "positions": [1]}], "positions must be an object"),
    ([GOOD, [1, 2, 3]], "line 2 is a JSON list, not an object"),
    ("[" + json.dumps(GOOD) + ",\n" + json.dumps(GOOD) + "]\n", "holds one JSON array; write one object a line"),
    (bytes(range(256)), "is not text (binary data)"),
])
def test_malformed_prompt_files_are_refused_before_the_model_loads(tiny, tmp_path, capsys, monkeypatch,
                                                                   content, message):
    data = tmp_path / "p.jsonl"
    if isinstance(content, bytes):
        data.write_bytes(content)
    elif isinstance(content, str):
        data.write_text(content)
    else:
        write_jsonl(data, content)
    no_model_load(monkeypatch)
    assert main(patch_args(tiny, data, tmp_path / "o")) == 2
    assert message in one_line(capsys)


def test_text_of_the_wrong_type_is_refused(tiny, tmp_path, capsys):
    data = write_jsonl(tmp_path / "p.jsonl", [dict(clean=123, corrupted="a b", target=" Mary", foil=" John")])
    assert main(patch_args(tiny, data, tmp_path / "o")) == 2
    assert "clean must be text in quotes, not 123" in one_line(capsys)


def test_whole_floats_are_ids_and_the_values_are_those_of_the_ints(tiny_model):
    """2.0 is the id 2 (JSON writers emit it); only fractions are refused."""
    as_ints = read_prompts_rows([GOOD], tiny_model[1])
    as_floats = read_prompts_rows([{k: (np.array(v) * 1.0).tolist() if isinstance(v, list) else float(v)
                                    for k, v in GOOD.items()}], tiny_model[1])
    np.testing.assert_array_equal(as_ints.clean[0], [1, 2, 3])
    np.testing.assert_array_equal(as_floats.clean[0], as_ints.clean[0])
    assert as_floats.target.tolist() == [7]


def read_prompts_rows(rows, tokenizer):
    from intjax.patching import make_prompt_set

    return make_prompt_set(rows, tokenizer)


@pytest.mark.parametrize("quiet", [[], ["--quiet"]])
def test_an_over_long_prompt_is_refused_before_any_jax_work(tiny, tmp_path, capsys, monkeypatch, quiet):
    """The plan (printed without --quiet) times a forward pass: the length check comes before it."""
    data = write_jsonl(tmp_path / "p.jsonl", [dict(GOOD, clean_ids=list(range(40)), corrupted_ids=list(range(40)))])

    def no_plan(*args, **kwargs):
        raise AssertionError("the plan ran before the over-long prompt was refused")

    monkeypatch.setattr(intjax.runs.patch, "patch_stages", no_plan)
    assert main(patch_args(tiny, data, tmp_path / "o", *quiet)) == 2
    err = one_line(capsys)
    assert str(data) in err and "40 tokens, more than the model's n_positions=32" in err  # conftest: n_positions=32


@pytest.mark.parametrize("command, flag, value", [
    ("patch", "--memory-gb", "nan"), ("patch", "--memory-gb", "inf"), ("patch", "--memory-gb", "-inf"),
    ("ioi", "--budget-min", "nan"), ("ioi", "--minimality-threshold", "inf"),
    ("patch", "--out", ""), ("patch", "--data", ""), ("theorems", "--out", " "), ("demo", "--out", ""),
])
def test_non_finite_numbers_and_empty_paths_are_refused(tmp_path, capsys, command, flag, value):
    args = {"patch": ["patch", "--model", "m", "--data", "d", "--components", "heads", "--out", "o"],
            "theorems": ["theorems", "--model", "m", "--data", "d", "--components", "heads", "--out", "o"],
            "ioi": ["ioi", "--model", "m", "--out", "o"], "demo": ["demo"]}[command]
    with pytest.raises(SystemExit) as stop:
        main([*args, f"{flag}={value}"])
    assert stop.value.code == 2
    err = one_line(capsys)
    assert flag in err and ("not a finite number" in err if value.strip() else "an empty path" in err)


def test_theorems_order_above_the_components_is_refused(tiny, tmp_path, capsys):
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6,)))
    t0 = time.perf_counter()
    assert main(["theorems", "--model", str(tiny[0]), "--data", str(data), "--components", "L0H1,L1H0",
                 "--order", "99", "--out", str(tmp_path / "o")]) == 2
    assert "--order 99 is above the number of components (2)" in one_line(capsys)
    assert time.perf_counter() - t0 < 10 and not (tmp_path / "o" / "theorems.json").exists()


@pytest.mark.parametrize("spec, message", [
    ("L0H0,,L1H0", "has an empty item"), ("L0H0,", "has an empty item"),
    ("a=L0H0+L0H0", "group 'a' lists L0H0 more than once"), ("L0H1,L0H1", "components listed twice"),
])
def test_empty_and_repeated_components_are_refused(spec, message):
    with pytest.raises(InputError, match=message):
        parse_components(spec, GPT2Config(n_layers=2, n_heads=2, d_model=8))


def test_component_errors_reach_the_command_line_in_one_line(tiny, tmp_path, capsys):
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6,)))
    args = patch_args(tiny, data, tmp_path / "o")
    args[args.index("--components") + 1] = "a=L0H0+L0H0"
    assert main(args) == 2
    assert "lists L0H0 more than once" in one_line(capsys)


@pytest.mark.parametrize("name, message", [
    ("no such model!!", "is neither a local folder, a shipped model (ioi-small) nor a HuggingFace hub id"),
    ("ioi-small/", "did you mean the shipped model 'ioi-small'"),
    ("ioi_small", "did you mean the shipped model 'ioi-small'"),
])
def test_impossible_model_names_are_refused_without_asking_the_hub(name, message, capsys, monkeypatch):
    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    with pytest.raises(LoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_model_dir(name)
    assert main(["info", "--model", name]) == 2
    assert message in one_line(capsys)


def test_a_config_without_a_shape_key_is_refused_not_defaulted(tiny, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny[0], folder)
    config = json.loads((folder / "config.json").read_text())
    del config["n_head"]  # HF's default is GPT-2 small's 12; this model has 4
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="has no n_head; the file is incomplete: add it "):
        intjax.loading.load_model(folder)


def test_id_prompts_need_no_tokenizer_and_text_prompts_say_what_to_do(tiny, tmp_path, capsys):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny[0] / name, folder)
    ids = write_jsonl(tmp_path / "ids.jsonl", prompt_rows(300, (6,)))
    assert main(["patch", "--model", str(folder), "--data", str(ids), "--components", "L0H1",
                 "--out", str(tmp_path / "o"), "--quiet"]) == 0
    text = write_jsonl(tmp_path / "text.jsonl", [dict(clean="When Mary", corrupted="When Tom", target=" Mary",
                                                      foil=" John")])
    capsys.readouterr()
    assert main(["patch", "--model", str(folder), "--data", str(text), "--components", "L0H1",
                 "--out", str(tmp_path / "o2")]) == 2
    err = one_line(capsys)
    assert "copy the model's tokenizer files there" in err and "clean_ids" in err


def test_a_data_folder_is_named_and_a_pipe_is_read(tiny, tmp_path, capsys, monkeypatch):
    no_model_load(monkeypatch)
    assert main(patch_args(tiny, tmp_path, tmp_path / "o")) == 2
    assert f"--data {tmp_path} is a folder" in one_line(capsys)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # what bash's <(...) gives: a pipe, not a regular file
    writer = threading.Thread(target=lambda: fifo.write_text(json.dumps(GOOD) + "\n"))
    writer.start()
    prompts = read_prompts(fifo)
    writer.join()
    assert prompts.clean[0].tolist() == [1, 2, 3] and prompts.target.tolist() == [7]


@pytest.mark.parametrize("circuit, message", [
    ({}, "names no heads"), ({"a": []}, "names no heads"),
    ({"a": ["L0H1"], "b": ["L1H0", "L0H1"]}, "lists L0H1 in 'a' and 'b'"),
])
def test_a_bad_circuit_file_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch, circuit, message):
    path = tmp_path / "circuit.json"
    path.write_text(json.dumps(circuit))
    no_model_load(monkeypatch)
    assert main(["ioi", "--model", "ioi-small", "--out", str(tmp_path / "o"), "--circuit", str(path), "--quiet"]) == 2
    assert message in one_line(capsys)


@pytest.mark.parametrize("raised", [
    OSError(errno.ENOSPC, "No space left on device"),
    ValueError('RESOURCE_EXHAUSTED: Error writing local file "x/manifest.ocdbt": Failed to write 113 bytes to '
               "file 7: No space left on device [os_error_code='28']"),  # orbax (tensorstore) wraps it so
])
def test_a_full_disk_is_one_line(tiny, tmp_path, capsys, monkeypatch, raised):
    import intjax.sweeps.runner

    def full(*args, **kwargs):
        raise raised

    monkeypatch.setattr(intjax.sweeps.runner, "_save", full)
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6,)))
    assert main(patch_args(tiny, data, tmp_path / "o", "--quiet")) == 2
    assert "no space left on the disk of" in one_line(capsys)


def test_write_failure_names_only_space_and_permission_errors():
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded", "/x/values.npz")
    assert "no space left" in write_failure(wrapped, "runs/x") and "(writing /x/values.npz)" in write_failure(
        wrapped, "runs/x")
    assert "cannot write" in write_failure(OSError(errno.EROFS, "Read-only file system"), None)
    assert write_failure(OSError(errno.ENOENT, "No such file"), None) is None
    assert write_failure(ValueError("os_error_code=2"), None) is None
    assert write_failure(ValueError("shapes differ"), None) is None


def test_a_ctrl_c_swallowed_by_a_gc_callback_is_raised_again(capsys, ctrl_c_raises):
    """JAX's gc callback swallows a KeyboardInterrupt raised inside it ("Exception ignored in ..."),
    and the run went on to exit 0; raising_signals raises it again in the main thread."""
    import gc

    armed = [True]

    def callback(phase, info):
        if armed:
            armed.clear()
            signal.raise_signal(signal.SIGINT)

    gc.callbacks.append(callback)
    try:
        with raising_signals() as signals:
            with pytest.raises(KeyboardInterrupt):
                gc.collect()
                deadline = time.time() + 5
                while time.time() < deadline:
                    time.sleep(0.01)
        assert signals.received[0] == signal.SIGINT  # then once per time it was raised again
    finally:
        gc.callbacks.remove(callback)
    assert "Exception ignored" not in capsys.readouterr().err


@pytest.mark.parametrize("delay, sig, code", [(0.5, signal.SIGINT, 130), (1.0, signal.SIGINT, 130),
                                             (2.0, signal.SIGINT, 130), (1.0, signal.SIGTERM, 143)])
def test_an_early_ctrl_c_or_sigterm_exits_in_one_line(tiny, tmp_path, delay, sig, code):
    """While JAX imports (an ImportError or a KeyboardInterrupt traceback before) and just after (a
    Ctrl-C swallowed by JAX's gc callback, then exit 0)."""
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6,)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "intjax", *patch_args(tiny, data, tmp_path / "o", "--quiet")],
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ctrl_c_as_in_a_terminal)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert err.count("\n") == 1 and ("interrupted (Ctrl-C)" if code == 130 else "terminated (SIGTERM)") in err, \
        err[-3000:]


def test_a_model_that_singles_out_no_heads_stops_after_the_first_stage(tmp_path, capsys, monkeypatch):
    """Discovery that finds no circuit (as on random weights, where every head reaches 5% of the total
    effect) stops the run once the first stage has the NIEs, not after five more stages."""
    from conftest import save_hf_gpt2

    import intjax
    import intjax.ioi.circuit

    def no_circuit(model, data, nie_noising, nie_denoising, total_effect, **kwargs):
        assert nie_noising.shape == (8, 16)  # the first stage's NIEs, every head
        raise InputError("the model singles out no heads for this task")

    monkeypatch.setattr(intjax.ioi.circuit, "discover_circuit", no_circuit)
    shipped = Path(intjax.__file__).parent / "assets" / "ioi-small"
    save_hf_gpt2(tmp_path / "m", with_tokenizer=False, vocab_size=1021, n_positions=32, n_embd=32, n_layer=4,
                 n_head=4)
    shutil.copy(shipped / "tokenizer.json", tmp_path / "m" / "tokenizer.json")  # IOI names one token each
    code = main(["ioi", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "o"), "--circuit", "discover",
                 "--n-prompts", "8", "--theorem-heads", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "singles out no heads" in err.splitlines()[-1]
    assert "[1/7]" in err and "[2/7]" not in err

"""Loading: tokenizers, Flax msgpack, and a clear error for every kind of bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import intjax
from conftest import hf_forward
from intjax.errors import ConfigError, InputError, LoadError

TEXTS = ["When Mary and John went to the store, John gave a drink to Mary.", " hello  world!", "x"]


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_tokenizer_json_and_vocab_merges_match_transformers(tiny, tmp_path):
    from transformers import GPT2Tokenizer

    reference = GPT2Tokenizer(str(tiny[0] / "vocab.json"), str(tiny[0] / "merges.txt"))
    _, tok_json = intjax.load_model(tiny[0])
    folder = copy_checkpoint(tiny[0], tmp_path / "m")
    (folder / "tokenizer.json").unlink()
    _, tok_files = intjax.load_model(folder)
    for text in TEXTS:
        expected = reference.encode(text)
        assert tok_json.encode(text).ids == expected
        assert tok_files.encode(text).ids == expected
        assert tok_files.decode(expected) == text


def test_flax_msgpack_matches_hf_logits(tiny, tmp_path):
    """A HF Flax-layout msgpack (FlaxConv1D kernels stored [out, in]) gives HF's logits."""
    from flax.serialization import msgpack_serialize

    hf_model = tiny[1]
    tree: dict = {}
    for name, t in hf_model.state_dict().items():
        name = name.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        *path, leaf = name.split(".")
        arr = t.numpy()
        if path[-1].startswith("ln"):
            leaf = {"weight": "scale"}.get(leaf, leaf)
        elif path[-1] in ("wte", "wpe"):
            leaf = "embedding"
        elif leaf == "weight":
            leaf, arr = "kernel", arr.T
        node = tree.setdefault("transformer", {})
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = arr
    folder = tmp_path / "flax"
    folder.mkdir()
    shutil.copy(tiny[0] / "config.json", folder)
    (folder / "flax_model.msgpack").write_bytes(msgpack_serialize(tree))
    model, _ = intjax.load_model(folder, tokenizer=False)
    tokens = np.arange(9)
    np.testing.assert_allclose(model(tokens)[0], hf_forward(hf_model, tokens)[0], atol=1e-5)


def test_missing_folder(tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        intjax.load_model(tmp_path / "nope")
    with pytest.raises(LoadError, match="does not exist"):
        intjax.load_model("./no/such/folder")


def test_missing_files(tiny, tmp_path):
    folder = copy_checkpoint(tiny[0], tmp_path / "m")
    (folder / "config.json").unlink()
    with pytest.raises(LoadError, match="no config.json"):
        intjax.load_model(folder)
    folder = copy_checkpoint(tiny[0], tmp_path / "w")
    (folder / "model.safetensors").unlink()
    with pytest.raises(LoadError, match="no weights"):
        intjax.load_model(folder)
    folder = copy_checkpoint(tiny[0], tmp_path / "t")
    for f in ("tokenizer.json", "vocab.json"):
        (folder / f).unlink()
    with pytest.raises(LoadError, match="no tokenizer.json"):
        intjax.load_model(folder)
    assert intjax.load_model(folder, tokenizer=False)[1] is None


def test_truncated_and_corrupted_safetensors(tiny, tmp_path):
    folder = copy_checkpoint(tiny[0], tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="truncated or corrupted"):
        intjax.load_model(folder)
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(LoadError, match="truncated or corrupted"):
        intjax.load_model(folder)


def edit_weights(folder, fn):
    from safetensors.numpy import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    fn(state)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_missing_wrong_shape_and_unknown_tensors(tiny, tmp_path):
    folder = copy_checkpoint(tiny[0], tmp_path / "a")
    edit_weights(folder, lambda s: s.pop("transformer.h.1.mlp.c_fc.bias"))
    with pytest.raises(LoadError, match=r"no tensor 'h.1.mlp.c_fc.bias'"):
        intjax.load_model(folder)
    folder = copy_checkpoint(tiny[0], tmp_path / "b")
    edit_weights(folder, lambda s: s.update({"transformer.ln_f.weight": np.ones(3, np.float32)}))
    with pytest.raises(LoadError, match=r"'ln_f.weight' has shape \(3,\), expected \(64,\)"):
        intjax.load_model(folder)
    folder = copy_checkpoint(tiny[0], tmp_path / "c")
    edit_weights(folder, lambda s: s.update({"transformer.h.0.adapter.weight": np.ones(3, np.float32)}))
    with pytest.raises(LoadError, match="tensors intjax does not know"):
        intjax.load_model(folder)


def write_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(reorder_and_upcast_attn=True), "reorder_and_upcast_attn=True"),
        (dict(add_cross_attention=True), "add_cross_attention=True"),
        (dict(activation_function="gelu_10"), "activation_function='gelu_10'"),
        (dict(model_type="gemma"), "model_type 'gemma' is not implemented"),
        (dict(rotary_dim=16), r"keys intjax does not know: \['rotary_dim'\]"),
    ],
)
def test_unsupported_config_is_refused_by_name(tiny, tmp_path, changes, message):
    folder = copy_checkpoint(tiny[0], tmp_path / "m")
    write_config(folder, **changes)
    with pytest.raises(ConfigError, match=message):
        intjax.load_model(folder)


def test_unknown_config_key_allowed_when_lenient(tiny, tmp_path):
    folder = copy_checkpoint(tiny[0], tmp_path / "m")
    write_config(folder, my_note="hello")
    model, _ = intjax.load_model(folder, strict_config=False)
    assert model.config.n_layers == 3


def test_config_weight_mismatch(tiny, tmp_path):
    folder = copy_checkpoint(tiny[0], tmp_path / "m")
    write_config(folder, n_embd=128)
    with pytest.raises(LoadError, match="does not match"):
        intjax.load_model(folder)


def test_bad_tokens(tiny_model):
    model, _ = tiny_model
    V, P = model.config.vocab_size, model.config.n_positions
    with pytest.raises(InputError, match="outside the vocabulary"):
        model(np.array([1, V]))
    with pytest.raises(InputError, match="outside the vocabulary"):
        model(np.array([-1, 2]))
    with pytest.raises(InputError, match="n_positions=32"):
        model(np.zeros(P + 1, np.int32))
    with pytest.raises(InputError, match="one sequence"):
        model(np.zeros((2, 3), np.int32))
    with pytest.raises(InputError, match="integers"):
        model(np.zeros(3, np.float32))


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "intjax.cli", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=300,
    )


def test_hub_id_without_network_says_how_to_pass_a_folder(tmp_path):
    r = run_cli("info", "--model", "gpt2", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert r.returncode == 2
    assert "could not fetch 'gpt2'" in r.stderr
    assert "pass its path" in r.stderr


def test_mistyped_local_folder_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    """`runs/gpt2x` where ./runs exists names a missing local folder, not the hub repo runs/gpt2x."""
    from intjax.errors import LoadError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(LoadError, match="folder runs/gpt2x does not exist"):
        intjax.load_model("runs/gpt2x")


def test_cli_info_prints_config_and_parameter_count(tiny):
    r = run_cli("info", "--model", str(tiny[0]))
    assert r.returncode == 0, r.stderr
    assert f"parameters: {tiny[1].num_parameters():,}" in r.stdout
    assert "n_layers: 3" in r.stdout and "devices:" in r.stdout

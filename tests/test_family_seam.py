"""The family seam: a family's model file holds its config, weights and maths only, and what families
share (sites, edits, the patched block, the layer scan, `Decoder`) lives in its own modules; no private
name crosses files in model/ and loading/."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "intjax"
FAMILY_FILES = ("gpt2.py", "llama.py")


def imported_names(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every `from intjax… import name` in the file (parenthesised lists included)."""
    text = re.sub(r"#[^\n]*", "", path.read_text())
    out = []
    for module, grouped, line in re.findall(r"^\s*from (intjax[\w.]*) import (?:\(([^)]*)\)|([^(\n]+))", text, re.M):
        out += [(module, n.split(" as ")[0].strip()) for n in (grouped or line).split(",") if n.strip()]
    return out


def test_import_reader_sees_every_name(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text("from intjax.a import (\n    b,\n    _c as d,\n)\nfrom intjax.e import f, _g  # noqa\n")
    assert imported_names(planted) == [("intjax.a", "b"), ("intjax.a", "_c"), ("intjax.e", "f"), ("intjax.e", "_g")]


def test_no_private_name_crosses_files_in_model_loading_and_estimands():
    crossing = [(str(p.relative_to(PACKAGE)), m, n) for folder in ("model", "loading", "estimands")
                for p in sorted((PACKAGE / folder).glob("*.py")) for m, n in imported_names(p) if n.startswith("_")]
    assert not crossing, crossing


def test_families_share_no_code_but_the_seam():
    """A family imports from the shared modules, never from another family."""
    for name in FAMILY_FILES:
        modules = {m for m, _ in imported_names(PACKAGE / "model" / name)}
        assert modules <= {"intjax.model.block", "intjax.model.decoder", "intjax.model.primitives",
                           "intjax.model.sites", "intjax.errors"}, (name, modules)


def test_every_family_is_a_decoder_with_its_own_block():
    from intjax.model import GPT2, Decoder, Llama
    from intjax.model import gpt2, llama

    for model, module in ((GPT2, gpt2), (Llama, llama)):
        assert issubclass(model, Decoder)
        assert model.block is module.block_forward and model.layer_keys_values is module.keys_values
        assert Decoder.__abstractmethods__ <= set(vars(model))  # embed, layer_constants, final_norm


def test_one_loader_line_per_family():
    from intjax.loading.load import LOADERS, MODEL_TYPES

    assert MODEL_TYPES == ("gpt2", "llama", "qwen2", "mistral", "gpt_neox")
    assert all(callable(read) and callable(build) for read, build in LOADERS.values())

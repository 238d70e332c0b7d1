"""IOI task: the prompt generator, its checks, and the shipped `ioi-small` model."""

from __future__ import annotations

import json

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from intjax.errors import InputError
from intjax.patching.prompts import make_prompt_set
from intjax.ioi import task as ioi
from intjax.ioi.task import (
    ABBA_TEMPLATES,
    BABA_TEMPLATES,
    GPT2_SMALL_IOI_CIRCUIT,
    HELDOUT_NAMES,
    HELDOUT_PLACES,
    NAMES,
    OBJECTS,
    PLACES,
    ioi_prompts,
)

# Seeds the training script uses (batches: seed*1_000_003 + step; eval: 10_000, 10_001)
# are all avoided here.
FRESH_SEED = 987_654


@pytest.fixture(scope="module")
def tok():
    """A byte-level BPE in which every IOI word is one token (trained here, in ~0.1 s)."""
    from tokenizers import ByteLevelBPETokenizer, Tokenizer

    words = " " + " ".join(NAMES + PLACES + OBJECTS)
    corpus = [t.replace("[A]", "Mary").replace("[B]", "John").replace("[PLACE]", "store")
              .replace("[OBJECT]", "drink") for t in BABA_TEMPLATES + ABBA_TEMPLATES] * 5
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(corpus + [words] * 5, vocab_size=3000, min_frequency=2,
                            show_progress=False)
    return Tokenizer.from_str(bpe.to_str())


def _ids(tok, word):
    return tok.encode(" " + word).ids


def test_word_lists_and_templates():
    assert len(NAMES) >= 50 and len(PLACES) >= 50 and len(OBJECTS) >= 50
    for words in (NAMES, PLACES, OBJECTS):
        assert len(set(words)) == len(words)
    assert len(BABA_TEMPLATES) >= 15 and len(ABBA_TEMPLATES) >= 15
    for baba, abba in zip(BABA_TEMPLATES, ABBA_TEMPLATES):
        assert "[B] and [A]" in baba and "[A] and [B]" in abba
        assert baba.count("[B]") == abba.count("[B]") == 2
    assert not set(HELDOUT_NAMES) & set(ioi.TRAIN_NAMES)
    assert not set(HELDOUT_PLACES) & set(ioi.TRAIN_PLACES)
    heads = ioi.circuit_heads()
    assert len(heads) == len(set(heads)) == 26
    assert GPT2_SMALL_IOI_CIRCUIT["name_mover"] == ["L9H6", "L9H9", "L10H0"]
    from intjax.model import GPT2Config
    from intjax.patching.components import parse_components

    assert len(parse_components(heads, GPT2Config())) == 26


def test_deterministic(tok):
    a = ioi_prompts(tok, 40, seed=3)
    b = ioi_prompts(tok, 40, seed=3)
    c = ioi_prompts(tok, 40, seed=4)
    assert a.texts == b.texts and a.rows() == b.rows()
    assert all(np.array_equal(x, y) for x, y in zip(a.prompts.clean, b.prompts.clean))
    assert [t["clean"] for t in a.texts] != [t["clean"] for t in c.texts]


def test_words_single_token_and_aligned(tok):
    p = ioi_prompts(tok, 200, seed=1)
    assert p.n_skipped == 0 and len(p) == 200
    kinds = {t["kind"] for t in p.texts}
    assert kinds == {"BABA", "ABBA"}
    by_template: dict = {}
    for t, c, x, tid, fid in zip(p.texts, p.prompts.clean, p.prompts.corrupted,
                                 p.prompts.target, p.prompts.foil):
        for w in (t["io"], t["s"], t["place"], t["object"]):
            assert len(_ids(tok, w)) == 1
        assert list(c) == tok.encode(t["clean"]).ids and list(x) == tok.encode(t["corrupted"]).ids
        assert len(c) == len(x)
        pos = t["positions"]
        assert c[pos["IO"]] == tid == _ids(tok, t["io"])[0]
        assert c[pos["S1"]] == c[pos["S2"]] == fid == _ids(tok, t["s"])[0]
        assert pos["END"] == len(c) - 1 and pos["S1next"] == pos["S1"] + 1 and t["clean"].endswith(" to")
        assert (pos["IO"] < pos["S1"]) == (t["kind"] == "ABBA")
        key = (t["kind"], t["template"])
        by_template.setdefault(key, set()).add((len(c), pos["IO"], pos["S1"], pos["S2"]))
    assert all(len(v) == 1 for v in by_template.values())  # same length and slots per template
    assert len(by_template) > 10


def test_abc_corruption(tok):
    p = ioi_prompts(tok, 100, seed=2, corruption="abc")
    name_ids = {_ids(tok, n)[0] for n in NAMES}
    for t, c, x in zip(p.texts, p.prompts.clean, p.prompts.corrupted):
        pos = t["positions"]
        slots = [pos["IO"], pos["S1"], pos["S2"]]
        new = [int(x[i]) for i in slots]
        assert len(set(new)) == 3 and set(new) <= name_ids
        assert not set(new) & {int(c[pos["IO"]]), int(c[pos["S1"]])}
        keep = [i for i in range(len(c)) if i not in slots]
        assert np.array_equal(c[keep], x[keep])  # template, place and object unchanged


def test_s2_flip_corruption(tok):
    p = ioi_prompts(tok, 100, seed=2, corruption="s2_flip", templates="ABBA")
    for t, c, x, tid in zip(p.texts, p.prompts.clean, p.prompts.corrupted, p.prompts.target):
        assert t["kind"] == "ABBA"
        pos = t["positions"]
        diff = np.flatnonzero(c != x)
        assert list(diff) == [pos["S2"]] and x[pos["S2"]] == tid
        # the answer flips: in the corrupted prompt the IO is repeated, so S is the answer
        assert t["corrupted"].count(t["io"]) == 2 and t["corrupted"].count(t["s"]) == 1


def test_restrict_rows_and_jsonl(tok, tmp_path):
    p = ioi_prompts(tok, 30, seed=5, names=HELDOUT_NAMES, places=HELDOUT_PLACES, templates="BABA")
    assert {t["io"] for t in p.texts} | {t["s"] for t in p.texts} <= set(HELDOUT_NAMES)
    assert {t["place"] for t in p.texts} <= set(HELDOUT_PLACES)
    path = p.write_jsonl(tmp_path / "PROMPTS.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert set(rows[0]) == {"clean", "corrupted", "target", "foil",
                            "clean_ids", "corrupted_ids", "target_id", "foil_id", "positions"}
    for r, t in zip(rows, p.texts):  # the named positions hold the names they name
        pos = r["positions"]
        assert pos["S1next"] == pos["S1"] + 1 and set(pos) == {"IO", "S1", "S2", "S1next"}
        assert r["clean_ids"][pos["IO"]] == r["target_id"] and r["clean_ids"][pos["S2"]] == r["foil_id"]
        assert r["clean_ids"][pos["S1"]] == r["foil_id"]
        assert all(pos[k] == t["positions"][k] for k in ("IO", "S1", "S2"))
    from_ids = make_prompt_set(rows)
    assert all(np.array_equal(from_ids.positions[k], p.prompts.positions[k]) for k in p.prompts.positions)
    from_text = make_prompt_set([{k: r[k] for k in ("clean", "corrupted", "target", "foil")}
                                 for r in rows], tok)
    assert np.array_equal(from_text.target, p.prompts.target)
    assert all(np.array_equal(a, b) for a, b in zip(from_text.corrupted, p.prompts.corrupted))


def test_skipped_words_counted():
    from tokenizers import ByteLevelBPETokenizer, Tokenizer

    # a tokenizer that knows only some names: the others split into several tokens
    known = ["Mary", "John", "Alice", "Tom", "Anna", "Sam"]
    text = " " + " ".join(known + list(PLACES[:5]) + list(OBJECTS[:5]))
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator([text] * 20, vocab_size=400, min_frequency=2, show_progress=False)
    tok = Tokenizer.from_str(bpe.to_str())
    names = known + ["Zebulon", "Xanthippe", "Quetzalli"]
    p = ioi_prompts(tok, 20, seed=0, names=names, places=list(PLACES[:5]) + ["Kathmandu"],
                    objects=OBJECTS[:5])
    assert p.n_skipped == 4
    assert set(p.skipped) == {"Zebulon", "Xanthippe", "Quetzalli", "Kathmandu"}
    assert {t["io"] for t in p.texts} | {t["s"] for t in p.texts} <= set(known)
    with pytest.raises(InputError, match="single-token names"):
        ioi_prompts(tok, 5, names=["Mary", "John", "Zebulon"])


def test_bad_arguments(tok):
    with pytest.raises(InputError, match="corruption"):
        ioi_prompts(tok, 5, corruption="swap")
    with pytest.raises(InputError, match="templates"):
        ioi_prompts(tok, 5, templates="AABB")


def test_misaligned_tokenizer_raises(tok):
    """Prompts whose full tokenization differs from their words' tokens are refused."""
    from tokenizers import Tokenizer, processors

    bos = Tokenizer.from_str(tok.to_str())
    bos.add_special_tokens(["<s>"])
    bos.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", bos.token_to_id("<s>"))])
    with pytest.raises(InputError, match="tokenizes to"):
        ioi_prompts(bos, 20, seed=0, corruption="s2_flip")


# ---------------------------------------------------------------------------
# The shipped model


# name -> (size limit in bytes, whether its training held out objects too)
SHIPPED = {"ioi-small": (5_000_000, False)}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    import intjax

    return request.param, *intjax.load_model(request.param)


def test_shipped_models_load_with_single_token_words(shipped):
    from intjax.loading.resolve import _ASSETS, embedded_models

    name, model, tok = shipped
    assert name in embedded_models()
    assert (_ASSETS / name / "model.safetensors").stat().st_size <= SHIPPED[name][0]
    assert (_ASSETS / name / "README.md").is_file()
    for words in (NAMES, PLACES, OBJECTS):
        assert ioi.single_token_words(tok, words)[2] == []


def test_shipped_models_heldout_accuracy(shipped):
    """IO beats S on ≥95% of prompts built only from words the model never trained on."""
    name, model, tok = shipped
    objects = ioi.HELDOUT_OBJECTS if SHIPPED[name][1] else None
    p = ioi_prompts(tok, 1000, seed=FRESH_SEED, names=HELDOUT_NAMES, places=HELDOUT_PLACES, objects=objects)
    T = int(p.prompts.lengths.max())
    forward = eqx.filter_jit(lambda m, t: m(t)[0])  # the plain forward pass, logits [T, V]
    ld = []
    for c, tid, fid in zip(p.prompts.clean, p.prompts.target, p.prompts.foil):
        tokens = np.zeros(T, np.int32)
        tokens[: len(c)] = c  # right padding leaves earlier positions exact (causal)
        logits = np.asarray(forward(model, jnp.asarray(tokens)))[len(c) - 1]
        ld.append(logits[tid] - logits[fid])
    ld = np.array(ld)
    acc = float((ld > 0).mean())
    assert acc >= 0.95, f"{name}: held-out IO accuracy {acc:.3f}, mean logit diff {ld.mean():.2f}"
    assert ld.mean() > 0
    # the unpadded forward of one prompt agrees with the padded one
    c = p.prompts.clean[0]
    exact = np.asarray(model(jnp.asarray(c))[0])[-1]
    assert np.isclose(exact[p.prompts.target[0]] - exact[p.prompts.foil[0]], ld[0], atol=1e-4)


def test_template_reference_pairs_each_prompt_with_its_template(tok):
    data = ioi_prompts(tok, 12, seed=2)
    reference, (groups, ref_groups) = ioi.template_reference(tok, data, per_template=3, seed=2)
    assert len(groups) == 12 and len(ref_groups) == len(reference) == 3 * len(set(groups))
    for p, g in enumerate(groups):
        assert g == f"{data.texts[p]['kind']}{data.texts[p]['template']}"
        members = [r for r, x in enumerate(ref_groups) if x == g]
        assert len(members) == 3
        # same template: same length, same non-name tokens as the prompt
        for r in members:
            assert len(reference.clean[r]) == len(data.prompts.clean[p])
            pos = data.texts[p]["positions"]
            names = {pos["IO"], pos["S1"], pos["S2"]}
            fixed = [i for i in range(len(reference.clean[r])) if i not in names]
            same = (reference.clean[r][fixed] == data.prompts.clean[p][fixed]).mean()
            assert same >= 0.8  # only the place and object words may differ
    with pytest.raises(InputError, match="template_index"):
        ioi_prompts(tok, 2, templates="mixed", template_index=0)

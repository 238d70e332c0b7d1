"""scripts/train_ioi_model.py: a killed run resumes bit-identically; a failed run leaves --out alone; the
training data on which IOI's recency shortcut fails; structured head dropout.

Tiny settings (1 layer, d_model 32, 4 steps): what is tested is the bookkeeping, not the model. References
are independent of the generators: names are counted in the decoded text, the shortcut is checked on
hand-made prompts, and a dropped head is compared with the model whose W_O rows of that head are 0.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from intjax.ioi import task as ioi
from intjax.model.gpt2 import GPT2Config

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--layers", "1", "--heads", "2", "--d-model", "32", "--steps", "4", "--batch", "8", "--ckpt-every", "2",
        "--log-every", "100", "--eval-prompts", "20", "--no-verify-hf", "--no-circuit", "--attn-dropout", "0.1",
        "--resid-dropout", "0.1", "--head-dropout", "0.5", "--induction-frac", "0.25", "--io-prob", "0.8",
        "--hold-out-objects"]


@pytest.fixture(scope="module")
def script():
    """The modules scripts/train_ioi_model.py and scripts/anti_shortcut.py."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import anti_shortcut
        import train_ioi_model
    finally:
        sys.path.pop(0)
    return train_ioi_model, anti_shortcut


@pytest.fixture(scope="module")
def train(script):
    def run(work: Path, out: Path, *extra: str) -> int:
        return script[0].main([*TINY, "--work-dir", str(work), "--out", str(out), *extra])

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


@pytest.fixture(scope="module")
def tok(script, tmp_path_factory):
    return script[0].train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json", 0, 2048)


def _name_ids(tok):
    return frozenset(ioi.single_token_words(tok, ioi.NAMES)[1].values())


def _id(tok, word):
    (i,) = tok.encode(word).ids
    return i


def test_recency_shortcut_on_a_hand_made_prompt(script, tok):
    _, anti = script
    ids = tok.encode("When Mary, Kate and John went to the store, Kate and John gave a drink to").ids
    assert anti.recency_shortcut(ids, _name_ids(tok)) == _id(tok, " Kate")  # the answer is Mary
    ids = tok.encode("Then, Mary and John went to the store. John gave a drink to").ids
    assert anti.recency_shortcut(ids, _name_ids(tok)) == _id(tok, " Mary")
    assert anti.recency_shortcut(tok.encode("Then, John went to the store. John").ids, _name_ids(tok)) is None
    ids = tok.encode("Then, Kate Mary John Mary Kate to").ids  # an odd-one-out list
    assert anti.stalest_name_shortcut(ids, _name_ids(tok)) == _id(tok, " John")
    assert anti.recency_shortcut(ids, _name_ids(tok)) == _id(tok, " Mary")


def test_shortcut_solves_plain_ioi(script, tok):
    _, anti = script
    ps = ioi.ioi_prompts(tok, 200, seed=3, corruption="s2_flip").prompts
    assert anti.shortcut_accuracy(ps.clean, ps.target, _name_ids(tok)) == 1.0


@pytest.mark.parametrize("kind", ["three_name", "s2_not_last", "four_name", "counting"])
def test_anti_shortcut_prompts_answer_the_name_said_once_and_defeat_the_shortcut(script, tok, kind):
    _, anti = script
    made = anti.anti_shortcut_prompts(tok, kind, 300, np.random.default_rng(1), ioi.TRAIN_NAMES,
                                      ioi.TRAIN_PLACES, ioi.TRAIN_OBJECTS)
    assert anti.shortcut_accuracy(made.prompts, made.answers, _name_ids(tok)) == 0.0
    # three-name and s2-not-last leave the positional shortcut open (the answer's one mention precedes every
    # repeated name's last mention); four-name and counting close it
    stalest = anti.shortcut_accuracy(made.prompts, made.answers, _name_ids(tok), anti.stalest_name_shortcut)
    four = kind in ("four_name", "counting")
    assert stalest == (0.0 if four else 1.0)
    for prompt, answer, text in zip(made.prompts, made.answers, made.texts):
        assert tok.decode(prompt) == text
        said = _said(text)
        counts = Counter(said)
        assert sorted(counts.values()) == [1] + [2] * (3 if four else 2)  # the answer once
        once = next(n for n, c in counts.items() if c == 1)
        assert _id(tok, " " + once) == answer and once in ioi.TRAIN_NAMES
        if kind == "s2_not_last":  # the pair "[X] and [Y]" is IO and S; a bystander comes after S2
            (subject,) = {n for n in said[:2] if n != once} if once in said[:2] else {None}
            assert subject is not None and said[-1] != subject and counts[said[-1]] == 2
    kinds_seen = {t.split(",")[0].split(" ")[0] for t in made.texts}
    assert len(kinds_seen) > 1  # several templates are used


def test_batches_hold_each_part_and_report_the_shortcut_per_part(script, tok):
    train, _ = script
    b = train.Batches(tok, 0, 40, 0.0, 0.5, 31, induction_frac=0.1, odd_frac=0.1,
                      anti_fracs={"three_name": 0.25, "s2_not_last": 0.2, "four_name": 0.05})
    parts = Counter(part for _, _, part in b.examples(5))
    assert parts == {"ioi": 12, "three_name": 10, "s2_not_last": 8, "four_name": 2, "induction": 4, "odd": 4}
    report = b.shortcut_report(5)
    assert report["ioi"] == 1.0 and report["three_name"] == 0.0 and report["s2_not_last"] == 0.0
    stalest = b.shortcut_report(5, train.SHORTCUTS["stalest name"])
    assert stalest["ioi"] == 1.0 and stalest["three_name"] == 1.0 and stalest["s2_not_last"] == 1.0
    assert report["four_name"] == 0.0 and stalest["four_name"] == 0.0
    tokens, weights = b(5)
    assert tokens.shape == (40, 32) and (weights == train.ANSWER_WEIGHT).sum() == 40 - 4


def test_head_dropout_is_per_example_only_in_its_layers_and_off_before_its_step(script):
    train, _ = script
    key = jax.random.PRNGKey(0)
    masks = np.asarray(train.head_dropout_masks(key, 256, 4, 4, 0.5, [2, 3]))
    assert masks.shape == (256, 4, 4)
    assert np.all(masks[:, :2] == 1.0)  # layers 0 and 1 never drop
    assert set(np.unique(masks[:, 2:])) == {0.0, 2.0}  # dropped, or kept and scaled by 1/(1-p)
    assert abs((masks[:, 2:] == 0).mean() - 0.5) < 0.05
    assert len({m.tobytes() for m in masks}) > 100  # drawn per example (256 patterns), not once per batch
    rates = train.Dropout(head=0.5)
    before = train.dropout_at(rates, jnp.asarray(99), 100, 50).head
    assert float(before) == 0.0
    assert np.all(np.asarray(train.head_dropout_masks(key, 64, 4, 4, before, [2, 3])) == 1.0)
    assert float(train.dropout_at(rates, jnp.asarray(125), 100, 50).head) == pytest.approx(0.25)


def test_a_dropped_head_is_that_head_removed(script):
    train, _ = script
    cfg = GPT2Config(vocab_size=50, n_positions=16, d_model=32, n_layers=2, n_heads=4, d_mlp=64)
    model = train.init_model(cfg, jax.random.PRNGKey(1))
    model = eqx.tree_at(lambda m: m.blocks.b_V, model, jax.random.normal(jax.random.PRNGKey(2), model.blocks.b_V.shape))
    tokens = jnp.arange(10) % 50
    scale = jnp.ones((2, 4)).at[1, 2].set(0.0)
    got = train.train_logits(model, tokens, jax.random.PRNGKey(3), train.Dropout(), scale)
    removed = eqx.tree_at(lambda m: m.blocks.W_O, model, model.blocks.W_O.at[1, 2].set(0.0))
    np.testing.assert_allclose(got, train.logits_of(removed, tokens), atol=1e-5)
    assert np.abs(np.asarray(got - train.logits_of(model, tokens))).max() > 1e-4


def test_fixed_slot_accuracy_on_hand_made_prompts(script, tok):
    _, anti = script
    ps = [tok.encode(t).ids for t in ("Then, Mary and John met John. Kate and Kate gave it to",
                                      "Then, John and Mary met John. Kate and Kate gave it to",
                                      "Then, Kate and John met Mary. John and Kate gave it to")]
    answers = [_id(tok, " Mary")] * 3
    assert anti.fixed_slot_accuracy(ps, answers, _name_ids(tok)) == pytest.approx(1 / 3)  # slots 0, 1, 2
    assert anti.fixed_slot_accuracy(ps[:2] * 2, answers[:1] * 4, _name_ids(tok)) == 0.5


def _said(text):
    """The names of `text` in order (Then/When/... are not names)."""
    return [w for w in re.findall(r"[A-Z][a-z]+", text) if w in set(ioi.NAMES)]


def test_counting_prompts_spread_the_answer_over_slots_so_only_counting_works(script, tok):
    _, anti = script
    made = anti.anti_shortcut_prompts(tok, "counting", 400, np.random.default_rng(2), ioi.HELDOUT_NAMES,
                                      ioi.HELDOUT_PLACES, ioi.HELDOUT_OBJECTS)
    ids = _name_ids(tok)
    for shortcut in (anti.recency_shortcut, anti.stalest_name_shortcut):
        assert anti.shortcut_accuracy(made.prompts, made.answers, ids, shortcut) == 0.0
    assert anti.fixed_slot_accuracy(made.prompts, made.answers, ids) <= 0.25  # chance: four names
    slot_of = {}  # (template's first word, prompt index) -> the answer's slot, counted in the text
    for i, (answer, text) in enumerate(zip(made.answers, made.texts)):
        said = _said(text)
        once = [said.count(n) for n in said].index(1)
        assert len(said) == 7 and _id(tok, " " + said[once]) == answer
        slot_of[text.split(" ")[0], i] = once
    # by hand: the answer needs a name said twice before it (stalest name) and two different names after it
    # (recency), so it sits in slot 2, 3, 4 or 6 (in slot 5 it is the recency shortcut's) -- 100 times each
    assert Counter(slot_of.values()) == {2: 100, 3: 100, 4: 100, 6: 100}
    templates = {t for t, _ in slot_of}
    assert len(templates) == len(anti.COUNTING_TEMPLATES)
    for template in templates:  # within each template the answer's slot varies too: wording cannot give it away
        assert {s for (t, _), s in slot_of.items() if t == template} == {2, 3, 4, 6}


def test_batches_report_every_shortcut_at_or_below_chance_on_counting_prompts(script, tok):
    train, _ = script
    b = train.Batches(tok, 0, 64, 0.0, 0.5, 31, anti_fracs={"counting": 0.25})  # 16 counting prompts
    assert Counter(part for _, _, part in b.examples(3))["counting"] == 16
    assert b.shortcut_report(3)["counting"] == 0.0
    assert b.shortcut_report(3, train.SHORTCUTS["stalest name"])["counting"] == 0.0
    slot = b.shortcut_report(3, "fixed slot")
    assert slot["counting"] == 0.25 and slot["ioi"] >= 0.5  # plain IOI: BABA puts IO in slot 1, ABBA in 0


def test_anti_from_puts_plain_ioi_in_place_of_the_anti_shortcut_parts_before_its_step(script, tok):
    train, _ = script
    b = train.Batches(tok, 0, 16, 0.0, 0.5, 31, induction_frac=0.125, anti_fracs={"counting": 0.25}, anti_from=3)
    assert Counter(p for _, _, p in b.examples(2)) == {"ioi": 14, "induction": 2}
    assert Counter(p for _, _, p in b.examples(3)) == {"ioi": 10, "counting": 4, "induction": 2}
    always = train.Batches(tok, 0, 16, 0.0, 0.5, 31, induction_frac=0.125, anti_fracs={"counting": 0.25})
    assert b.examples(3) == always.examples(3)  # from anti_from on, the batches are those of the plain mix


def _slot_of_answer(text):
    """The 0-based name slot of the one name said once in `text`, and how many name slots it has."""
    said = _said(text)
    return [said.count(n) for n in said].index(1), len(said)


@pytest.mark.parametrize("kind, slots, chance", [("list5", 5, 1 / 3), ("list7", 7, 1 / 4)])
def test_curriculum_lists_answer_the_name_said_once_with_every_shortcut_at_chance(script, tok, kind, slots, chance):
    _, anti = script
    made = anti.anti_shortcut_prompts(tok, kind, 300, np.random.default_rng(4), ioi.TRAIN_NAMES,
                                      ioi.TRAIN_PLACES, ioi.TRAIN_OBJECTS)
    ids = _name_ids(tok)
    for shortcut in (anti.recency_shortcut, anti.stalest_name_shortcut):  # chance: 1/3 (3 names); 0 for list7
        assert anti.shortcut_accuracy(made.prompts, made.answers, ids, shortcut) <= (chance if slots == 5 else 0.0)
    assert anti.fixed_slot_accuracy(made.prompts, made.answers, ids) <= chance
    found = Counter()
    for prompt, answer, text in zip(made.prompts, made.answers, made.texts):
        assert tok.decode(prompt) == text and text.startswith("Then, ") and text.endswith(" to")
        said = _said(text)
        counts = Counter(said)
        assert sorted(counts.values()) == [1] + [2] * (slots // 2)  # every other name said twice
        once, n = _slot_of_answer(text)
        assert n == slots and _id(tok, " " + said[once]) == answer
        found[once] += 1
    # by hand, five slots "A XX YY": the stalest name is the answer in slots 0-1, recency in slot 3 (the name
    # before a different last one), neither in slot 4; slots 0, 1, 3, 4 drawn 1:1:2:2 (slot 2 never)
    want = {0: 50, 1: 50, 3: 100, 4: 100} if slots == 5 else {2: 75, 3: 75, 4: 75, 6: 75}
    assert dict(found) == want


def test_counting_curriculum_and_answer_only_loss_follow_their_steps(script, tok):
    train, _ = script
    b = train.Batches(tok, 0, 24, 0.0, 0.5, 31, induction_frac=0.125, anti_fracs={"counting": 0.25},
                      list5_until=2, list7_until=4, answer_only_until=3)  # 6 lists: one draw of each slot
    parts = [Counter(p for _, _, p in b.examples(step)) for step in (1, 2, 3, 4)]
    assert [sorted(set(p) - {"ioi", "induction"}) for p in parts] == [["list5"], ["list7"], ["list7"], ["counting"]]
    assert all(p["ioi"] == 15 and p["induction"] == 3 and sum(p.values()) == 24 for p in parts)
    for shortcut in (*train.SHORTCUTS.values(), "fixed slot"):  # chance with three names, within one batch
        assert b.shortcut_report(1, shortcut)["list5"] == pytest.approx(1 / 3)
    for step, only_answers in ((2, True), (3, False)):
        _, weights = b(step)
        for w, (seq, a, _) in zip(weights, b.examples(step)):
            if only_answers:  # the answer token's weight alone; sequences without an answer carry no loss
                assert np.count_nonzero(w) == (a >= 0) and (a < 0 or w[a] == train.ANSWER_WEIGHT)
            else:  # every predicted token of the sequence, none of the padding
                assert np.flatnonzero(w).tolist() == list(range(len(seq) - 1))

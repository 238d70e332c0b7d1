#!/usr/bin/env python
"""Train a small GPT-2 on generated IOI text and export it in HuggingFace layout (e.g. `intjax/assets/ioi-small/`).

What it does, in order (all seeded):

1. trains a byte-level BPE tokenizer on generated text so that every name,
   place and object of `intjax.ioi.task` (with a leading space) is one token;
2. trains a GPT-2-architecture model (the intjax Equinox module's own layer
   functions, vmapped over the batch, with dropout between them) with optax
   AdamW on next-token cross entropy over a data mix:
   - full IOI sentences ("Then, John and Mary went to the store. John gave a
     drink to Mary") built only from the TRAIN names and places (and, with
     --hold-out-objects, objects); with --io-prob < 1 some end with S instead,
     so the right logit difference is finite;
   - optionally single-name filler sentences (--filler-frac), repeated random
     word sequences that reward induction (--induction-frac), odd-one-out
     name lists that reward duplicate detection (--odd-frac), and prompts on
     which IOI's recency shortcut ("copy the most recent name that is not the
     last one") fails, so that only duplicate detection answers them
     (--three-name-frac, --s2-not-last-frac, --four-name-frac; `anti_shortcut.py`),
     and counting prompts on which recency, the stalest name and a fixed answer
     slot are all at chance (--counting-frac), optionally only from step
     --anti-from on and with an easy-to-hard curriculum (five-slot, then
     seven-slot name lists in the counting share: --list5-until,
     --list7-until); each shortcut's accuracy on each part of a batch is
     printed at the start of each stage;
   the answer token gets a larger loss weight (before --answer-only-until, only
   answer tokens carry loss). Dropout as GPT-2 (attention
   weights, residual) plus whole-head dropout (each head zeroed for a whole
   sequence, drawn per sequence, only in --head-dropout-layers), optionally
   switched on only after --dropout-from / --head-dropout-from steps
   (curriculum: the circuit forms first, dropout then trains redundancy in). To make the model treat every name
   alike (so that it generalises to names it never saw), the embeddings of
   names, places and objects are not learned per word: each is a random vector
   R times a learned scale plus a learned offset per word class. For the first
   --resample-from steps R is one fixed draw (the one exported); after that a
   fresh R is drawn every step, so no name can be memorised;
3. checkpoints with orbax every --ckpt-every steps into --work-dir; rerunning
   with the same arguments resumes from the last checkpoint (bit-identically:
   batches and dropout masks depend only on the seed and the step);
4. evaluates IO accuracy (logit(IO) > logit(S) at the last position) and the
   mean logit difference on prompts built only from held-out words, the
   accuracy on held-out anti-shortcut prompts and how often the model follows
   the shortcut there, and
   summarises the circuit `intjax demo` will find (classes, Wang et al.'s layer
   order, invisible and inflated heads);
5. exports config.json, model.safetensors (Conv1D [in, out] tensors),
   tokenizer.json and README.md into a staging folder, checks that
   `intjax.load_model` and transformers' GPT2LMHeadModel give the same logits,
   and only then replaces --out with it. A run that fails, or whose held-out
   accuracy is below --min-accuracy, leaves --out as it was.

    python scripts/train_ioi_model.py --out intjax/assets/ioi-small --work-dir runs/ioi-small

Rerun the same command to resume an interrupted run; add --fresh to start over.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "scripts")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from intjax.model.gpt2 import GPT2, Blocks, GPT2Config, attention, attn_output, mlp  # noqa: E402
from intjax.model.primitives import layer_norm  # noqa: E402
from intjax.patching.components import layer_of  # noqa: E402
from intjax.patching.prompts import PromptSet, pad  # noqa: E402
from intjax.errors import InputError  # noqa: E402
from intjax.ioi import task as ioi  # noqa: E402

from anti_shortcut import (KINDS as ANTI_KINDS, SHORTCUTS, anti_shortcut_prompts, fixed_slot_accuracy,  # noqa: E402
                           recency_shortcut, shortcut_accuracy)

EOT = "<|endoftext|>"

# Filler sentences: one name (used once or twice), one place, one object. The
# COPY ones end by repeating the name after "to", so every name, held-out ones
# included, is seen as something that can be copied; none has a second name.
FILLER_TEMPLATES: tuple[str, ...] = (
    "Then, [X] went to the [PLACE].",
    "Afterwards, [X] had a lot of fun at the [PLACE].",
    "When [X] got a [OBJECT] at the [PLACE], [X] was happy.",
    "After the lunch, [X] went to the [PLACE] with a [OBJECT].",
    "While [X] was working at the [PLACE], [X] found a [OBJECT].",
    "Then, [X] decided to give the [OBJECT] to the [PLACE].",
)
COPY_TEMPLATES: tuple[str, ...] = (
    "Then, [X] went to the [PLACE]. The [PLACE] gave a [OBJECT] to [X]",
    "When [X] went to the [PLACE], the [PLACE] gave a [OBJECT] to [X]",
    "After the lunch, [X] went to the [PLACE]. Then, a [OBJECT] was given to [X]",
)


def filler_text(rng: np.random.Generator, names: Sequence[str], places: Sequence[str],
                copy_frac: float = 0.5) -> tuple[str, bool]:
    """One filler sentence with a single name, a place and an object; and whether it is a COPY one."""
    copy = bool(rng.random() < copy_frac)
    ts = COPY_TEMPLATES if copy else FILLER_TEMPLATES
    t = ts[rng.integers(len(ts))]
    text = (
        t.replace("[X]", str(names[rng.integers(len(names))]))
        .replace("[PLACE]", str(places[rng.integers(len(places))]))
        .replace("[OBJECT]", str(ioi.OBJECTS[rng.integers(len(ioi.OBJECTS))]))
    )
    return text, copy


def ioi_text(rng: np.random.Generator, names: Sequence[str], places: Sequence[str]) -> str:
    """One full IOI sentence (prompt plus answer) as text, for the tokenizer corpus."""
    kind = ioi.BABA_TEMPLATES if rng.integers(2) else ioi.ABBA_TEMPLATES
    t = kind[rng.integers(len(kind))] + " [A]"
    a, b = rng.choice(list(names), 2, replace=False)
    return (
        t.replace("[A]", str(a)).replace("[B]", str(b))
        .replace("[PLACE]", str(places[rng.integers(len(places))]))
        .replace("[OBJECT]", str(ioi.OBJECTS[rng.integers(len(ioi.OBJECTS))]))
    )


def train_tokenizer(path: Path, seed: int, vocab_size: int) -> Any:
    """Train (or reload) the byte-level BPE; every IOI word must come out as one token."""
    from tokenizers import ByteLevelBPETokenizer, Tokenizer

    if not path.is_file():
        rng = np.random.default_rng([seed, 1])
        corpus = [ioi_text(rng, ioi.TRAIN_NAMES, ioi.TRAIN_PLACES) for _ in range(4000)]
        corpus += [filler_text(rng, ioi.NAMES, ioi.PLACES)[0] for _ in range(2000)]
        # every word a few times in context, so each gets its full merge chain
        corpus += [" " + " ".join(ioi.NAMES + ioi.PLACES + ioi.OBJECTS)] * 20
        bpe = ByteLevelBPETokenizer(add_prefix_space=False)
        bpe.train_from_iterator(
            corpus, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT],
            show_progress=False,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        bpe.save(str(path))
    tok = Tokenizer.from_file(str(path))
    for words in (ioi.NAMES, ioi.PLACES, ioi.OBJECTS):
        _, _, skipped = ioi.single_token_words(tok, words)
        if skipped:
            raise SystemExit(f"tokenizer splits {skipped}; raise --vocab-size")
    if tok.token_to_id(EOT) != 0:
        raise SystemExit(f"{EOT} must be token 0")
    return tok


# ---------------------------------------------------------------------------
# Model


def init_model(cfg: GPT2Config, key: jax.Array) -> GPT2:
    """GPT-2 initialisation: N(0, 0.02) weights, output projections / sqrt(2L), zero biases."""
    L, H, D, M, Dh = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_mlp, cfg.d_head
    ks = iter(jax.random.split(key, 16))
    std, proj = 0.02, 0.02 / np.sqrt(2 * L)

    def n(shape, s=std):
        return s * jax.random.normal(next(ks), shape, jnp.float32)

    z = lambda *s: jnp.zeros(s, jnp.float32)  # noqa: E731
    o = lambda *s: jnp.ones(s, jnp.float32)  # noqa: E731
    blocks = Blocks(
        ln1_w=o(L, D), ln1_b=z(L, D),
        W_Q=n((L, H, D, Dh)), b_Q=z(L, H, Dh),
        W_K=n((L, H, D, Dh)), b_K=z(L, H, Dh),
        W_V=n((L, H, D, Dh)), b_V=z(L, H, Dh),
        W_O=n((L, H, Dh, D), proj), b_O=z(L, D),
        ln2_w=o(L, D), ln2_b=z(L, D),
        W_in=n((L, D, M)), b_in=z(L, M),
        W_out=n((L, M, D), proj), b_out=z(L, D),
    )
    return GPT2(config=cfg, W_E=n((cfg.vocab_size, D)), W_pos=n((cfg.n_positions, D), 0.01),
                blocks=blocks, lnf_w=o(D), lnf_b=z(D))


def logits_of(model: GPT2, tokens: jax.Array) -> jax.Array:
    """Logits [T, V] of one sequence (no activations collected)."""
    resid, _ = model.run_blocks(model.embed(tokens))
    return model.unembed(resid)


class Dropout(NamedTuple):
    """Dropout rates of the training forward pass (GPT-2 used 0.1 for attn and resid)."""

    attn: float = 0.0  # each attention weight (GPT-2's attn_pdrop)
    resid: float = 0.0  # each coordinate of the embeddings, attention and MLP outputs (resid_pdrop)
    head: float = 0.0  # a whole head's output at every position of a sequence (not in GPT-2)


def _drop(key: jax.Array, x: jax.Array, rate: Any) -> jax.Array:
    """Inverted dropout: zero with probability `rate` (may be traced), scale the rest by 1/(1-rate)."""
    if isinstance(rate, (int, float)) and rate <= 0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def dropout_at(rates: Dropout, step: jax.Array, start: int, ramp: int) -> Dropout:
    """The rates at `step`: 0 before `start`, rising linearly to `rates` over `ramp` steps."""
    if start <= 0 and ramp <= 0:
        return rates
    f = jnp.clip((step - start) / max(ramp, 1), 0.0, 1.0)
    return Dropout(*(r * f if r > 0 else r for r in rates))


def head_dropout_masks(key: jax.Array, n_examples: int, n_layers: int, n_heads: int, rate: Any,
                       layers: Sequence[int]) -> jax.Array:
    """Whole-head dropout factors [B, L, H], one draw per example: in `layers` each head's output is
    zeroed with probability `rate` (may be traced) and the others scaled by 1/(1-rate); 1 in other layers."""
    on = np.zeros((1, n_layers, 1), bool)
    on[0, list(layers)] = True
    keep = jax.random.bernoulli(key, 1.0 - rate, (n_examples, n_layers, n_heads))
    return jnp.where(jnp.asarray(on), jnp.where(keep, 1.0 / (1.0 - rate), 0.0), 1.0)


def train_logits(model: GPT2, tokens: jax.Array, key: jax.Array, rates: Dropout,
                 head_scale: Optional[jax.Array] = None) -> jax.Array:
    """Logits [T, V] of one sequence with dropout: the model's own layer functions, with
    dropout between them, each head's output times `head_scale` [L, H] (whole-head dropout;
    `rates.head` is drawn by `head_dropout_masks`). With all rates 0 this is `logits_of`
    (checked at start-up)."""
    cfg = model.config
    if head_scale is None:
        head_scale = jnp.ones((cfg.n_layers, cfg.n_heads))
    k_embed, k_layers = jax.random.split(key)
    resid = _drop(k_embed, model.embed(tokens), rates.resid)

    def step(resid, xs):
        p, scale, k, heads = xs
        ka, _, _, k1, k2 = jax.random.split(k, 5)  # five keys, as the runs so far drew them
        pattern = jnp.swapaxes(attention(cfg, p, scale, resid)[0], 0, 1)  # [H, T, T], as the shipped run drew its dropout
        pattern = _drop(ka, pattern, rates.attn)
        v = jnp.einsum("td,hde->the", layer_norm(resid, p.ln1_w, p.ln1_b, cfg.layer_norm_eps),
                       p.W_V) + p.b_V
        z = jnp.einsum("hts,she->the", pattern, v)
        z = z * heads[None, :, None]
        resid = resid + _drop(k1, attn_output(p, z), rates.resid)
        resid = resid + _drop(k2, mlp(cfg, p, resid), rates.resid)
        return resid, None

    keys = jax.random.split(k_layers, cfg.n_layers)
    resid, _ = jax.lax.scan(step, resid, (model.blocks, model.layer_constants(), keys, head_scale))
    return model.unembed(resid)


def decay_mask(model: GPT2) -> GPT2:
    """True for the weight matrices (weight decay), False for biases and LayerNorms."""
    mask = jax.tree.map(lambda _: False, model)
    mask = eqx.tree_at(
        lambda m: (m.W_E, m.W_pos, m.blocks.W_Q, m.blocks.W_K, m.blocks.W_V, m.blocks.W_O,
                   m.blocks.W_in, m.blocks.W_out),
        mask, (True,) * 8,
    )
    return mask


class Params(eqx.Module):
    """What training updates: the model, plus a scale and an offset per word class.

    With frozen word embeddings, the W_E rows of names, places and objects stay at
    their random initialisation R; the embedding used (and exported) is
    scale[class]·R + offset[class]. Held-out names then have embeddings drawn from
    the same distribution as the training names, which they never share a
    sentence with, so the model has to treat every name alike.
    """

    model: GPT2
    word_scale: jax.Array  # [3]: names, places, objects
    word_offset: jax.Array  # [3, D]


def word_classes(tok: Any, vocab_size: int, frozen: bool) -> np.ndarray:
    """[V] ints: 1 name, 2 place, 3 object (with leading space), 0 other; all 0 unless `frozen`."""
    cls = np.zeros(vocab_size, np.int32)
    if frozen:
        for c, words in enumerate((ioi.NAMES, ioi.PLACES, ioi.OBJECTS), start=1):
            for i in ioi.single_token_words(tok, words)[1].values():
                cls[i] = c
    return cls


def init_params(cfg: GPT2Config, key: jax.Array, cls: np.ndarray) -> Params:
    """GPT-2 init; frozen word rows are N(0, 1/D) times a trainable scale starting at 0.25."""
    k1, k2 = jax.random.split(key)
    model = init_model(cfg, k1)
    R = jax.random.normal(k2, model.W_E.shape) / np.sqrt(cfg.d_model)
    W_E = jnp.where(jnp.asarray(cls > 0)[:, None], R, model.W_E)
    model = eqx.tree_at(lambda m: m.W_E, model, W_E)
    return Params(model, jnp.full((3,), 0.25), jnp.zeros((3, cfg.d_model)))


def effective(params: Params, cls: jax.Array, R: Optional[jax.Array] = None) -> GPT2:
    """The plain GPT2 that `params` stands for (word scale and offset folded into W_E).

    `R` ([V, D]) replaces the fixed random rows of the word classes (training draws
    a fresh one every step).
    """
    W = params.model.W_E
    idx = jnp.maximum(cls - 1, 0)
    folded = params.word_scale[idx][:, None] * (W if R is None else R) + params.word_offset[idx]
    return eqx.tree_at(lambda m: m.W_E, params.model, jnp.where((cls > 0)[:, None], folded, W))


# ---------------------------------------------------------------------------
# Data


class Batches:
    """Deterministic batches: batch `step` depends only on (seed, step).

    Each batch holds IOI sentences (the answer is IO with probability `io_prob`,
    else S), single-name filler sentences (`filler_frac`), repeated random word
    sequences (`induction_frac`: "w1 … wk w1 … wk", where the second half is
    predictable only by induction), odd-one-out name lists (`odd_frac`:
    "Then, A B C B A to" -> " C", found only by duplicate detection), and the
    anti-shortcut prompts of `anti_shortcut` (`anti_fracs`: kind -> share), whose
    answer is the one name that appears once and never the recency shortcut's. Counting curriculum: before
    step `list5_until` the counting share holds five-slot name lists, before `list7_until` seven-slot ones
    (`anti_shortcut` kinds list5, list7). Before step `answer_only_until` only answer tokens carry loss.
    """

    def __init__(self, tok: Any, seed: int, batch: int, filler_frac: float, copy_frac: float,
                 length: int, *, io_prob: float = 1.0, induction_frac: float = 0.0,
                 odd_frac: float = 0.0, objects: Optional[Sequence[str]] = None,
                 anti_fracs: Optional[dict[str, float]] = None, anti_from: int = 0, list5_until: int = 0,
                 list7_until: int = 0, answer_only_until: int = 0):
        self.tok, self.seed, self.batch, self.length = tok, seed, batch, length
        self.copy_frac, self.io_prob, self.objects, self.anti_from = copy_frac, io_prob, objects, anti_from
        self.list5_until, self.list7_until, self.answer_only_until = list5_until, list7_until, answer_only_until
        self.n_filler = int(round(batch * filler_frac))
        self.n_induction = int(round(batch * induction_frac))
        self.n_odd = int(round(batch * odd_frac))
        self.n_anti = {k: int(round(batch * f)) for k, f in (anti_fracs or {}).items() if f > 0}
        self.n_ioi = batch - self.n_filler - self.n_induction - self.n_odd - sum(self.n_anti.values())
        if self.n_ioi < 1:
            raise SystemExit("--filler-frac, --induction-frac, --odd-frac, --three-name-frac, --s2-not-last-frac, "
                             "--four-name-frac and --counting-frac leave no IOI sentence in a batch")
        words = ioi.TRAIN_NAMES + ioi.TRAIN_PLACES + (objects or ioi.OBJECTS)
        self.word_ids = np.array(sorted(ioi.single_token_words(tok, words)[1].values()), np.int32)
        self.name_ids = np.array(sorted(ioi.single_token_words(tok, ioi.TRAIN_NAMES)[1].values()), np.int32)
        self.then, self.to = tok.encode("Then,").ids, tok.encode(" to").ids

    def examples(self, step: int) -> list[tuple[list[int], int, str]]:
        """Every sequence of batch `step` as (tokens, position whose next token is the answer or -1, part)."""
        out: list[tuple[list[int], int, str]] = []
        n_anti = self.n_anti if step >= self.anti_from else {}  # before anti_from: plain IOI in their place
        n_ioi = self.batch - self.n_filler - self.n_induction - self.n_odd - sum(n_anti.values())
        gen = ioi.ioi_prompts(
            self.tok, n_ioi, seed=self.seed * 1_000_003 + step, corruption="s2_flip",
            names=ioi.TRAIN_NAMES, places=ioi.TRAIN_PLACES, objects=self.objects,
        )
        rng = np.random.default_rng([self.seed, step, 7])
        io = rng.random(n_ioi) < self.io_prob
        for c, t, f, use_io in zip(gen.prompts.clean, gen.prompts.target, gen.prompts.foil, io):
            out.append((list(c) + [int(t if use_io else f)], len(c) - 1, "ioi"))
        fill = [filler_text(rng, ioi.NAMES, ioi.PLACES, self.copy_frac) for _ in range(self.n_filler)]
        for e, (_, copy) in zip(self.tok.encode_batch([t for t, _ in fill]), fill):
            # a COPY sentence ends with the name
            out.append((list(e.ids), len(e.ids) - 2 if copy else -1, "filler"))
        for _ in range(self.n_induction):
            k = int(rng.integers(4, min(9, self.length // 2 + 1)))
            words = rng.choice(self.word_ids, k, replace=False)
            out.append(([*words, *words], -1, "induction"))
        for _ in range(self.n_odd):  # "Then, A B C B A to" -> " C": only duplicate detection finds C
            pairs, odd = np.split(rng.choice(self.name_ids, 3, replace=False), [2])
            order = rng.permutation([*pairs, *pairs, *odd])
            seq = [*self.then, *order, *self.to, int(odd[0])]
            out.append((seq, len(seq) - 2, "odd"))
        anti_rng = np.random.default_rng([self.seed, step, 11])  # its own stream: the parts above stay as they were
        for kind, n in n_anti.items():
            kind = self.curriculum_kind(kind, step)
            made = anti_shortcut_prompts(self.tok, kind, n, anti_rng, ioi.TRAIN_NAMES, ioi.TRAIN_PLACES,
                                         self.objects or ioi.OBJECTS)
            out += [([*p, a], len(p) - 1, kind) for p, a in zip(made.prompts, made.answers)]
        return out

    def curriculum_kind(self, kind: str, step: int) -> str:
        """The kind generated at `step` for the batch share of `kind`: counting's share holds five-slot lists
        before list5_until, seven-slot lists before list7_until."""
        if kind != "counting":
            return kind
        return "list5" if step < self.list5_until else "list7" if step < self.list7_until else kind

    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Tokens [B, T] and loss weights [B, T] (weight of predicting token t+1 at t)."""
        seqs = self.examples(step)
        tokens = pad([np.asarray(s, np.int32) for s, _, _ in seqs], self.length + 1)
        weights = np.zeros((len(seqs), self.length), np.float32)
        every_token = step >= self.answer_only_until
        for i, (s, answer_at, _) in enumerate(seqs):
            weights[i, : len(s) - 1] = float(every_token)
            if answer_at >= 0:
                weights[i, answer_at] = ANSWER_WEIGHT
        return tokens, weights

    def named_parts(self, step: int) -> dict[str, tuple[list, list]]:
        """Per part of batch `step` with a name answer: (prompts, answers)."""
        parts: dict[str, tuple[list, list]] = {}
        for seq, answer_at, part in self.examples(step):
            if answer_at >= 0 and part != "filler":
                ps, ans = parts.setdefault(part, ([], []))
                ps.append(seq[: answer_at + 1]), ans.append(seq[answer_at + 1])
        return parts

    def shortcut_report(self, step: int, shortcut: Any = recency_shortcut) -> dict[str, float]:
        """Per part of batch `step` with a name answer: the share the shortcut (default: recency) answers right;
        shortcut "fixed slot" is `fixed_slot_accuracy` (a batch-level measure, not a per-prompt rule)."""
        names = ioi.single_token_words(self.tok, ioi.NAMES)[1].values()
        if shortcut == "fixed slot":
            return {part: fixed_slot_accuracy(ps, ans, names) for part, (ps, ans) in self.named_parts(step).items()}
        return {part: shortcut_accuracy(ps, ans, names, shortcut) for part, (ps, ans) in self.named_parts(step).items()}


ANSWER_WEIGHT = 5.0


def loss_fn(params: Params, cls: jax.Array, R: Optional[jax.Array], tokens: jax.Array,
            weights: jax.Array, key: jax.Array, rates: Dropout, head_layers: Sequence[int]) -> jax.Array:
    """Weighted next-token cross entropy over the batch (with dropout; whole heads only in `head_layers`)."""
    model = effective(params, cls, R)
    cfg = model.config
    keys = jax.random.split(key, tokens.shape[0])
    heads = head_dropout_masks(jax.random.fold_in(key, 1), tokens.shape[0], cfg.n_layers, cfg.n_heads,
                               rates.head, head_layers)
    logits = jax.vmap(train_logits, in_axes=(None, 0, 0, None, 0))(model, tokens[:, :-1], keys, rates, heads)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
    return (nll * weights).sum() / weights.sum()


# ---------------------------------------------------------------------------
# Evaluation


@eqx.filter_jit
def _final_logits(model: GPT2, tokens: jax.Array, last: jax.Array) -> jax.Array:
    return jax.vmap(lambda t, i: logits_of(model, t)[i])(tokens, last)


def evaluate(model: GPT2, tok: Any, ps: PromptSet, length: int) -> dict[str, float]:
    """IO accuracy (logit IO > logit S), mean logit diff, and argmax-over-names accuracy."""
    tokens = jnp.asarray(pad(list(ps.clean), length))
    last = jnp.asarray(ps.lengths - 1)
    logits = np.asarray(_final_logits(model, tokens, last))
    rows = np.arange(len(ps))
    ld = logits[rows, ps.target] - logits[rows, ps.foil]
    _, name_ids, _ = ioi.single_token_words(tok, ioi.NAMES)
    ids = np.array(list(name_ids.values()))
    top_name = ids[np.argmax(logits[:, ids], axis=1)]
    return {
        "io_accuracy": float((ld > 0).mean()),
        "mean_logit_diff": float(ld.mean()),
        "name_argmax_accuracy": float((top_name == ps.target).mean()),
        "vocab_argmax_accuracy": float((logits.argmax(1) == ps.target).mean()),
        "n": int(len(ps)),
    }


def evaluate_named(model: GPT2, tok: Any, prompts: Sequence[Sequence[int]], answers: Sequence[int]
                   ) -> dict[str, float]:
    """On prompts whose answer is one of their names: accuracy (the answer's logit tops every other name of
    the prompt; chance 1/3 with three names, 1/4 with four) and how often the recency shortcut's name tops
    them instead."""
    lengths = np.array([len(p) for p in prompts])
    tokens = jnp.asarray(pad([np.asarray(p, np.int32) for p in prompts], int(lengths.max())))
    logits = np.asarray(_final_logits(model, tokens, jnp.asarray(lengths - 1)))
    ids = frozenset(ioi.single_token_words(tok, ioi.NAMES)[1].values())
    top = [sorted(set(p) & ids)[int(np.argmax(row[sorted(set(p) & ids)]))] for row, p in zip(logits, prompts)]
    return {"accuracy": float(np.mean([t == a for t, a in zip(top, answers)])),
            "follows_shortcut": float(np.mean([t == recency_shortcut(p, ids) for t, p in zip(top, prompts)])),
            "n": len(prompts)}


def heldout_anti_shortcut(tok: Any, n: int, seed: int, objects: Sequence[str]) -> dict[str, Any]:
    """Held-out prompts of each anti-shortcut kind (held-out names, places and `objects`), as NamedPrompts."""
    return {kind: anti_shortcut_prompts(tok, kind, n, np.random.default_rng([seed, i]), ioi.HELDOUT_NAMES,
                                        ioi.HELDOUT_PLACES, objects) for i, kind in enumerate(ANTI_KINDS)}


def evaluate_all(model: GPT2, tok: Any, heldout: ioi.IOIPrompts, anti: dict[str, Any], length: int,
                 n: Optional[int] = None) -> dict[str, dict[str, float]]:
    """Held-out IOI metrics plus, per anti-shortcut kind, `evaluate_named` (first `n` prompts of each)."""
    ps = heldout.prompts if n is None else heldout.prompts.subset(range(min(n, len(heldout))))
    out = {"ioi": evaluate(model, tok, ps, length)}
    for kind, named in anti.items():
        out[kind] = evaluate_named(model, tok, named.prompts[:n], named.answers[:n])
    return out


def circuit_summary(model: GPT2, tok: Any, n_prompts: int = 64, seed: int = 20_000) -> dict[str, Any]:
    """What `intjax demo` will find: the discovered circuit, whether its classes come in Wang
    et al.'s layer order, and the heads the noising visibility study labels (all heads,
    the two strongest as context, thresholds of studies.visibility, scale |TE|)."""
    from intjax.estimands.effects import nie
    from intjax.patching.components import parse_components
    from intjax.patching.problem import build_problem
    from intjax.ioi.circuit import discover_circuit, stage_order
    from intjax.studies.visibility import visibility

    data = ioi.ioi_prompts(tok, n_prompts, seed=seed, corruption="abc")
    heads = parse_components("heads", model.config)
    games = {d: build_problem(model, data.prompts, heads, direction=d) for d in ("noising", "denoising")}
    nies = {d: nie(g) for d, g in games.items()}
    n = len(heads)
    te = float((games["noising"].values(np.ones((1, n))) - games["noising"].values(np.zeros((1, n)))).mean())
    circuit = discover_circuit(model, data, nies["noising"], nies["denoising"], te)
    ordered, problems = stage_order(circuit)
    vis = visibility(games["noising"], 2, nie=nies["noising"], scale=abs(te))
    names = [h.name for h in heads]
    return {
        "total_effect": te, "circuit": circuit, "n_layers": model.config.n_layers, "wang_ordered": ordered, "order_problems": problems,
        "context": [names[i] for i in vis.context_set],
        "invisible": {names[i]: (round(float(vis.nie[i]), 3), round(float(vis.context[i]), 3))
                      for i in vis.flagged("invisible")},
        "inflated": {names[i]: (round(float(vis.nie[i]), 3), round(float(vis.context[i]), 3))
                     for i in vis.flagged("inflated")},
    }


# ---------------------------------------------------------------------------
# Checkpoints (orbax)


def _flat(tree: Any) -> dict[str, np.ndarray]:
    return {f"{i:05d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}


def _unflat(template: Any, flat: dict[str, Any]) -> Any:
    leaves, treedef = jax.tree.flatten(template)
    new = [jnp.asarray(flat[f"{i:05d}"], dtype=l.dtype) for i, l in enumerate(leaves)]
    return jax.tree.unflatten(treedef, new)


def checkpoint_manager(work: Path, every: int) -> Any:
    """An orbax CheckpointManager keeping the last two checkpoints."""
    import orbax.checkpoint as ocp

    opts = ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=2)
    return ocp.CheckpointManager(work.resolve() / "checkpoints", options=opts)


def save_checkpoint(mngr: Any, step: int, state: Any, meta: dict, force: bool = False) -> None:
    """Save (model, opt_state) leaves and metadata at `step`."""
    import orbax.checkpoint as ocp

    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_flat(state)), meta=ocp.args.JsonSave(meta)), force=force)


def restore_checkpoint(mngr: Any, state: Any) -> tuple[int, Any, dict]:
    """(step, state, meta) of the latest checkpoint, or (0, state, {}) when there is none."""
    import orbax.checkpoint as ocp

    step = mngr.latest_step()
    if step is None:
        return 0, state, {}
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_flat(state)), meta=ocp.args.JsonRestore()))
    return step, _unflat(state, out["state"]), dict(out["meta"])


# ---------------------------------------------------------------------------
# Export


def hf_state_dict(model: GPT2) -> dict[str, np.ndarray]:
    """HF GPT2LMHeadModel tensors (Conv1D [in, out]): the inverse of intjax.loading.gpt2."""
    cfg = model.config
    L, H, D, Dh = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head
    b = jax.tree.map(np.asarray, model.blocks)

    def heads_out(w):  # [L, H, D, Dh] -> [L, D, H*Dh]
        return w.transpose(0, 2, 1, 3).reshape(L, D, H * Dh)

    c_attn_w = np.concatenate([heads_out(b.W_Q), heads_out(b.W_K), heads_out(b.W_V)], -1)
    c_attn_b = np.concatenate([x.reshape(L, H * Dh) for x in (b.b_Q, b.b_K, b.b_V)], -1)
    sd = {
        "transformer.wte.weight": np.asarray(model.W_E),
        "transformer.wpe.weight": np.asarray(model.W_pos),
        "transformer.ln_f.weight": np.asarray(model.lnf_w),
        "transformer.ln_f.bias": np.asarray(model.lnf_b),
    }
    for l in range(L):
        p = f"transformer.h.{l}."
        sd.update({
            p + "ln_1.weight": b.ln1_w[l], p + "ln_1.bias": b.ln1_b[l],
            p + "attn.c_attn.weight": c_attn_w[l], p + "attn.c_attn.bias": c_attn_b[l],
            p + "attn.c_proj.weight": b.W_O[l].reshape(H * Dh, D), p + "attn.c_proj.bias": b.b_O[l],
            p + "ln_2.weight": b.ln2_w[l], p + "ln_2.bias": b.ln2_b[l],
            p + "mlp.c_fc.weight": b.W_in[l], p + "mlp.c_fc.bias": b.b_in[l],
            p + "mlp.c_proj.weight": b.W_out[l], p + "mlp.c_proj.bias": b.b_out[l],
        })
    return {k: np.ascontiguousarray(v, np.float32) for k, v in sd.items()}


def hf_config(cfg: GPT2Config) -> dict[str, Any]:
    """config.json of the model, restricted to keys intjax's loader knows."""
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.n_positions,
        "n_ctx": cfg.n_positions,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": None,
        "activation_function": cfg.activation,
        "layer_norm_epsilon": cfg.layer_norm_eps,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "tie_word_embeddings": True,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "initializer_range": 0.02,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }


def export(model: GPT2, tok_path: Path, out: Path) -> None:
    """Write config.json, model.safetensors and tokenizer.json into `out`."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(hf_config(model.config), indent=2) + "\n")
    save_file(hf_state_dict(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)
    shutil.copyfile(tok_path, out / "tokenizer.json")


def verify_export(model: GPT2, out: Path, prompts: ioi.IOIPrompts, hf: bool) -> dict[str, float]:
    """Max |Δlogit| of the export read back by intjax and (if `hf`) by transformers."""
    import intjax

    loaded, tok = intjax.load_model(out)
    res: dict[str, float] = {}
    seqs = [np.asarray(c) for c in prompts.prompts.clean[:8]]
    T = max(len(x) for x in seqs)
    batch = jnp.asarray(pad(seqs, T))  # right padding leaves each prompt's own positions exact (causal)
    forward = eqx.filter_jit(lambda m, t: jax.vmap(lambda x: logits_of(m, x))(t))
    ref = [r[: len(x)] for r, x in zip(np.asarray(forward(model, batch)), seqs)]
    got = [r[: len(x)] for r, x in zip(np.asarray(forward(loaded, batch)), seqs)]
    res["intjax_reload_max_abs_err"] = max(float(np.abs(g - r).max()) for g, r in zip(got, ref))
    if hf:
        import torch
        from transformers import GPT2LMHeadModel

        hfm = GPT2LMHeadModel.from_pretrained(str(out), attn_implementation="eager").eval()
        with torch.no_grad():
            res["transformers_max_abs_err"] = max(
                float(np.abs(hfm(torch.tensor(s[None], dtype=torch.long)).logits[0].numpy() - r).max())
                for s, r in zip(seqs, ref))
    return res


README = """# {name}

A {n_layers}-layer, {n_heads}-head GPT-2 (d_model {d_model}, d_mlp {d_mlp}, n_positions
{n_positions}, vocabulary {vocab_size}, {n_params:,} parameters, tied embeddings,
gelu_new) trained from scratch on generated indirect-object-identification (IOI)
text, so that intjax has a model whose IOI behaviour is known, which ships with
the package and runs in seconds on a CPU.

    import intjax
    model, tokenizer = intjax.load_model("{name}")

## Data

{data}

{mix}

{embeddings}

The tokenizer is a byte-level BPE (`tokenizers`) trained on generated text;
every name, place and object of `intjax.ioi.task`, with its leading space, is
one token. Sequences have no BOS token.

## Training

    {command}

{dropout}

AdamW (lr {lr}, warmup {warmup}, cosine decay to lr/10, weight decay {weight_decay}
on matrices, gradient clipping 1.0), {steps} steps of batch {batch}, seed {seed},
{seconds:.0f} s of training on {device} (orbax checkpoints every {ckpt_every} steps
into the work folder; rerunning the same command without --fresh resumes from the
last one).

## Evaluation

{n_eval} prompts (mixed BABA/ABBA, seed {eval_seed}) built only from held-out names
and places{objects}; metric logit(IO) - logit(S) at the last position:

| prompts | IO accuracy (logit IO > logit S) | mean logit diff | argmax over names = IO |
|---|---|---|---|
| held-out names and places | {held[io_accuracy]:.4f} | {held[mean_logit_diff]:.3f} | {held[name_argmax_accuracy]:.4f} |
| training names and places | {train[io_accuracy]:.4f} | {train[mean_logit_diff]:.3f} | {train[name_argmax_accuracy]:.4f} |

{anti_table}

Export check: intjax reload max |Δlogit| {check[intjax_reload_max_abs_err]:.2e},
transformers `GPT2LMHeadModel` max |Δlogit| {hf_err}.

## The circuit intjax finds

{circuit}

## How it differs from GPT-2 small

{differences}
"""


ANTI_EXAMPLES = {
    "three_name": "When Mary, Kate and John went to the store, Kate and John gave a drink to -> Mary",
    "s2_not_last": "Then, Mary and John went to the store with Kate. John and Kate gave a drink to -> Mary",
    "four_name": "When John left the store, John saw Mary with Kate and Anna. Then, Anna and Kate gave a drink "
                 "to -> Mary",
    "counting": "When Anna, John and Anna went to the store, Kate and Mary found John. Kate gave a drink to -> Mary",
}


def anti_table(anti: dict[str, dict[str, float]]) -> str:
    """The README's table of held-out anti-shortcut prompts (model accuracy, agreement with the shortcut)."""
    rows = "\n".join(f"| {k.replace('_', '-')} ({v['n']}) | {v['accuracy']:.4f} | {v['follows_shortcut']:.4f} |"
                     for k, v in anti.items())
    return ("Prompts on which the recency shortcut fails (held-out names, places and objects as above; "
            "`anti_shortcut.py`), whether or not training saw their kind:\n\n"
            "| prompts | answer's logit tops the prompt's other names (chance 1/3; four-name 1/4) "
            "| recency shortcut's name on top |\n"
            "|---|---|---|\n" + rows)


def circuit_text(summary: dict[str, Any]) -> str:
    """The README's circuit section from `circuit_summary`."""
    n_layers = summary["n_layers"]
    rows = "\n".join(f"| {cls} | " + " | ".join(", ".join(h for h in heads if layer_of(h) == l) for l in range(n_layers))
                     + " |" for cls, heads in summary["circuit"].items())
    order = ("The classes come in Wang et al.'s layer order (every previous-token / duplicate-token / "
             "induction head before every S-inhibition head, before every name mover)."
             if summary["wang_ordered"] else
             "The classes are NOT in Wang et al.'s layer order: " + "; ".join(summary["order_problems"]) + ".")

    def heads(d):
        return ", ".join(f"{h} (NIE {a:+.2f}, context {c:+.2f})" for h, (a, c) in d.items()) or "none"

    return (
        "`intjax.ioi.circuit.discover_circuit` on 64 prompts (abc corruption, seed 20000): "
        "heads with mean |NIE| >= 5% of the total effect "
        f"({summary['total_effect']:+.2f}) in either direction, classed by their strongest attention "
        "role (END->IO name mover, END->S2 S-inhibition, S2->S1next induction, S2->S1 duplicate "
        "token, S1next->S1 previous token; at least 0.2 of the attention):\n\n"
        "| class | " + " | ".join(f"layer {l}" for l in range(n_layers)) + " |\n|---|"
        + "---|" * n_layers + "\n" + rows + "\n\n" + order + "\n\n"
        "Noising visibility over every head, context = the two strongest heads "
        f"({', '.join(summary['context'])}), thresholds of `intjax.studies.visibility` (3x, floor 5% "
        f"of |TE|): invisible {heads(summary['invisible'])}; inflated {heads(summary['inflated'])}. "
        "`intjax demo` reports these with CIs over prompts.")


# ---------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "intjax/assets/ioi-small"), help="export folder")
    p.add_argument("--work-dir", default="runs/ioi-small", help="tokenizer, checkpoints, args")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-positions", type=int, default=32)
    p.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary budget")
    p.add_argument("--filler-frac", type=float, default=0.0,
                   help="share of each batch given to single-name filler sentences")
    p.add_argument("--copy-frac", type=float, default=0.6,
                   help="share of filler sentences that end by copying their one name")
    p.add_argument("--answer-weight", type=float, default=5.0)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-prompts", type=int, default=2000)
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--train-word-embeddings", action="store_true",
                   help="train the embeddings of names, places and objects like any token "
                        "(default: fixed random vectors with a trainable scale and offset per class)")
    p.add_argument("--resample-from", type=int, default=1000,
                   help="from this step on, draw fresh random word vectors every step, so that "
                        "no name can be memorised (before it: the fixed ones the export uses); "
                        "-1: never")
    p.add_argument("--attn-dropout", type=float, default=0.0, help="attention-weight dropout (GPT-2: 0.1)")
    p.add_argument("--resid-dropout", type=float, default=0.0,
                   help="dropout on embeddings, attention and MLP outputs (GPT-2: 0.1)")
    p.add_argument("--head-dropout", type=float, default=0.0,
                   help="probability of dropping a whole head's output in a sequence")
    p.add_argument("--dropout-from", type=int, default=0,
                   help="no dropout before this step (the circuit forms first)")
    p.add_argument("--dropout-ramp", type=int, default=0,
                   help="steps over which dropout rises linearly from 0 to its rates after --dropout-from")
    p.add_argument("--io-prob", type=float, default=1.0,
                   help="probability that a training IOI sentence ends with IO (else with S)")
    p.add_argument("--induction-frac", type=float, default=0.0,
                   help="share of each batch given to repeated random word sequences")
    p.add_argument("--odd-frac", type=float, default=0.0,
                   help="share of each batch given to odd-one-out name lists (\"Then, A B C B A to\" -> \" C\")")
    p.add_argument("--three-name-frac", type=float, default=0.0,
                   help="share of each batch given to three-name prompts (\"When Mary, Kate and John went to the "
                        "store, Kate and John gave a drink to\" -> \" Mary\"), where the recency shortcut fails")
    p.add_argument("--s2-not-last-frac", type=float, default=0.0,
                   help="share of each batch given to IOI prompts with a bystander named twice, once after S2 "
                        "(\"... with Kate. John and Kate gave a drink to\" -> \" Mary\")")
    p.add_argument("--four-name-frac", type=float, default=0.0,
                   help="share of each batch given to four-name prompts on which both the recency and the "
                        "stalest-name shortcut fail (\"When John left the store, John saw Mary with Kate and Anna. "
                        "Then, Anna and Kate gave a drink to\" -> \" Mary\")")
    p.add_argument("--counting-frac", type=float, default=0.0,
                   help="share of each batch given to counting prompts: seven name slots, four names in a random "
                        "order, the answer (said once) in a varying slot, so that only counting mentions works")
    p.add_argument("--anti-from", type=int, default=0,
                   help="before this step the anti-shortcut and counting shares of a batch are plain IOI sentences "
                        "(curriculum: copying names is learned on IOI first)")
    p.add_argument("--list5-until", type=int, default=0,
                   help="counting curriculum: before this step the counting share holds five-slot name lists "
                        "(\"Then, Kate Anna Mary Anna Kate to\" -> \" Mary\", every shortcut at chance 1/3)")
    p.add_argument("--list7-until", type=int, default=0,
                   help="counting curriculum: from --list5-until to this step the counting share holds seven-slot "
                        "name lists (four names in the orders of counting prompts); counting prompts after it")
    p.add_argument("--answer-only-until", type=int, default=0,
                   help="before this step only answer tokens carry loss (template tokens do not dominate the "
                        "gradient while the answer rule forms)")
    p.add_argument("--head-dropout-layers", default="",
                   help="comma-separated layers (negative counts from the end) where whole heads drop; "
                        "empty: every layer")
    p.add_argument("--head-dropout-from", type=int, default=-1,
                   help="no whole-head dropout before this step (-1: --dropout-from)")
    p.add_argument("--head-dropout-ramp", type=int, default=-1,
                   help="steps over which whole-head dropout rises to --head-dropout (-1: --dropout-ramp)")
    p.add_argument("--hold-out-objects", action="store_true",
                   help="train only on ioi.TRAIN_OBJECTS and evaluate on ioi.HELDOUT_OBJECTS")
    p.add_argument("--stop-after", type=int, default=None,
                   help="checkpoint and stop after this step, as a kill would (rerun to resume)")
    p.add_argument("--min-accuracy", type=float, default=0.95,
                   help="held-out IO accuracy below which --out is left untouched")
    p.add_argument("--no-circuit", action="store_true", help="skip the circuit summary (README says so)")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints in --work-dir")
    p.add_argument("--no-verify-hf", action="store_true", help="skip the transformers logit check")
    return p.parse_args(argv)


def head_schedule(args: argparse.Namespace, n_layers: int) -> tuple[list[int], int, int]:
    """Whole-head dropout's layers (all when --head-dropout-layers is empty), start step and ramp."""
    try:
        layers = {int(x) for x in args.head_dropout_layers.split(",") if x.strip()}
    except ValueError:
        raise SystemExit(f"--head-dropout-layers {args.head_dropout_layers!r}: give layer numbers like 2,3 or -2,-1")
    if any(not -n_layers <= l < n_layers for l in layers):
        raise SystemExit(f"--head-dropout-layers {args.head_dropout_layers!r}: the model has {n_layers} layers")
    return (sorted({l % n_layers for l in layers} or range(n_layers)),
            args.dropout_from if args.head_dropout_from < 0 else args.head_dropout_from,
            args.dropout_ramp if args.head_dropout_ramp < 0 else args.head_dropout_ramp)


# flags that define the training run (a resume must match them)
RUN_KEYS = ("steps", "seed", "batch", "lr", "warmup", "weight_decay", "layers", "heads",
            "d_model", "n_positions", "vocab_size", "filler_frac", "copy_frac", "answer_weight",
            "train_word_embeddings", "resample_from", "attn_dropout", "resid_dropout", "head_dropout",
            "io_prob", "induction_frac", "hold_out_objects", "dropout_from", "dropout_ramp", "odd_frac",
            "three_name_frac", "s2_not_last_frac", "four_name_frac", "head_dropout_layers", "head_dropout_from",
            "head_dropout_ramp", "counting_frac", "anti_from", "list5_until", "list7_until", "answer_only_until")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train, evaluate and export; returns 0 when the held-out IO accuracy is >= 95%."""
    global ANSWER_WEIGHT
    wall0 = time.perf_counter()
    args = parse_args(argv)
    if args.resample_from is not None and (args.resample_from < 0 or args.train_word_embeddings):
        args.resample_from = None
    ANSWER_WEIGHT = args.answer_weight
    work, out = Path(args.work_dir), Path(args.out)
    run = {k: getattr(args, k) for k in RUN_KEYS}
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    run_file = work / "run.json"
    if run_file.is_file() and json.loads(run_file.read_text()) != run:
        raise SystemExit(
            f"{work} holds a run with other settings {json.loads(run_file.read_text())}; "
            "rerun with the same arguments to resume, or pass --fresh / another --work-dir")
    run_file.write_text(json.dumps(run, indent=2) + "\n")

    tok_path = work / "tokenizer.json"
    tok = train_tokenizer(tok_path, args.seed, args.vocab_size)
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=args.n_positions,
                     d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                     d_mlp=4 * args.d_model)
    probe = ioi.ioi_prompts(tok, 400, seed=args.seed, corruption="s2_flip")
    length = int(max(probe.prompts.lengths)) + 1  # prompt + answer
    rng = np.random.default_rng([args.seed, 2])
    length = max(length, max(len(tok.encode(filler_text(rng, ioi.NAMES, ioi.PLACES)[0]).ids)
                             for _ in range(400)))
    train_objects = ioi.TRAIN_OBJECTS if args.hold_out_objects else None
    anti_fracs = {"three_name": args.three_name_frac, "s2_not_last": args.s2_not_last_frac,
                  "four_name": args.four_name_frac, "counting": args.counting_frac}
    # counting kinds on training names too: with fixed name vectors, "learned for the trained vectors" and "not
    # learned" differ here
    train_counting = {k: anti_shortcut_prompts(tok, k, 200, np.random.default_rng([args.eval_seed, 1, i]),
                                               ioi.TRAIN_NAMES, ioi.TRAIN_PLACES, train_objects or ioi.OBJECTS)
                      for i, k in enumerate(("list5", "list7", "counting"))}
    heldout_anti = heldout_anti_shortcut(tok, min(args.eval_prompts, 500), args.eval_seed,
                                         ioi.HELDOUT_OBJECTS if args.hold_out_objects else ioi.OBJECTS)
    for kind, frac in anti_fracs.items():  # the kinds trained on must fit in the batch's sequences
        if frac > 0:
            length = max(length, 1 + max(len(p) for p in heldout_anti[kind].prompts))
    if length > cfg.n_positions:
        raise SystemExit(f"sequences need {length} positions; raise --n-positions")
    batches = Batches(tok, args.seed, args.batch, args.filler_frac, args.copy_frac, length - 1,
                      io_prob=args.io_prob, induction_frac=args.induction_frac, odd_frac=args.odd_frac,
                      objects=train_objects, anti_fracs=anti_fracs, anti_from=args.anti_from,
                      list5_until=args.list5_until, list7_until=args.list7_until,
                      answer_only_until=args.answer_only_until)
    stage_starts = sorted({batches.anti_from} | {max(s, batches.anti_from) for s in (args.list5_until, args.list7_until)
                                                  if 0 < s < args.steps})  # one batch per curriculum stage
    for at in stage_starts:
        for name, shortcut in [*SHORTCUTS.items(), ("fixed slot", "fixed slot")]:
            print(f"{name} shortcut's accuracy on batch {at}, per part: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in batches.shortcut_report(at, shortcut).items()), flush=True)
    rates = Dropout(args.attn_dropout, args.resid_dropout, args.head_dropout)
    head_layers, head_from, head_ramp = head_schedule(args, cfg.n_layers)

    cls = word_classes(tok, cfg.vocab_size, not args.train_word_embeddings)
    keep = jnp.asarray(cls == 0, jnp.float32)[:, None]  # W_E rows that training may change
    cls = jnp.asarray(cls)
    params = eqx.filter_jit(init_params)(cfg, jax.random.PRNGKey(args.seed), np.asarray(cls))
    warmup = min(args.warmup, args.steps // 2)
    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, warmup, max(args.steps, warmup + 1),
                                               args.lr / 10)
    opt = optax.chain(optax.clip_by_global_norm(1.0),
                      optax.adamw(sched, weight_decay=args.weight_decay,
                                  mask=Params(decay_mask(params.model), False, False)))
    opt_state = opt.init(params)
    mngr = checkpoint_manager(work, args.ckpt_every)
    start, (params, opt_state), meta = restore_checkpoint(mngr, (params, opt_state))
    seconds = float(meta.get("seconds", 0.0))
    print(f"model: {params.model.n_params():,} params, vocab {cfg.vocab_size}, seq len {length}; "
          f"{'resuming at step ' + str(start) if start else 'starting'}", flush=True)

    word_key = jax.random.PRNGKey(args.seed + 1)
    dropout_key = jax.random.PRNGKey(args.seed + 2)
    probe_tokens = jnp.asarray(batches(0)[0][0, :-1])
    gap = float(eqx.filter_jit(lambda m, t: jnp.abs(train_logits(m, t, dropout_key, Dropout())
                                                     - logits_of(m, t)).max())(params.model, probe_tokens))
    if gap > 1e-4:
        raise SystemExit(f"the training forward pass without dropout differs from the model's by {gap}")

    def word_draw(params, step):  # the word vectors of this step (None: the fixed ones)
        if args.resample_from is None:
            return None
        fresh = jax.random.normal(jax.random.fold_in(word_key, step),
                                  (cfg.vocab_size, cfg.d_model)) / np.sqrt(cfg.d_model)
        return jnp.where(step >= args.resample_from, fresh, params.model.W_E)

    @eqx.filter_jit
    def train_step(params, opt_state, tokens, weights, step):
        R = word_draw(params, step)
        r = dropout_at(rates, step, args.dropout_from, args.dropout_ramp)
        r = r._replace(head=dropout_at(Dropout(head=rates.head), step, head_from, head_ramp).head)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(params, cls, R, tokens, weights,
                                                         jax.random.fold_in(dropout_key, step), r, head_layers)
        updates, opt_state = opt.update(grads, opt_state, params)
        updates = eqx.tree_at(lambda u: u.model.W_E, updates, updates.model.W_E * keep)
        return eqx.apply_updates(params, updates), opt_state, loss

    heldout = ioi.ioi_prompts(tok, args.eval_prompts, seed=args.eval_seed,
                              names=ioi.HELDOUT_NAMES, places=ioi.HELDOUT_PLACES,
                              objects=ioi.HELDOUT_OBJECTS if args.hold_out_objects else None)
    train_eval = ioi.ioi_prompts(tok, args.eval_prompts, seed=args.eval_seed + 1,
                                 names=ioi.TRAIN_NAMES, places=ioi.TRAIN_PLACES, objects=train_objects)
    t0, losses = time.perf_counter(), []
    for step in range(start, args.steps):
        tokens, weights = batches(step)
        params, opt_state, loss = train_step(params, opt_state, jnp.asarray(tokens),
                                             jnp.asarray(weights), jnp.asarray(step))
        losses.append(float(loss))
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            el = seconds + time.perf_counter() - t0
            msg = f"step {done}/{args.steps} loss {np.mean(losses):.4f} ({el:.0f}s)"
            if done % args.ckpt_every == 0 or done == args.steps:
                ev = evaluate_all(effective(params, cls), tok, heldout, heldout_anti, length, 500)
                msg += (f" | held-out IO acc {ev['ioi']['io_accuracy']:.3f} logit diff "
                        f"{ev['ioi']['mean_logit_diff']:.2f} name argmax {ev['ioi']['name_argmax_accuracy']:.3f}"
                        + "".join(f" | {k} acc {v['accuracy']:.3f} shortcut {v['follows_shortcut']:.3f}"
                                  for k, v in ev.items() if k != "ioi")
                       + " | training names:" + "".join(
                           f" {k} acc {evaluate_named(effective(params, cls), tok, v.prompts, v.answers)['accuracy']:.3f}"
                           for k, v in train_counting.items()))
            print(msg, flush=True)
            losses = []
        stop = args.stop_after is not None and done >= args.stop_after
        if done % args.ckpt_every == 0 or done == args.steps or stop:
            el = seconds + time.perf_counter() - t0
            save_checkpoint(mngr, done, (params, opt_state), {"seconds": el, "step": done},
                            force=done == args.steps or stop)
        if stop and done < args.steps:
            mngr.wait_until_finished()
            print(f"stopped after step {done} (--stop-after); rerun without it to resume", flush=True)
            return 3
    mngr.wait_until_finished()
    seconds += time.perf_counter() - t0
    model = effective(params, cls)

    held = evaluate(model, tok, heldout.prompts, length)
    train = evaluate(model, tok, train_eval.prompts, length)
    anti = {k: evaluate_named(model, tok, v.prompts, v.answers) for k, v in heldout_anti.items()}
    print(f"held-out: {held}\ntrain:    {train}\nheld-out anti-shortcut: {anti}", flush=True)
    summary: Any = "Not computed (--no-circuit)."
    if not args.no_circuit:
        try:
            summary = circuit_summary(model, tok)
        except InputError as e:  # e.g. no head matters: a model that does not do the task; export it anyway
            summary = f"Not found: {e}."
    print(f"circuit: {json.dumps(summary)}", flush=True)

    stage = out.parent / f".{out.name}.partial"  # the export is built here, then moved into place
    try:
        return _export_and_document(model, tok, tok_path, stage, out, args, argv, cfg, params, batches, held,
                                    train, summary, heldout, seconds, wall0, anti)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _export_and_document(model, tok, tok_path, stage, out, args, argv, cfg, params, batches, held, train,
                         summary, heldout, seconds, wall0, anti) -> int:
    """Export into `stage`, check it, write its README, then replace `out` by it."""
    shutil.rmtree(stage, ignore_errors=True)
    export(model, tok_path, stage)
    check = verify_export(model, stage, heldout, hf=not args.no_verify_hf)
    print(f"export check: {check}", flush=True)
    if check["intjax_reload_max_abs_err"] > 1e-5 or check.get("transformers_max_abs_err", 0) >= 1e-4:
        raise SystemExit(f"export does not reproduce the model's logits: {check}")
    size = (stage / "model.safetensors").stat().st_size
    command = "python scripts/train_ioi_model.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]))
    if batches.n_filler:
        filler = (f", and {batches.n_filler} filler sentences that mention a single name and "
                  "place, drawn from all names and places (held-out ones included; with "
                  f"probability {args.copy_frac} the sentence ends by repeating the name: "
                  "\"Then, Karen went to the lab. The lab gave a cup to Karen\"). Held-out "
                  f"names ({len(ioi.HELDOUT_NAMES)}, `ioi.HELDOUT_NAMES`) and places "
                  f"({len(ioi.HELDOUT_PLACES)}, `ioi.HELDOUT_PLACES`) never occur in a "
                  "sentence with two names")
    else:
        filler = (f". Held-out names ({len(ioi.HELDOUT_NAMES)}, `ioi.HELDOUT_NAMES`) and "
                  f"places ({len(ioi.HELDOUT_PLACES)}, `ioi.HELDOUT_PLACES`) occur in no "
                  "training text at all")
    if args.train_word_embeddings:
        embeddings = "Every token embedding, names included, is trained as usual."
    else:
        scale = np.asarray(params.word_scale)
        embeddings = (
            "Word embeddings are not learned per word: the embedding of a name, place or "
            "object is a random vector R (N(0, 1/d_model) per coordinate) times a learned "
            "scale plus a learned offset of its class (name / place / object); the exported "
            "W_E holds those folded values (learned scales: names "
            f"{scale[0]:.3f}, places {scale[1]:.3f}, objects {scale[2]:.3f}; a scale near 0 "
            "means the model reads only the class, not which word of it). "
            + (f"For the first {args.resample_from} steps R is the one fixed draw that is "
               "exported; from then on a fresh R is drawn every step, so no name can be "
               "memorised and the mechanism has to work for any name vector. Held-out names "
               "therefore have embeddings from the same distribution as training names."
               if args.resample_from is not None else "R is one fixed draw, never trained."))
    data = (
        "Prompts follow Wang et al. 2022 (arXiv 2211.00593): the 15 BABA and 15 ABBA templates "
        "of `intjax.ioi.task` (\"Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] "
        f"to\" -> \" [A]\"). Each training batch of {args.batch} sequences holds "
        f"{batches.n_ioi} full IOI sentences (prompt plus answer, BABA and ABBA balanced) "
        f"built only from the training names ({len(ioi.TRAIN_NAMES)}, `ioi.TRAIN_NAMES`) and "
        f"places ({len(ioi.TRAIN_PLACES)}, `ioi.TRAIN_PLACES`){filler}. Loss: next-token "
        f"cross entropy on every token, the answer token weighted x{args.answer_weight}.")
    wrap = textwrap.TextWrapper(width=80, break_long_words=False, break_on_hyphens=False)
    mix = (f"Answers: a training IOI sentence ends with IO with probability {args.io_prob} and with S "
           f"otherwise, so the right logit difference is finite (log({args.io_prob}/{1 - args.io_prob:.2g}) = "
           f"{np.log(args.io_prob / max(1 - args.io_prob, 1e-9)):.2f}) and overshooting it costs loss, as in "
           "natural text. " if args.io_prob < 1 else "")
    if batches.n_induction:
        mix += (f"Each batch also holds {batches.n_induction} repeated random word sequences "
                "(\"w1 ... wk w1 ... wk\", k from 4 to 8, words drawn from the training names, places and "
                "objects): their second half is predictable only by induction (a previous-token head "
                "and an induction head), which then exists for reasons of its own.")
    if batches.n_odd:
        mix += (f" And {batches.n_odd} odd-one-out lists per batch (\"Then, Karen John Mary John Karen to\" -> "
                "\" Mary\": two training names twice and one once, in random order): the answer is the name that "
                "is not repeated, wherever it stands, so only duplicate detection finds it and suppressing the most "
                "recent name is wrong as often as right.")
    if batches.n_anti:
        shortcut = batches.shortcut_report(batches.anti_from)
        mix += (" And prompts on which the recency shortcut (answer = the most recent name that is not the last "
                "name before END, `anti_shortcut.recency_shortcut`) fails, whose answer is the one name that "
                "appears once: " + "; ".join(
                    f"{n} {kind.replace('_', '-')} prompts per batch (\"{ANTI_EXAMPLES[kind]}\")"
                    for kind, n in batches.n_anti.items())
                + (f" (from step {batches.anti_from} on; plain IOI sentences in their place before it)"
                   if batches.anti_from else "")
                + f". The shortcut's accuracy on batch {batches.anti_from}: " + ", ".join(
                    f"{k.replace('_', '-')} {v:.0%}" for k, v in shortcut.items()) + ". Three-name and "
                "s2-not-last prompts do not defeat a positional shortcut (answer = the name whose last mention comes earliest, "
                f"`anti_shortcut.stalest_name_shortcut`), right on batch {batches.anti_from}: " + ", ".join(
                    f"{k.replace('_', '-')} {v:.0%}" for k, v in batches.shortcut_report(batches.anti_from, SHORTCUTS["stalest name"]).items())
                + f". The best fixed answer slot (the k-th name mention, `anti_shortcut.fixed_slot_accuracy`), right on batch {batches.anti_from}: "
                + ", ".join(f"{k.replace('_', '-')} {v:.0%}" for k, v in batches.shortcut_report(batches.anti_from, "fixed slot").items())
                + ".")
    if args.hold_out_objects:
        mix += (f" Objects are split too: training uses {len(ioi.TRAIN_OBJECTS)} (`ioi.TRAIN_OBJECTS`); "
                f"the evaluation uses only the {len(ioi.HELDOUT_OBJECTS)} held-out ones "
                "(`ioi.HELDOUT_OBJECTS`).")
    r = Dropout(args.attn_dropout, args.resid_dropout, args.head_dropout)
    head_layers, head_from, head_ramp = head_schedule(args, cfg.n_layers)
    dropout = (f"Dropout during training: attention weights {r.attn}, residual (embeddings, attention and "
               f"MLP outputs) {r.resid} (GPT-2 used 0.1 for both), whole heads {r.head} (each head's output "
               "dropped for a whole sequence with that probability; GPT-2 had none)"
               + (f" in layers {', '.join(map(str, head_layers))} only" if r.head and len(head_layers) < cfg.n_layers
                  else "")
               + (f" (whole heads from step {head_from}, rising over {head_ramp} steps)"
                  if r.head and (head_from, head_ramp) != (args.dropout_from, args.dropout_ramp) else "")
               + (f", off for the first {args.dropout_from} steps and then rising linearly to these rates over "
                  f"{args.dropout_ramp} steps (curriculum dropout: the circuit forms first, dropout then "
                  "trains redundancy into it)" if args.dropout_from or args.dropout_ramp else "")
               + ". The export has no dropout." if any(r) else "No dropout.")
    differences = (
        f"{cfg.n_layers} layers x {cfg.n_heads} heads at d_model {cfg.d_model} against GPT-2 small's 12 x "
        "12 at 768; a vocabulary of about a thousand BPE tokens built from the IOI word lists, against "
        "50,257; trained only on generated text (IOI sentences"
        + (", filler sentences" if batches.n_filler else "") + (", repeated word lists" if batches.n_induction
                                                               else "")
        + (", odd-one-out lists" if batches.n_odd else "") + (", three-name prompts on which the recency shortcut "
                                                               "fails" if batches.n_anti else "")
        + ") instead of WebText, so it knows no language beyond these templates; no BOS token; names, "
        "places and objects embedded as random vectors with a learned per-class scale (so held-out names "
        "work); " + ("head dropout, which GPT-2 did not use; " if r.head else "")
        + "and its circuit is the one found above, not Wang et al.'s heads.")
    (stage / "README.md").write_text(README.format(
        name=out.name, mix=wrap.fill(mix), dropout=wrap.fill(dropout),
        circuit=circuit_text(summary) if isinstance(summary, dict) else summary,
        differences=wrap.fill(differences),
        data=wrap.fill(data), embeddings=wrap.fill(embeddings),
        **{k: getattr(cfg, k) for k in ("n_layers", "n_heads", "d_model", "d_mlp", "n_positions",
                                        "vocab_size")},
        n_params=model.n_params(), batch=args.batch, n_ioi=batches.n_ioi,
        command=command.strip(), lr=args.lr, warmup=args.warmup,
        weight_decay=args.weight_decay, steps=args.steps, seed=args.seed, seconds=seconds,
        device=f"{jax.devices()[0].platform.upper()} ({jax.device_count()} device, "
               f"{__import__('os').cpu_count()} cores)",
        ckpt_every=args.ckpt_every, n_eval=len(heldout), eval_seed=args.eval_seed,
        held=held, train=train, check=check, anti_table=anti_table(anti), objects=" and objects" if args.hold_out_objects else "",
        hf_err=(f"{check['transformers_max_abs_err']:.2e}" if "transformers_max_abs_err" in check
                else "not checked"),
    ) + f"\nmodel.safetensors: {size / 1e6:.2f} MB. Whole script (tokenizer, compilation, "
        f"training, evaluation, export and checks) this run: "
        f"{time.perf_counter() - wall0:.0f} s wall.\n")
    (stage / "README.md").chmod(0o644)
    if held["io_accuracy"] < args.min_accuracy:
        keep = Path(args.work_dir) / "export"
        shutil.rmtree(keep, ignore_errors=True)
        stage.rename(keep)
        print(f"held-out IO accuracy {held['io_accuracy']:.3f} is below {args.min_accuracy}: {out} is left "
              f"as it was; the export is in {keep}", flush=True)
        return 1
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    stage.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    print(f"exported to {out} ({size / 1e6:.2f} MB), {seconds:.0f}s training", flush=True)
    if size > 8e6:
        print("WARNING: model.safetensors is over 8 MB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Indirect object identification (IOI), after Wang et al. 2022.

"Interpretability in the Wild: a Circuit for Indirect Object Identification in
GPT-2 small" (arXiv 2211.00593). A prompt names two people, repeats one of them
(the subject, S) and asks for the other (the indirect object, IO):

    "Then, Mary and John went to the store. John gave a drink to"  ->  " Mary"

BABA templates name S first ("[B] and [A] ... [B]"), ABBA templates name IO
first ("[A] and [B] ... [B]"); [A] is always the IO (the answer) and [B] the
subject. The metric is intjax's default `logit_diff` with target = IO and
foil = S: logit(IO) − logit(S) at the last position.

Every name, place and object is used with a leading space and must be one token
of the tokenizer at hand; words that are not are skipped (and counted), so that
all prompts of one template have the same length and the names sit at the same
token positions — which the generator checks.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from intjax.errors import InputError
from intjax.options import CORRUPTIONS
from intjax.patching.prompts import PromptSet, concat_prompt_sets

# ---------------------------------------------------------------------------
# Word lists (every entry is used with a leading space: " Mary", " store").

NAMES: tuple[str, ...] = (
    "Mary", "John", "James", "Robert", "Michael", "William", "David", "Richard",
    "Joseph", "Thomas", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Paul",
    "Steven", "Andrew", "Kevin", "Brian", "George", "Edward", "Jason", "Jeff",
    "Ryan", "Jacob", "Gary", "Eric", "Peter", "Frank", "Scott", "Adam",
    "Sam", "Henry", "Jack", "Tom", "Alex", "Ben", "Patrick", "Sean",
    "Linda", "Susan", "Sarah", "Karen", "Lisa", "Nancy", "Laura", "Emily",
    "Emma", "Anna", "Amy", "Kate", "Rachel", "Rebecca", "Alice", "Helen",
    "Grace", "Julia", "Jessica", "Jennifer", "Elizabeth", "Michelle", "Kelly", "Ruth",
    "Chris", "Nick", "Tim", "Dan", "Mike", "Steve", "Joe", "Bill",
    "Jim", "Bob", "Martin", "Simon", "Oliver", "Harry", "Charlie", "Luke",
    "Nathan", "Tony", "Carl", "Roger", "Walter", "Arthur", "Victor", "Jordan",
    "Kim", "Jane", "Lucy", "Sophie", "Claire", "Diana", "Victoria", "Olivia",
    "Hannah", "Maria", "Carol", "Sandra", "Donna", "Martha", "Amanda", "Nicole",
    "Brandon", "Justin", "Kyle", "Aaron", "Jeremy", "Stephen", "Jesse", "Ian",
    "Craig", "Greg", "Keith", "Wayne", "Neil", "Dean", "Ross", "Ray",
    "Fred", "Ted", "Phil", "Ken", "Amber", "Megan", "Heather", "Tina",
    "Angela", "Beth", "Jenny", "Molly", "Sally", "Eva", "Holly", "Fiona",
    "Paula", "Wendy", "Joan", "Leah",
)

PLACES: tuple[str, ...] = (
    "store", "park", "school", "station", "hospital", "restaurant", "library", "office",
    "garden", "beach", "market", "museum", "church", "bank", "airport", "hotel",
    "cafe", "bakery", "farm", "lake", "river", "mountain", "forest", "zoo",
    "gym", "theater", "stadium", "mall", "kitchen", "house", "village", "city",
    "island", "harbor", "bridge", "castle", "temple", "factory", "studio", "camp",
    "club", "bar", "pool", "field", "court", "shop", "square", "tower",
    "palace", "cinema", "pub", "hall", "lab", "yard", "valley", "desert",
)

OBJECTS: tuple[str, ...] = (
    "drink", "ring", "book", "kiss", "bone", "basketball", "computer", "necklace",
    "ball", "snack", "bag", "box", "bottle", "cake", "camera", "candle",
    "card", "chair", "coin", "cup", "doll", "flower", "gift", "guitar",
    "hat", "key", "kite", "lamp", "letter", "map", "note", "pen",
    "pencil", "phone", "pillow", "plate", "poem", "present", "rose", "sandwich",
    "scarf", "shirt", "shoe", "sock", "spoon", "stamp", "ticket", "toy",
    "watch", "wallet", "bracelet", "cookie", "pie", "bowl", "brush", "coat",
)

# ---------------------------------------------------------------------------
# Templates (Wang et al. 2022, Appendix / their released BABA templates). The
# prompt stops before the answer; the answer is " [A]". [B] appears twice (S1,
# S2), [A] once (IO).

BABA_TEMPLATES: tuple[str, ...] = (
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to",
    "Friends separated at birth, [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to",
)


def _swap_first_pair(template: str) -> str:
    """ABBA from BABA: swap the first "[B] and [A]" to "[A] and [B]"."""
    return template.replace("[B] and [A]", "[A] and [B]", 1)


ABBA_TEMPLATES: tuple[str, ...] = tuple(_swap_first_pair(t) for t in BABA_TEMPLATES)

TEMPLATE_KINDS: tuple[str, ...] = ("BABA", "ABBA")
# The IOI metric: intjax's built-in logit difference, read with target = IO, foil = S.
IOI_METRIC = "logit_diff"

# A fixed split of the word lists for training models on IOI: train on the rest,
# evaluate on prompts built only from these (used by scripts/train_ioi_model.py
# and tests/test_ioi.py).
HELDOUT_NAMES: tuple[str, ...] = NAMES[3::5]
HELDOUT_PLACES: tuple[str, ...] = PLACES[2::5]
TRAIN_NAMES: tuple[str, ...] = tuple(n for n in NAMES if n not in HELDOUT_NAMES)
TRAIN_PLACES: tuple[str, ...] = tuple(p for p in PLACES if p not in HELDOUT_PLACES)
HELDOUT_OBJECTS: tuple[str, ...] = OBJECTS[1::5]
TRAIN_OBJECTS: tuple[str, ...] = tuple(o for o in OBJECTS if o not in HELDOUT_OBJECTS)

# ---------------------------------------------------------------------------
# The IOI circuit of GPT-2 small as data. Source: Wang et al. 2022, Fig. 2 and
# Sec. 3 (head classes found by path patching). Component names follow intjax
# (`L9H6` = layer 9, head 6).

GPT2_SMALL_IOI_CIRCUIT: dict[str, list[str]] = {
    "name_mover": ["L9H6", "L9H9", "L10H0"],
    "backup_name_mover": ["L9H0", "L9H7", "L10H1", "L10H2", "L10H6", "L10H10", "L11H2", "L11H9"],
    "negative_name_mover": ["L10H7", "L11H10"],
    "s_inhibition": ["L7H3", "L7H9", "L8H6", "L8H10"],
    "induction": ["L5H5", "L5H8", "L5H9", "L6H9"],
    "duplicate_token": ["L0H1", "L0H10", "L3H0"],
    "previous_token": ["L2H2", "L4H11"],
}
CLASS_POSITIONS: dict[str, str] = {  # where each class acts (Wang et al. 2022, Sec. 3); roles of ioi_prompts
    "name_mover": "END", "backup_name_mover": "END", "negative_name_mover": "END", "s_inhibition": "END",
    "induction": "S2", "duplicate_token": "S2", "previous_token": "S1next",
}
GPT2_SMALL_IOI_CIRCUIT_SOURCE = (
    "Wang, Variengien, Conmy, Shlegeris, Steinhardt (2022), 'Interpretability in the Wild: "
    "a Circuit for Indirect Object Identification in GPT-2 small', arXiv:2211.00593, "
    "Fig. 2 and Sec. 3"
)


def circuit_heads(circuit: Optional[dict[str, list[str]]] = None) -> list[str]:
    """All heads of a circuit (default: GPT-2 small's IOI circuit), in class order."""
    circuit = GPT2_SMALL_IOI_CIRCUIT if circuit is None else circuit
    return [h for heads in circuit.values() for h in heads]


# ---------------------------------------------------------------------------
# Template parsing

_SLOT = re.compile(r"\[(A|B|PLACE|OBJECT)\]")


def _parse(template: str) -> list[tuple[str, str]]:
    """Split a template into ('text', literal) and ('slot', A|B|PLACE|OBJECT) pieces.

    A slot's leading space belongs to the slot (the word is " Mary"), so the
    literal before it loses its trailing space.
    """
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in _SLOT.finditer(template):
        lit = template[pos: m.start()]
        if not lit.endswith(" "):
            raise InputError(
                f"template {template!r}: slot {m.group(0)} must follow a space "
                "(words are used with a leading space)"
            )
        if lit[:-1]:
            pieces.append(("text", lit[:-1]))
        pieces.append(("slot", m.group(1)))
        pos = m.end()
    if template[pos:]:
        pieces.append(("text", template[pos:]))
    slots = [p[1] for p in pieces if p[0] == "slot"]
    if slots.count("A") != 1 or slots.count("B") != 2:
        raise InputError(
            f"template {template!r} must contain [A] (the IO) once and [B] (the subject) "
            "twice; the answer ' [A]' is not part of the template"
        )
    return pieces


for _t in BABA_TEMPLATES + ABBA_TEMPLATES:
    _parse(_t)


# ---------------------------------------------------------------------------
# The generated prompt set


@dataclasses.dataclass(frozen=True)
class IOIPrompts:
    """IOI prompt pairs: token ids (a PromptSet), their texts, and the words skipped."""

    prompts: PromptSet  # target = IO token id, foil = S token id
    texts: list[dict[str, Any]]  # clean, corrupted, target, foil, template, kind, ...
    n_skipped: int  # candidate words skipped because they are not one token
    skipped: tuple[str, ...] = ()  # those words

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: Sequence[int] | np.ndarray) -> "IOIPrompts":
        """The prompt pairs at positions `idx`, with their texts."""
        return dataclasses.replace(self, prompts=self.prompts.subset(idx), texts=[self.texts[int(i)] for i in idx])

    def rows(self) -> list[dict[str, Any]]:
        """PROMPTS.jsonl rows: clean/corrupted/target/foil text plus their token ids."""
        out = []
        for t, c, x, tid, fid in zip(
            self.texts, self.prompts.clean, self.prompts.corrupted,
            self.prompts.target, self.prompts.foil,
        ):
            out.append({
                "clean": t["clean"], "corrupted": t["corrupted"],
                "target": t["target"], "foil": t["foil"],
                "clean_ids": [int(i) for i in c], "corrupted_ids": [int(i) for i in x],
                "target_id": int(tid), "foil_id": int(fid),
                "positions": {k: int(v[len(out)]) for k, v in self.prompts.positions.items()},
            })
        return out

    def write_jsonl(self, path: str | Path) -> Path:
        """Write `rows()` as a PROMPTS.jsonl file (one JSON object a line); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in self.rows()))
        return path


def _encode(tokenizer: Any, text: str) -> list[int]:
    try:
        return list(tokenizer.encode(text, add_special_tokens=False).ids)
    except TypeError:  # a tokenizer whose encode takes no add_special_tokens
        return list(tokenizer.encode(text).ids)


def single_token_words(
    tokenizer: Any, words: Sequence[str]
) -> tuple[list[str], dict[str, int], list[str]]:
    """Split `words` into those that are one token with a leading space (with their ids) and the rest."""
    kept: list[str] = []
    ids: dict[str, int] = {}
    skipped: list[str] = []
    for w in dict.fromkeys(words):  # de-duplicate, keep order
        enc = _encode(tokenizer, " " + w)
        if len(enc) == 1:
            kept.append(w)
            ids[w] = enc[0]
        else:
            skipped.append(w)
    return kept, ids, skipped


_FILLER_WORD = re.compile(r" [A-Za-z]+")


def non_name_tokens(tokenizer: Any, exclude: Sequence[str] = ()) -> list[tuple[str, int]]:
    """Vocabulary tokens that are one word with a leading space (" store", " the") and no name.

    The `random_token` corruption draws from these, by token id order. A token
    qualifies when it decodes to a space plus letters, " word" encodes back to
    exactly that token (so it stays one token in any prompt: byte-level BPE
    splits before each space), and the word is neither a name of NAMES or
    `exclude` nor the start of one (" Jessic", " N"), case-insensitively.
    """
    names = {w.lower() for w in (*NAMES, *exclude)}
    size = tokenizer.get_vocab_size() if hasattr(tokenizer, "get_vocab_size") else len(tokenizer.get_vocab())
    ids = list(range(size))
    if hasattr(tokenizer, "decode_batch"):
        words = tokenizer.decode_batch([[i] for i in ids])
    else:
        words = [tokenizer.decode([i]) for i in ids]
    cands = [(w[1:], i) for w, i in zip(words, ids)
             if _FILLER_WORD.fullmatch(w) and not any(n.startswith(w[1:].lower()) for n in names)]
    return [(w, i) for w, i in cands if _encode(tokenizer, " " + w) == [i]]


def _kinds(rng: np.random.Generator, n: int, templates: str) -> list[str]:
    key = templates.upper() if isinstance(templates, str) else templates
    if key in TEMPLATE_KINDS:
        return [key] * n
    if key != "MIXED":
        raise InputError(f"templates={templates!r}; choose 'mixed', 'BABA' or 'ABBA'")
    kinds = np.array(["BABA", "ABBA"] * ((n + 1) // 2))[:n]
    return [str(k) for k in rng.permutation(kinds)]


def ioi_prompts(
    tokenizer: Any,
    n: int,
    *,
    seed: int = 0,
    corruption: str = "abc",
    templates: str = "mixed",
    template_index: Optional[int] = None,
    names: Optional[Sequence[str]] = None,
    places: Optional[Sequence[str]] = None,
    objects: Optional[Sequence[str]] = None,
) -> IOIPrompts:
    """Generate `n` seeded IOI prompt pairs (target = IO, foil = S) for `tokenizer`.

    `corruption`: "abc" replaces the three names by three fresh distinct names;
    "s2_flip" replaces the second subject mention by the IO name (the answer
    flips to S); "random_token" replaces the second subject mention by a random
    vocabulary token that is not a name (a one-word token with a leading space,
    see `non_name_tokens`), drawn from its own seeded stream so that the clean
    prompts are those "s2_flip" makes with the same seed, and recorded as
    `texts[i]["replacement"]`. Every corruption keeps each pair's lengths and
    positions aligned. `templates`: "mixed" (balanced BABA/ABBA), "BABA" or "ABBA";
    `template_index` (with "BABA" or "ABBA") uses only that template.
    `names`, `places`, `objects` restrict the word lists (default: NAMES,
    PLACES, OBJECTS); words that are not one token with a leading space are
    skipped and counted in `n_skipped`.
    """
    if n < 1:
        raise InputError(f"n={n}: ask for at least one prompt")
    if corruption not in CORRUPTIONS:
        raise InputError(f"corruption={corruption!r}; choose one of {list(CORRUPTIONS)}")
    if template_index is not None:
        pool = {"BABA": BABA_TEMPLATES, "ABBA": ABBA_TEMPLATES}.get(str(templates).upper())
        if pool is None or not 0 <= template_index < len(pool):
            raise InputError(f"template_index={template_index} needs templates='BABA' or 'ABBA' and an index "
                             f"in 0..{len(BABA_TEMPLATES) - 1}")
    rng = np.random.default_rng(seed)
    name_list, name_ids, skip_n = single_token_words(tokenizer, NAMES if names is None else names)
    place_list, place_ids, skip_p = single_token_words(tokenizer, PLACES if places is None else places)
    obj_list, obj_ids, skip_o = single_token_words(tokenizer, OBJECTS if objects is None else objects)
    skipped = tuple(skip_n + skip_p + skip_o)
    need = 5 if corruption == "abc" else 2
    if len(name_list) < need:
        raise InputError(
            f"only {len(name_list)} usable single-token names ({len(skip_n)} skipped: "
            f"{skip_n[:8]}); corruption={corruption!r} needs at least {need}"
        )
    if not place_list or not obj_list:
        raise InputError(
            f"no usable single-token {'places' if not place_list else 'objects'} "
            f"(skipped: {(skip_p if not place_list else skip_o)[:8]})"
        )
    fillers: list[tuple[str, int]] = []
    if corruption == "random_token":
        fillers = non_name_tokens(tokenizer, exclude=name_list)
        if not fillers:
            raise InputError("corruption='random_token' found no vocabulary token that is one word with a "
                             "leading space and not a name")
        # its own stream: the main one (and so the clean prompts) stays that of s2_flip
        filler_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x52414E44]))
    word_ids = {**{("PLACE", w): i for w, i in place_ids.items()},
                **{("OBJECT", w): i for w, i in obj_ids.items()},
                **{("NAME", w): i for w, i in name_ids.items()},
                **{("FILLER", w): i for w, i in fillers}}
    by_kind = {"BABA": BABA_TEMPLATES, "ABBA": ABBA_TEMPLATES}
    parsed = {k: [_parse(t) for t in ts] for k, ts in by_kind.items()}
    lit_ids: dict[str, list[int]] = {}

    def build(pieces, fill):  # -> text, ids, positions of (slot, occurrence)
        text, ids, pos, seen = "", [], {}, {}
        for kind, val in pieces:
            if kind == "text":
                text += val
                if val not in lit_ids:
                    lit_ids[val] = _encode(tokenizer, val)
                ids += lit_ids[val]
            else:
                occ = seen.get(val, 0)
                seen[val] = occ + 1
                word = fill[(val, occ)] if (val, occ) in fill else fill[(val, 0)]
                text += " " + word
                pos[(val, occ)] = len(ids)
                key = ("NAME" if val in "AB" else val, word)
                ids.append(word_ids[key] if key in word_ids else word_ids[("FILLER", word)])
        return text, ids, pos

    kinds = _kinds(rng, n, templates)
    texts: list[dict[str, Any]] = []
    clean_ids, corr_ids, targets, foils = [], [], [], []
    for kind in kinds:
        t = int(rng.integers(len(by_kind[kind]))) if template_index is None else template_index
        pieces = parsed[kind][t]
        io, s = (str(x) for x in rng.choice(name_list, 2, replace=False))
        place = str(place_list[rng.integers(len(place_list))])
        obj = str(obj_list[rng.integers(len(obj_list))])
        base = {("PLACE", 0): place, ("OBJECT", 0): obj}
        clean_fill = {**base, ("A", 0): io, ("B", 0): s, ("B", 1): s}
        if corruption == "abc":
            pool = [w for w in name_list if w not in (io, s)]
            x, y, z = (str(w) for w in rng.choice(pool, 3, replace=False))
            corr_fill = {**base, ("A", 0): x, ("B", 0): y, ("B", 1): z}
        elif corruption == "random_token":
            filler = fillers[int(filler_rng.integers(len(fillers)))][0]
            corr_fill = {**base, ("A", 0): io, ("B", 0): s, ("B", 1): filler}
        else:  # s2_flip
            corr_fill = {**base, ("A", 0): io, ("B", 0): s, ("B", 1): io}
        c_text, c_ids, c_pos = build(pieces, clean_fill)
        x_text, x_ids, x_pos = build(pieces, corr_fill)
        texts.append({
            "clean": c_text, "corrupted": x_text, "target": " " + io, "foil": " " + s,
            "template": t, "kind": kind, "io": io, "s": s, "place": place, "object": obj,
            "positions": {"IO": c_pos[("A", 0)], "S1": c_pos[("B", 0)],
                          "S2": c_pos[("B", 1)], "S1next": c_pos[("B", 0)] + 1,
                          "END": len(c_ids) - 1},
        })
        if corruption == "random_token":
            texts[-1]["replacement"] = " " + filler
        clean_ids.append(c_ids), corr_ids.append(x_ids)
        targets.append(name_ids[io]), foils.append(name_ids[s])

    _check_alignment(tokenizer, texts, clean_ids, corr_ids)
    roles = {role: np.array([t["positions"][role] for t in texts]) for role in ("IO", "S1", "S1next", "S2")}
    prompts = PromptSet(
        tuple(np.asarray(c, np.int32) for c in clean_ids),
        tuple(np.asarray(x, np.int32) for x in corr_ids),
        np.asarray(targets, np.int64), np.asarray(foils, np.int64),
        roles,  # END is every PromptSet's last token
    )
    return IOIPrompts(prompts, texts, len(skipped), skipped)


@dataclasses.dataclass(frozen=True)
class PromptBank:
    """The IOI prompt sets of one run, each generated once: `get(n, seed, corruption)` returns the same
    `IOIPrompts` for the same arguments, so the analysis, the distance study and the faithfulness resamples
    share every set they have in common. Made per run and passed down (no global state)."""

    tokenizer: Any
    built: dict[tuple[int, int, str], IOIPrompts] = dataclasses.field(default_factory=dict, compare=False,
                                                                       repr=False)

    def get(self, n: int, seed: int = 0, corruption: str = "abc") -> IOIPrompts:
        """`ioi_prompts(tokenizer, n, seed=seed, corruption=corruption)`, generated on first use."""
        key = (int(n), int(seed), corruption)
        if key not in self.built:
            self.built[key] = ioi_prompts(self.tokenizer, n, seed=seed, corruption=corruption)
        return self.built[key]


@dataclasses.dataclass(frozen=True)
class MeanSource:
    """What a mean ablation averages: reference prompts and the groups pairing each prompt with its
    template's reference prompts (both None: the prompts themselves, one group)."""

    reference: Optional[PromptSet] = None
    groups: Optional[tuple[list[str], list[str]]] = None


def mean_source(tokenizer: Any, data: IOIPrompts, per_template: int = 8, *, seed: int = 0) -> MeanSource:
    """The per-template mean-ablation source of `data` (see `template_reference`), built once per run."""
    reference, groups = template_reference(tokenizer, data, per_template, seed=seed)
    return MeanSource(reference, groups)


def template_reference(tokenizer: Any, data: IOIPrompts, per_template: int = 8, *, seed: int = 0,
                       corruption: str = "abc") -> tuple[PromptSet, tuple[list[str], list[str]]]:
    """Fresh prompts (`per_template` for each template `data` uses) for per-template mean
    ablation, and the `mean_groups` that pair each prompt of `data` with its template's."""
    keys = [f"{t['kind']}{t['template']}" for t in data.texts]
    parts, ref_keys = [], []
    for key in dict.fromkeys(keys):
        kind, index = key[:4], int(key[4:])
        ref_seed = int(np.random.SeedSequence([seed, TEMPLATE_KINDS.index(kind), index]).generate_state(1)[0])
        parts.append(ioi_prompts(tokenizer, per_template, seed=ref_seed, corruption=corruption, templates=kind,
                                 template_index=index).prompts)
        ref_keys += [key] * per_template
    reference = concat_prompt_sets(parts)
    return reference, (keys, ref_keys)


def _check_alignment(tokenizer: Any, texts: list[dict], clean_ids: list, corr_ids: list) -> None:
    """Every prompt must tokenize to its piece-by-piece ids (so the slots sit at fixed positions)."""
    all_texts = [t["clean"] for t in texts] + [t["corrupted"] for t in texts]
    built = clean_ids + corr_ids
    if hasattr(tokenizer, "encode_batch"):
        encoded = [list(e.ids) for e in tokenizer.encode_batch(all_texts)]
    else:
        encoded = [list(tokenizer.encode(s).ids) for s in all_texts]
    lengths: dict[tuple[str, int], int] = {}
    for i, (text, enc, ids) in enumerate(zip(all_texts, encoded, built)):
        meta = texts[i % len(texts)]
        if enc != ids:
            raise InputError(
                f"IOI prompt {text!r} tokenizes to {enc}, not to its words' tokens {ids}: the "
                "names/places/objects would not sit at the same positions in every prompt "
                f"of template {meta['kind']} #{meta['template']}. The tokenizer merges "
                "across word boundaries or adds special tokens; use a byte-level BPE "
                "tokenizer such as GPT-2's"
            )
        key = (meta["kind"], meta["template"])
        if lengths.setdefault(key, len(ids)) != len(ids):
            raise InputError(
                f"prompts of template {key[0]} #{key[1]} have different lengths "
                f"({lengths[key]} and {len(ids)} tokens): positions are not aligned"
            )

"""Training prompts on which IOI's recency shortcut fails, and the shortcut itself.

In every IOI template of `intjax.ioi.task` the subject's second mention S2 is the
last name before END, so "copy the most recent name that is not the last one"
answers every plain IOI prompt without detecting a duplicate. The prompts here
hold three or four names, all but one repeated, so only "the name that appears
once" finds the answer, and the recency shortcut's answer is always a repeated name:

- three-name: "When Mary, Kate and John went to the store, Kate and John gave a
  drink to" -> " Mary" (the three in random order, the repeated two in random order);
- four-name: four names, three repeated, placed so that both shortcuts below fail:
  "When John left the store, John saw Mary with Kate and Anna. Then, Anna and Kate
  gave a drink to" -> " Mary";
- s2-not-last: an IOI pair plus a bystander C whose second mention follows S2:
  "Then, Mary and John went to the store with Kate. John and Kate gave a drink to"
  -> " Mary", or "... John gave Kate's drink to" style with C mentioned twice;
- counting: seven name slots filled by four names in a random order (the answer once,
  three others twice), the answer's slot drawn evenly from the four slots where both
  shortcuts fail, so that neither recency, nor the stalest name, nor the template's
  wording (a fixed answer slot, `fixed_slot_accuracy`) beats chance: "When Anna, John and
  Anna went to the store, Kate and Mary found John. Kate gave a drink to" -> " Mary";
- list5 and list7: the easy steps of a counting curriculum, bare name lists "Then, Kate Anna Mary Anna
  Kate to" -> " Mary" (three names in five slots; four names in seven slots, the orders of counting
  prompts). Five slots cannot defeat both shortcuts with the answer's slot spread (both fail only when
  the answer is last), so list5 draws the answer's slot from 0, 1, 3, 4 with weights 1, 1, 2, 2: the
  stalest name is right in slots 0-1, recency in slot 3, neither in slot 4, so each shortcut and the best
  fixed slot are right on 1/3 of the prompts, chance with three names.

[A] is the answer (the indirect object), [B] the subject, [C] the bystander.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from intjax.ioi import task as ioi

# [N1] [N2] [N3]: A, B, C in random order; [R1] [R2]: B, C in random order.
THREE_NAME_TEMPLATES: tuple[str, ...] = (
    "When [N1], [N2] and [N3] went to the [PLACE], [R1] and [R2] gave a [OBJECT] to",
    "Then, [N1], [N2] and [N3] went to the [PLACE]. [R1] and [R2] gave a [OBJECT] to",
    "After [N1], [N2] and [N3] had a lot of fun at the [PLACE], [R1] and [R2] decided to give a [OBJECT] to",
    "While [N1], [N2] and [N3] were working at the [PLACE], [R1] and [R2] gave a [OBJECT] to",
)
# [X] [Y]: A, B in random order (BABA / ABBA); S2 ([B]'s second mention) is followed by [C].
S2_NOT_LAST_TEMPLATES: tuple[str, ...] = (
    "Then, [X] and [Y] went to the [PLACE] with [C]. [B] and [C] gave a [OBJECT] to",
    "When [X] and [Y] got a [OBJECT] at the [PLACE] of [C], [B] and [C] decided to give it to",
    "Then, [X] and [Y] had a long argument with [C], and afterwards [B] and [C] said to",
    "After [X] and [Y] went to [C]'s [PLACE], [B] gave [C]'s [OBJECT] to",
    "While [X] and [Y] were working at the [PLACE] with [C], [B] found [C]'s [OBJECT] and gave it to",
)
# Four names, three of them repeated: [X] is said twice before the answer [A] (so the stalest name is X),
# [Y] and [Z] both after it (so the recency shortcut's name is one of them); [R1] [R2]: Y, Z in random order.
FOUR_NAME_TEMPLATES: tuple[str, ...] = (
    "When [X] left, [X] saw [A] with [Y] and [Z]. Then, [R1] and [R2] gave a [OBJECT] to",
    "After [X] and [Y] went to the [PLACE], [X] left and [A] met [Z]. [R1] and [R2] gave a [OBJECT] to",
    "Then, [X] found [X]'s [OBJECT] with [A], [Y] and [Z]. [R1] and [R2] gave it to",
)
# Seven name slots [N1]..[N7], filled in the order of one of COUNTING_ORDERS; clauses of varied shape, so that
# no slot is tied to a wording.
COUNTING_TEMPLATES: tuple[str, ...] = (
    "Then, [N1] and [N2] went to the [PLACE] with [N3]. [N4] found [N5], and [N6] and [N7] gave a [OBJECT] to",
    "When [N1], [N2] and [N3] went to the [PLACE], [N4] and [N5] found [N6]. [N7] gave a [OBJECT] to",
    "After [N1] and [N2] went to the [PLACE], [N3], [N4] and [N5] found [N6]'s [OBJECT]. [N7] gave it to",
    "While [N1] was working with [N2] and [N3], [N4] and [N5] went to the [PLACE] with [N6]. [N7] gave a [OBJECT] to",
)
# Bare name lists of the counting curriculum (five or seven slots).
LIST_TEMPLATES: dict[int, tuple[str, ...]] = {n: ("Then," + "".join(f" [N{i + 1}]" for i in range(n)) + " to",)
                                              for n in (5, 7)}
TEMPLATES = {"three_name": THREE_NAME_TEMPLATES, "s2_not_last": S2_NOT_LAST_TEMPLATES,
             "four_name": FOUR_NAME_TEMPLATES, "counting": COUNTING_TEMPLATES,
             "list5": LIST_TEMPLATES[5], "list7": LIST_TEMPLATES[7]}
KINDS = tuple(TEMPLATES)


class NamedPrompts(NamedTuple):
    """Prompts (token lists without the answer), their answers, and the text they were made from."""

    prompts: list[list[int]]
    answers: list[int]
    texts: list[str]


def recency_shortcut(prompt: Sequence[int], name_ids: "set[int] | frozenset[int]") -> Optional[int]:
    """The recency shortcut's answer: the most recent name in `prompt` that differs from its last name
    (None when the prompt holds fewer than two distinct names)."""
    names = [int(t) for t in prompt if int(t) in name_ids]
    return next((t for t in reversed(names) if t != names[-1]), None)


def stalest_name_shortcut(prompt: Sequence[int], name_ids: "set[int] | frozenset[int]") -> Optional[int]:
    """A second, positional shortcut: the name whose last mention comes earliest (None when there is no
    name). Three-name and s2-not-last prompts do NOT defeat it: their repeated names are all mentioned after
    the answer's one mention, so a layer-0 head that suppresses the names of the last clause solves them;
    four-name prompts do."""
    last = {int(t): i for i, t in enumerate(prompt) if int(t) in name_ids}
    return min(last, key=last.get) if last else None


SHORTCUTS = {"recency": recency_shortcut, "stalest name": stalest_name_shortcut}


def counting_orders() -> dict[int, tuple[str, ...]]:
    """Orders of the seven mentions "A XX YY ZZ" (X, Y, Z named by first appearance) on which both shortcuts
    above fail, by the answer A's slot (0-based): A can sit only in slots 2, 3, 4 and 6."""
    ids = {"A": 0, "X": 1, "Y": 2, "Z": 3}
    orders: dict[int, set[str]] = {}
    for order in set(itertools.permutations("AXXYYZZ")):
        first = list(dict.fromkeys(c for c in order if c != "A"))  # the repeated names by first mention
        canon = "".join(c if c == "A" else "XYZ"[first.index(c)] for c in order)
        seq = [ids[c] for c in canon]
        if 0 not in (recency_shortcut(seq, frozenset(ids.values())), stalest_name_shortcut(seq, frozenset(ids.values()))):
            orders.setdefault(canon.index("A"), set()).add(canon)
    return {slot: tuple(sorted(found)) for slot, found in sorted(orders.items())}


COUNTING_ORDERS = counting_orders()


def list5_orders() -> dict[int, tuple[str, ...]]:
    """Every order of the five mentions "A XX YY" (X, Y named by first appearance), by the answer A's slot."""
    orders: dict[int, set[str]] = {}
    for order in set(itertools.permutations("AXXYY")):
        first = list(dict.fromkeys(c for c in order if c != "A"))
        canon = "".join(c if c == "A" else "XY"[first.index(c)] for c in order)
        orders.setdefault(canon.index("A"), set()).add(canon)
    return {slot: tuple(sorted(found)) for slot, found in sorted(orders.items())}


# Per slotted kind: its orders by the answer's slot, and the answer slots of a batch (repeated, then shuffled).
SLOT_ORDERS: dict[str, dict[int, tuple[str, ...]]] = {
    "counting": COUNTING_ORDERS, "list7": COUNTING_ORDERS, "list5": list5_orders()}
SLOT_DRAWS: dict[str, tuple[int, ...]] = {"counting": tuple(COUNTING_ORDERS), "list7": tuple(COUNTING_ORDERS),
                                          "list5": (0, 1, 3, 3, 4, 4)}


def fixed_slot_accuracy(prompts: Sequence[Sequence[int]], answers: Sequence[int], name_ids: Any) -> float:
    """The best "fixed slot" shortcut: over k, the largest share of prompts whose answer is their k-th name
    mention (what a model reading only the template's wording could reach)."""
    ids = frozenset(int(i) for i in name_ids)
    names = [[int(t) for t in p if int(t) in ids] for p in prompts]
    slots = max(len(n) for n in names)
    return max(float(np.mean([k < len(n) and n[k] == int(a) for n, a in zip(names, answers)]))
               for k in range(slots))


def shortcut_accuracy(prompts: Sequence[Sequence[int]], answers: Sequence[int], name_ids: Any,
                      shortcut: Any = recency_shortcut) -> float:
    """Share of prompts whose answer is the shortcut's (default: the recency shortcut)."""
    ids = frozenset(int(i) for i in name_ids)
    return float(np.mean([shortcut(p, ids) == int(a) for p, a in zip(prompts, answers)]))


def _fill(rng: np.random.Generator, kind: str, a: str, b: str, c: str, d: str, place: str, obj: str,
          slot: int = -1) -> str:
    """The text of one prompt of `kind` with answer `a`, subject `b` and bystanders `c` (and `d`); a counting
    prompt (or list) puts `a` in name slot `slot` (0-based) and `b`, `c`, `d` in the order of a random one of
    its SLOT_ORDERS."""
    templates = TEMPLATES[kind]
    t = templates[rng.integers(len(templates))]
    if kind in SLOT_ORDERS:
        orders = SLOT_ORDERS[kind][slot]
        order = orders[rng.integers(len(orders))]
        word = {"A": a, "X": b, "Y": c, "Z": d}
        slots = {f"[N{i + 1}]": word[ch] for i, ch in enumerate(order)}
    elif kind == "three_name":
        n1, n2, n3 = rng.permutation([a, b, c])
        r1, r2 = rng.permutation([b, c])
        slots = {"[N1]": n1, "[N2]": n2, "[N3]": n3, "[R1]": r1, "[R2]": r2}
    elif kind == "four_name":
        r1, r2 = rng.permutation([c, d])
        slots = {"[X]": b, "[A]": a, "[Y]": c, "[Z]": d, "[R1]": r1, "[R2]": r2}
    else:
        x, y = rng.permutation([a, b])
        slots = {"[X]": x, "[Y]": y, "[B]": b, "[C]": c}
    for slot, word in {**slots, "[PLACE]": place, "[OBJECT]": obj}.items():
        t = t.replace(slot, str(word))
    return t


def anti_shortcut_prompts(tok: Any, kind: str, n: int, rng: np.random.Generator, names: Sequence[str],
                          places: Sequence[str], objects: Sequence[str]) -> NamedPrompts:
    """`n` prompts of `kind` (a key of TEMPLATES) from these words; the answer is the one name that appears
    once. Counting prompts and lists spread the answer over the slots of SLOT_DRAWS (counting: each of four
    slots n/4 times, in random order). Each name must stay one token in the encoded prompt (checked)."""
    names, name_ids, _ = ioi.single_token_words(tok, names)
    prompts, answers, texts = [], [], []
    slots = rng.permutation(np.resize(SLOT_DRAWS[kind], n)) if kind in SLOT_DRAWS else np.full(n, -1)
    for slot in slots:
        a, b, c, d = (str(w) for w in rng.choice(names, 4, replace=False))
        text = _fill(rng, kind, a, b, c, d, str(places[rng.integers(len(places))]),
                     str(objects[rng.integers(len(objects))]), int(slot))
        ids = tok.encode(text).ids
        said = {w: len(re.findall(rf"\b{w}\b", text)) for w in (a, b, c, d)}
        if any(ids.count(name_ids[w]) != k for w, k in said.items()) or said[a] != 1:
            raise ValueError(f"names of {text!r} are not single tokens in this tokenizer")
        prompts.append(list(ids)), answers.append(name_ids[a]), texts.append(text)
    return NamedPrompts(prompts, answers, texts)

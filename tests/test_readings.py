"""The sentences a report prints about a pair, on planted games whose mechanism is known,
in both directions: the NIEs and INT come from the library's estimands on each game."""

from __future__ import annotations

import numpy as np
import pytest

from intjax.estimands import FunctionGame, interactions, nie
from intjax.studies.readings import read_pair, read_pair_per_prompt


def state_game(metric, direction, serial=False):
    """f(α) for two components whose clean state is 1 and corrupted state 0; α_i = 1 patches i
    (noising: to 0, denoising: to 1). With `serial`, B's computed state copies A's (B reads A)."""
    base, source = (1.0, 0.0) if direction == "noising" else (0.0, 1.0)

    def f(alpha):
        a = base + alpha[0] * (source - base)
        b_computed = a if serial else base
        b = b_computed + alpha[1] * (source - b_computed)
        return metric(a, b)

    return FunctionGame(f, 2)


MECHANISMS = {  # metric of the states (a, b); 1 = the clean state
    "and": lambda a, b: a * b,
    "or": lambda a, b: a + b - a * b,
    "serial": lambda a, b: b,
    "inhibition": lambda a, b: b * (2 - a),  # A's clean state lowers what B contributes
    "conditional": lambda a, b: a * (1 + b) / 2,  # B adds only when A is there
    "compounding": lambda a, b: a + b - (1 - a) * (1 - b),  # losing both costs more than the two losses
}
TRUTH = {  # (mechanism, direction) -> (reading, words the sentence must hold)
    ("and", "noising"): ("overlap", "each alone is necessary"),
    ("and", "denoising"): ("only together", "jointly necessary"),
    ("or", "noising"): ("only together", "either one suffices"),
    ("or", "denoising"): ("overlap", "each alone suffices"),
    ("serial", "noising"): ("overlap", "in series"),
    ("serial", "denoising"): ("overlap", "in series"),
    ("inhibition", "noising"): ("inhibition", "A works against the pair's joint effect only while B is intact"),
    ("inhibition", "denoising"): ("inhibition", "A dampens B's effect and has none alone"),
    ("conditional", "noising"): ("overlap", "each alone is necessary"),
    ("conditional", "denoising"): ("conditional", "B matters only once A is restored too"),
    ("compounding", "noising"): ("synergy", "together they do more than the sum"),
    ("compounding", "denoising"): ("overlap", "each alone suffices"),
}


@pytest.mark.parametrize("mechanism,direction", sorted(TRUTH))
def test_planted_mechanisms_read_as_planted(mechanism, direction):
    game = state_game(MECHANISMS[mechanism], direction, serial=mechanism == "serial")
    singles = nie(game)[0]
    _, ints, _ = interactions(game, order=2)
    reading = read_pair("A", "B", singles[0], singles[1], ints[0, 0], direction)
    mech, words = TRUTH[(mechanism, direction)]
    assert reading.mechanism == mech, (reading.pattern, reading.sentence)
    assert words in reading.sentence and f"({direction})" in reading.sentence


def test_additive_and_uncertain_interactions_read_as_additive():
    assert read_pair("A", "B", -1.0, -0.5, 0.01, "noising").mechanism == "additive"
    # a large mean INT whose CI over prompts includes 0 is not read as a mechanism
    rng = np.random.default_rng(0)
    noisy_int = rng.normal(0.3, 3.0, 16)
    reading, stats = read_pair_per_prompt("A", "B", np.full(16, -1.0), np.full(16, -1.0), noisy_int, "noising")
    assert stats["int"][1] < 0 < stats["int"][2] and reading.mechanism == "additive"


def test_swapped_members_give_the_same_mechanism():
    game = state_game(MECHANISMS["inhibition"], "noising")
    singles = nie(game)[0]
    _, ints, _ = interactions(game, order=2)
    reading = read_pair("B", "A", singles[1], singles[0], ints[0, 0], "noising")
    assert reading.mechanism == "inhibition" and "A works against" in reading.sentence


def test_inhibition_that_persists_and_negligible_interactions():
    """A works against J and keeps doing so (less) with B patched: not 'only while'; an INT at 0.2% of
    the joint effect is additive even if it is large against a negligible member."""
    reading = read_pair("A", "B", 1.0, -5.0, -0.3, "noising")
    assert reading.mechanism == "inhibition" and "less once it is not" in reading.sentence
    assert read_pair("A", "B", -1.0, -0.001, -0.002, "noising").mechanism == "additive"


def test_a_small_member_whose_effect_vanishes_with_the_other_reads_as_overlap():
    """L1H0/L3H2 on ioi-small: NIEs −13.98 and −0.81, INT +0.89: the small head's effect needs the large
    one intact (necessity overlap), whatever the large one's size."""
    reading = read_pair("L1H0", "L3H2", -13.98, -0.81, 0.886, "noising")
    assert reading.mechanism == "overlap" and "L3H2's effect needs L1H0 intact" in reading.sentence

"""The sentences a report prints about a pair, on planted games whose mechanism is known, in both
directions (the NIEs and INT come from the library's estimands on each game), and on planted
per-prompt values whose CIs make a quantity small or uncertain. Each branch of the reading table is
pinned to its whole sentence, so a sentence moved to another branch fails."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from intjax.estimands import FunctionGame, interactions, nie
from intjax.studies.readings import read_directions, read_pair, read_pair_per_prompt, state


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


def game_reading(metric, direction, serial=False, names=("A", "B")):
    game = state_game(metric, direction, serial)
    singles = nie(game)[0]
    _, ints, _ = interactions(game, order=2)
    return read_pair(*names, float(singles[0]), float(singles[1]), float(ints[0, 0]), direction)


MECHANISMS = {  # metric of the states (a, b); 1 = the clean state
    "additive": lambda a, b: a + 2 * b,
    "and": lambda a, b: a * b,
    "or": lambda a, b: a + b - a * b,
    "serial": lambda a, b: b,
    "inhibition": lambda a, b: b * (2 - a),  # A's clean state lowers what B contributes
    "b_minus": lambda a, b: b - a * (1 - b),  # the m(a, b) = b − a(1 − b)
    "conditional": lambda a, b: a * (1 + b) / 2,  # B adds only when A is there
    "backed_up": lambda a, b: a + (1 - a) * b / 2,  # B adds only when A is gone
    "compounding": lambda a, b: a + b - (1 - a) * (1 - b),  # losing both costs more than the two losses
    "boost": lambda a, b: a + b + a * b,
    "contained": lambda a, b: a * (0.9 + 0.1 * b),  # B's small effect runs through A
    "contained_d": lambda a, b: a + 0.1 * b - 0.1 * a * b,
    "lessening": lambda a, b: b * (2 - a) + (1 - a) / 2,  # A works against J, less once B is patched
    "flipping": lambda a, b: 3 * b + a - 2 * a * b - 1,  # A works against J, and with it once B is patched
    "mixed": lambda a, b: -1 + 2 * a + 2 * b - 3 * a * b,  # (−, −, +) under noising
}
NOISING_OVERLAP = ("A and B overlap (noising): each alone is necessary (both needed, in parallel or in series), "
                   "so their single patches double-count and the joint effect is smaller than their sum")
DENOISING_OVERLAP = ("A and B overlap (denoising): each alone suffices (redundant, or in series), so their "
                     "single patches double-count and the joint effect is smaller than their sum")
TRUTH = {  # (mechanism, direction) -> (pattern, reading, the whole sentence), worked out by hand from the metric
    ("additive", "noising"): ("++0", "additive", "A and B add up (noising): their interaction is small against "
                              "their single effects, each single patch measures its own part"),
    ("and", "noising"): ("++−", "overlap", NOISING_OVERLAP),
    ("and", "denoising"): ("00+", "only together", "A and B matter only together (denoising): they are jointly "
                           "necessary: restoring one alone shows nothing (an AND)"),
    ("or", "noising"): ("00+", "only together", "A and B matter only together (noising): they are redundant: "
                        "either one suffices, so patching one alone shows nothing (an OR, a backup)"),
    ("or", "denoising"): ("++−", "overlap", DENOISING_OVERLAP),
    ("serial", "noising"): ("++−", "overlap", NOISING_OVERLAP),
    ("serial", "denoising"): ("++−", "overlap", DENOISING_OVERLAP),
    ("contained", "noising"): ("++−", "overlap", "A and B overlap (noising): B's effect needs A intact (its effect "
                               "is contained in A's), so their single patches double-count"),
    ("contained_d", "denoising"): ("++−", "overlap", "A and B overlap (denoising): restoring A already brings "
                                   "most of what B brings (its effect is contained in A's), so their single "
                                   "patches double-count"),
    ("inhibition", "noising"): ("−++", "inhibition", "A works against the pair's joint effect only while B is "
                                "intact (noising): once B is patched too, A's effect vanishes; A inhibits B"),
    ("inhibition", "denoising"): ("0+−", "inhibition", "A dampens B's effect and has none alone (denoising): "
                                  "A inhibits B"),
    # m = b − a(1 − b) under denoising: NIE_A = −1 (B not restored), A's effect once B is restored = 0
    ("b_minus", "denoising"): ("−++", "inhibition", "A works against the pair's joint effect only while B is "
                               "not restored (denoising): once B is restored too, A's effect vanishes; A "
                               "inhibits B"),
    # and under noising: NIE_A = 0, NIE_B = −2, INT = +1: A halves B's effect
    ("b_minus", "noising"): ("0+−", "inhibition", "A dampens B's effect and has none alone (noising): A "
                             "inhibits B"),
    ("lessening", "noising"): ("−++", "inhibition", "A works against the pair's joint effect while B is intact, "
                               "and less once B is patched too (noising); A inhibits B"),
    ("flipping", "noising"): ("−++", "inhibition", "A works against the pair's joint effect while B is intact, "
                              "and with it once B is patched too (noising): B turns A's effect round; A "
                              "inhibits B"),
    ("conditional", "noising"): ("++−", "overlap", NOISING_OVERLAP),
    ("conditional", "denoising"): ("+0+", "conditional", "B matters only once A is restored too (denoising): "
                                   "its single patch is small, the interaction carries it"),
    ("backed_up", "noising"): ("+0+", "conditional", "B matters only once A is patched too (noising): its "
                               "single patch is small, the interaction carries it"),
    ("compounding", "noising"): ("+++", "synergy", "A and B are synergistic (noising): together they do more "
                                 "than the sum of their single patches"),
    ("compounding", "denoising"): ("++−", "overlap", DENOISING_OVERLAP),
    ("boost", "denoising"): ("+++", "synergy", "A and B are synergistic (denoising): together they do more "
                             "than the sum of their single patches"),
    ("mixed", "noising"): ("−−+", "mixed", "A and B (noising): signs −−+ fit no single planted mechanism"),
}


@pytest.mark.parametrize("mechanism,direction", sorted(TRUTH))
def test_planted_mechanisms_read_as_planted(mechanism, direction):
    reading = game_reading(MECHANISMS[mechanism], direction, serial=mechanism == "serial")
    pattern, mech, sentence = TRUTH[(mechanism, direction)]
    assert "".join(reading.pattern) == pattern
    assert reading.mechanism == mech
    assert reading.sentence == sentence


def test_every_branch_has_its_own_sentence():
    """A sentence swapped between two branches would make two planted rows print the same words."""
    by_sentence = {}
    for key, (_, _, sentence) in TRUTH.items():
        by_sentence.setdefault(sentence, set()).add(key)
    shared = {s: k for s, k in by_sentence.items() if len(k) > 1}
    # only the overlap rows share a sentence, and they are one branch each (noising, denoising)
    assert set(shared) == {NOISING_OVERLAP, DENOISING_OVERLAP}


@pytest.mark.parametrize("mechanism,joint", [("and", "an AND"), ("or", "an OR"), ("serial", "a serial chain")])
def test_both_directions_name_the_planted_mechanism(mechanism, joint):
    readings = [game_reading(MECHANISMS[mechanism], d, serial=mechanism == "serial") for d in ("noising", "denoising")]
    assert read_directions(*readings).startswith(joint)
    # the other planted games name no joint mechanism
    for other in ("inhibition", "conditional", "compounding"):
        assert read_directions(*[game_reading(MECHANISMS[other], d) for d in ("noising", "denoising")]) == ""


def test_swapped_members_give_the_same_reading():
    for (mechanism, direction), (_, mech, sentence) in TRUTH.items():
        game = state_game(MECHANISMS[mechanism], direction, serial=mechanism == "serial")
        singles, ints = nie(game)[0], interactions(game, order=2)[1]
        swapped = read_pair("B", "A", float(singles[1]), float(singles[0]), float(ints[0, 0]), direction)
        assert swapped.mechanism == mech
        if mech not in ("overlap", "mixed", "only together", "synergy", "additive"):  # symmetric words
            assert swapped.sentence == sentence


def test_states_small_and_uncertain_are_different():
    assert state(0.5, 0.2, 0.8, band=0.1) == "+" and state(-0.5, -0.8, -0.2, band=0.1) == "−"
    assert state(0.01, -0.05, 0.05, band=0.1) == "0"  # CI inside the floor: small
    assert state(0.01, -0.5, 0.5, band=0.1) == "?"  # CI includes 0 and reaches past the floor
    assert state(0.05, 0.01, 0.3, band=0.1) == "?"  # nonzero, mean under the floor, CI past it
    assert state(0.5, -0.1, 1.1, band=0.1) == "?"  # a large mean whose CI includes 0


def exact(mean, spread, n=32, seed=0):
    """A per-prompt sample `[n]` with exactly this mean and standard deviation."""
    z = np.random.default_rng(seed).normal(size=n)
    return mean + spread * (z - z.mean()) / z.std()


def test_an_uncertain_member_is_named_not_read_as_small():
    """The issue's noising L0H1,L0H2: L0H2 alone +0.630 [−0.09, +1.32], INT −0.583. Read as '0' it printed
    'L0H2 matters only once L0H1 is patched too', the reverse of its numbers; it is undetermined."""
    l0h1, l0h2, inter = exact(-2.0, 0.3), exact(0.63, 2.0, seed=1), exact(-0.583, 0.2, seed=2)
    reading, stats = read_pair_per_prompt("L0H1", "L0H2", l0h1, l0h2, inter, "noising")
    assert stats["nie_b"][1] < 0 < stats["nie_b"][2]
    assert reading.mechanism == "undetermined" and reading.undetermined == ("nie_b",)
    assert reading.label() == "undetermined (NIE L0H2)"
    assert reading.sentence == ("L0H1 and L0H2 (noising): no reading; NIE_L0H2 is undetermined (95% CI includes "
                                "0 and reaches past the size floor)")
    # the same means with a tight spread: L0H2 is supported ('+' against J < 0 is '−'), not small
    reading, _ = read_pair_per_prompt("L0H1", "L0H2", l0h1, exact(0.63, 0.2, seed=1), inter, "noising")
    assert reading.pattern[1] == "−" and "only once" not in reading.sentence


def test_a_small_member_reads_as_small_and_an_uncertain_one_does_not():
    """B's NIE is 0.01 with J's sign: with a spread of 0.05 its CI lies inside 15% of its effect once A is
    patched (0.51) and it is small (conditional); with a spread of 2 it is uncertain (undetermined)."""
    a, inter = exact(-0.5, 0.1), exact(-0.5, 0.1, seed=2)
    small, _ = read_pair_per_prompt("A", "B", a, exact(-0.01, 0.05, seed=1), inter, "noising")
    assert small.pattern == ("+", "0", "+") and small.mechanism == "conditional"
    unsure, _ = read_pair_per_prompt("A", "B", a, exact(-0.01, 2.0, seed=1), inter, "noising")
    assert unsure.pattern == ("+", "?", "+") and unsure.mechanism == "undetermined"


def test_uncertain_interaction_and_joint_are_undetermined_not_additive():
    reading, stats = read_pair_per_prompt("A", "B", exact(-1.0, 0.1), exact(-1.0, 0.1, seed=1),
                                          exact(0.3, 3.0, seed=2), "noising")
    assert stats["int"][1] < 0 < stats["int"][2]
    assert reading.mechanism == "undetermined" and reading.undetermined == ("int",)
    # an interaction whose whole CI lies under 15% of the smaller NIE is additive
    reading, _ = read_pair_per_prompt("A", "B", exact(-1.0, 0.1), exact(-1.0, 0.1, seed=1),
                                      exact(0.02, 0.1, seed=2), "noising")
    assert reading.mechanism == "additive"
    # NIEs +1, +1 and INT −2: the joint effect's CI includes 0, so no sign relative to it is read
    reading, stats = read_pair_per_prompt("A", "B", exact(1.0, 0.1), exact(1.0, 0.1, seed=1),
                                          exact(-2.0, 1.0, seed=2), "noising")
    assert stats["joint"][1] < 0 < stats["joint"][2]
    assert reading.mechanism == "undetermined" and reading.undetermined == ("joint",)
    assert "the joint effect J is undetermined" in reading.sentence


def test_inhibition_whose_effect_once_the_other_is_patched_is_uncertain():
    """A works against J (NIE_A = +1 against J = −5) while B is intact; its effect once B is patched,
    NIE_A + INT = 0 with a CI of about ±0.5, is neither vanishing nor supported."""
    reading, stats = read_pair_per_prompt("A", "B", exact(1.0, 0.05), exact(-5.0, 0.1, seed=1),
                                          exact(-1.0, 1.5, seed=2), "noising")
    assert reading.pattern == ("−", "+", "+") and stats["a_given_b"][1] < -0.15 and stats["a_given_b"][2] > 0.15
    assert reading.sentence == ("A works against the pair's joint effect while B is intact (noising); its effect "
                                "once B is patched too is undetermined; A inhibits B")


def test_a_small_member_whose_effect_vanishes_with_the_other_reads_as_overlap():
    """L1H0/L3H2 on ioi-small: NIEs −13.98 and −0.81, INT +0.89: the small head's effect needs the large
    one intact (necessity overlap), whatever the large one's size."""
    reading = read_pair("L1H0", "L3H2", -13.98, -0.81, 0.886, "noising")
    assert reading.mechanism == "overlap" and "L3H2's effect needs L1H0 intact" in reading.sentence


def test_every_pattern_of_supported_states_gets_one_reading():
    """Brute force over all sign patterns of means (no CIs): each reads as one mechanism, never 'undetermined'."""
    for na, nb, i in itertools.product((-1.0, -0.01, 1.0), (-1.0, -0.01, 1.0), (-0.6, 0.6)):
        r = read_pair("A", "B", na, nb, i, "noising")
        assert r.mechanism != "undetermined" and "?" not in r.pattern

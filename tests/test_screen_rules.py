"""The rules behind the screen section's sentences, each on a case whose answer is known: recall@k's chance
tail against enumeration of every random top-k, the floor any ranking reaches, sign failures on planted
per-prompt values, and the simultaneous intervals' coverage of a family of zero means."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from intjax.errors import InputError
from intjax.bootstrap import standard_error
from intjax.estimands.screen_rules import (least_overlap, overlap_p_value, read_order, read_recall, sign_checks,
                                          simultaneous_cis)


@pytest.mark.parametrize("n,k", [(6, 3), (7, 2), (15, 10), (12, 4)])
def test_overlap_tail_and_floor_against_every_random_top_k(n, k):
    fixed = set(range(k))
    overlaps = np.array([len(fixed & set(c)) for c in itertools.combinations(range(n), k)])
    assert least_overlap(k, n) == overlaps.min()
    for m in range(k + 1):
        assert overlap_p_value(m, k, n) == pytest.approx(np.mean(overlaps >= m), abs=1e-12)


def test_recall_readings_at_the_demo_size_and_where_recall_cannot_inform():
    r = read_recall(5, 10, 15)  # 15 pairs, k = 10: any two top-10 lists share at least 5
    assert (r.recall, r.floor, r.p_value, r.beyond_chance) == (0.5, 0.5, 1.0, False)
    assert r.chance == pytest.approx(10 / 15) and r.can_inform
    assert read_recall(10, 10, 15).beyond_chance  # a perfect ranking: 1 in C(15, 10) = 3003 random ones
    assert read_recall(9, 10, 15).p_value == pytest.approx(51 / 3003)
    assert not read_recall(8, 10, 15).beyond_chance  # 501 in 3003
    assert not read_recall(3, 3, 6).can_inform and not read_recall(3, 3, 6).beyond_chance  # 1 in 20 = 5%
    assert read_recall(3, 3, 45).beyond_chance and not read_recall(1, 3, 45).beyond_chance
    with pytest.raises(InputError, match="recall@k"):
        read_recall(0, 0, 5)


def test_order_reading_from_the_interval():
    assert read_order(0.21, 0.48) == "agrees"
    assert read_order(-0.6, -0.1) == "reverses"
    assert read_order(-0.2, 0.4) == "undetermined"
    assert read_order(float("nan"), float("nan")) == "undetermined"


def test_sign_checks_on_planted_per_prompt_values():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(3, 16))
    centred = noise[1] - noise[1].mean()
    exact = np.stack([10 + noise[0]] * 3 + [noise[2] - noise[2].mean()], 1)  # three strong pairs, one at 0
    screen = np.stack([-5 + noise[1], 3 + noise[1], 5 * centred, -5 + noise[1]], 1)
    checks = sign_checks(screen, exact)
    assert [c.verdict for c in checks] == ["wrong sign", "right sign", "not compared", "not compared"]
    assert checks[0].exact.low < 10 + noise[0].mean() < checks[0].exact.high and checks[0].screen.high < 0
    assert checks[2].screen.mean == pytest.approx(0, abs=1e-12) and checks[3].exact.mean == pytest.approx(0, abs=1e-12)
    assert [c.alone for c in checks] == [c.verdict for c in checks]  # strong pairs: the same either way
    one = sign_checks(np.array([[-5.0]]), np.array([[10.0]]))  # one prompt: no interval, no comparison
    assert one[0].verdict == "not compared"


def test_simultaneous_intervals_cover_a_family_of_zero_means_where_one_at_a_time_ones_do_not():
    rng = np.random.default_rng(1)
    covered = naive_covered = 0
    for r in range(200):  # 15 pairs whose true mean is 0, 16 prompts, unequal spreads
        x = rng.normal(size=(16, 15)) * np.linspace(0.2, 3, 15)
        covered += all(c.low <= 0 <= c.high for c in simultaneous_cis(x, 500, r))
        naive_covered += bool((np.abs(x.mean(0)) <= 1.96 * standard_error(x)).all())
    assert covered / 200 >= 0.92 and naive_covered / 200 < 0.6


def with_t(column: np.ndarray, t: float) -> np.ndarray:
    """`column` centred and shifted so that its mean is t standard errors."""
    c = column - column.mean()
    return c + t * standard_error(c)


def test_a_wrong_sign_at_three_standard_errors_holds_for_one_pair_alone_but_not_among_ten():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(2, 16, 10))
    exact = np.stack([with_t(noise[0, :, 0], 3.0)] + [with_t(noise[0, :, j], 0.5) for j in range(1, 10)], 1)
    screen = np.stack([with_t(noise[1, :, 0], -3.0)] + [with_t(noise[1, :, j], 0.5) for j in range(1, 10)], 1)
    checks = sign_checks(screen, exact)
    assert (checks[0].alone, checks[0].verdict) == ("wrong sign", "not compared")
    first = checks[0]  # its own intervals sit inside the family's, around the same means (t = ±3)
    assert first.exact.low < first.exact_alone.low < first.exact.mean == pytest.approx(first.exact_alone.mean)
    assert first.screen_alone.high < 0 < first.screen.high and first.exact_alone.low > 0
    assert all(c.verdict == c.alone == "not compared" for c in checks[1:])
    assert sign_checks(screen[:, :1], exact[:, :1])[0].verdict == "wrong sign"  # checked alone, it holds


def test_a_rounding_level_column_does_not_blow_up_the_family_s_intervals():
    rng = np.random.default_rng(3)
    strong = 10 + rng.normal(size=16)
    rounding = np.r_[np.zeros(14), 1e-16, 2e-16]  # an INT that is 0 up to rounding: 12% of resamples all 0
    ci = simultaneous_cis(np.stack([strong, rounding], 1))[0]
    assert 0 < ci.high - ci.mean < 6 * standard_error(strong) and ci.low > 0  # unfloored: b ≈ 1e290

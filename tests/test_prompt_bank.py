"""A run's prompt sets are generated once: the bank returns the very set ioi_prompts makes, and the same
object each time it is asked for it."""

from __future__ import annotations

import numpy as np

from intjax.ioi.task import PromptBank, ioi_prompts


def test_the_bank_builds_each_set_once_and_as_ioi_prompts_does():
    from intjax.loading import load_model

    _, tok = load_model("ioi-small")
    bank = PromptBank(tok)
    first = bank.get(6, 3, "s2_flip")
    assert bank.get(6, 3, "s2_flip") is first and bank.get(6, 4, "s2_flip") is not first
    fresh = ioi_prompts(tok, 6, seed=3, corruption="s2_flip")
    assert first.texts == fresh.texts
    for a, b in zip((*first.prompts.clean, *first.prompts.corrupted), (*fresh.prompts.clean, *fresh.prompts.corrupted)):
        np.testing.assert_array_equal(a, b)
    assert sorted(bank.built) == [(6, 3, "s2_flip"), (6, 4, "s2_flip")]

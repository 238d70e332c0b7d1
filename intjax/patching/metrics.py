"""Scalar metrics y read off the final-position logits."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
from jaxtyping import Array, Float, Int

from intjax.errors import InputError

MetricFn = Callable[[Float[Array, " K"], Int[Array, ""], Int[Array, ""]], Float[Array, ""]]


@dataclasses.dataclass(frozen=True)
class Metric:
    """y = fn(logits, target, foil) at the last position.

    With `full_vocab=False` only the target and foil columns of the unembedding
    are computed: `logits` is `[2]` and `target, foil` are 0 and 1. With
    `full_vocab=True`, `logits` is `[vocab]` and `target, foil` are token ids.
    Either way `fn = lambda logits, t, f: logits[t] - logits[f]` reads correctly.
    `final_norm=False` reads logits without the final LayerNorm (linear in the
    residual stream).
    """

    name: str
    fn: MetricFn
    full_vocab: bool = False
    final_norm: bool = True


def _logit_diff(logits, t, f):
    return logits[t] - logits[f]


def _logprob(logits, t, f):
    return jax.nn.log_softmax(logits)[t]


def _prob(logits, t, f):
    return jax.nn.softmax(logits)[t]


METRICS = {
    "logit_diff": Metric("logit_diff", _logit_diff),
    "logprob": Metric("logprob", _logprob, full_vocab=True),
    "prob": Metric("prob", _prob, full_vocab=True),
    "logit_diff_direct": Metric("logit_diff_direct", _logit_diff, final_norm=False),
}


def get_metric(metric: str | Metric) -> Metric:
    """A built-in metric by name (logit_diff, logprob, prob), or a Metric as given."""
    if isinstance(metric, Metric):
        return metric
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)} or pass a Metric")
    return METRICS[metric]

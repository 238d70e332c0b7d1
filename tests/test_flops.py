"""`patched_run_flops` against matmul FLOPs counted by hand, matrix by matrix, and `bytes_per_run`
against activations counted by hand, for GPT-2 and for a Llama with grouped-query attention and a
gated MLP."""

from __future__ import annotations

import numpy as np

import intjax
from intjax.patching import build_problem, make_prompt_set, parse_components, patched_run_flops
from intjax.patching.evaluate import bytes_per_run
from intjax.patching.prompts import padded_length
from test_llama import save_hf_llama

N_TOKENS = 6  # one prompt of 6 tokens, no shared prefix
T = padded_length(N_TOKENS)  # the positions every run computes: 8 (prompts run at a bucketed length)
# Masks: a residual in layer 0 (every layer from its residual on), a head in layer 1 (every layer from
# layer 1's residual on), the MLP of the last layer (the last layer from its residual: keys and values at
# every token, the rest at the read position). The evaluator enters each mask's first layer at its residual.
SPEC = "L0RESID@2,L1H0,L2MLP"
MASKS = np.eye(3)


def hand_counts(q, k, v, qk, pv, o, mlp, readout):
    """FLOPs of the three masks from one token's matrices (2·in·out each), the attention products per
    query over T keys, and the readout: layers 0..1 at all T tokens, the last layer's keys and values at
    all T tokens and the rest at the read position."""
    layer = q + k + v + qk + pv + o + mlp
    last = T * (k + v) + q + qk + pv + o + mlp
    return [2 * T * layer + last + readout,  # from layer 0's residual
            T * layer + last + readout,  # from layer 1's residual
            last + readout]  # the last layer from its residual


def problem_of(model):
    rng = np.random.default_rng(0)
    V = model.config.vocab_size
    rows = [dict(clean_ids=rng.integers(0, V, N_TOKENS).tolist(), corrupted_ids=rng.integers(0, V, N_TOKENS).tolist(),
                 target_id=1, foil_id=2)]
    rows[0]["corrupted_ids"][0] = (rows[0]["clean_ids"][0] + 1) % V  # no shared prefix
    problem = build_problem(model, make_prompt_set(rows), parse_components(SPEC, model.config))
    assert problem.shared_prefix == 0
    return problem


def test_gpt2_flops_by_hand(tiny_model):
    """Tiny GPT-2: d_model 64, 4 heads of 16, d_mlp 256; q, k, v and the output projection 64 x 64 each,
    the MLP 64 x 256 and 256 x 64."""
    model = tiny_model[0]
    expected = hand_counts(q=2 * 64 * 64, k=2 * 64 * 64, v=2 * 64 * 64, qk=2 * T * 64, pv=2 * T * 64,
                           o=2 * 64 * 64, mlp=2 * 64 * 256 * 2, readout=2 * 64 * 2)
    problem = problem_of(model)
    for mask, count in zip(MASKS, expected):
        assert patched_run_flops(problem, mask[None]) == count
    assert patched_run_flops(problem, MASKS) == sum(expected)
    # float32, per token: resid, its norm, attention output, mid residual; q, k, v, z (64 each); the MLP's
    # pre-activation and activation (256 each); scores, pattern and a softmax temporary (4 heads x 8 keys)
    assert bytes_per_run(problem) == 4 * T * (4 * 64 + 4 * 64 + 2 * 256 + 3 * 4 * T)


def test_grouped_query_llama_flops_by_hand(tmp_path):
    """Llama with d_model 64, 4 query heads of 32 on 2 key/value heads, d_mlp 96: q 64 x 128, k and v
    64 x 64 each (half the query width), the output projection 128 x 64, and three MLP matrices (gate
    and up 64 x 96, down 96 x 64)."""
    save_hf_llama(tmp_path, "llama", head_dim=32)
    model = intjax.load_model(tmp_path, tokenizer=False)[0]
    assert (model.config.n_heads, model.config.n_kv_heads, model.config.d_head) == (4, 2, 32)
    expected = hand_counts(q=2 * 64 * 128, k=2 * 64 * 64, v=2 * 64 * 64, qk=2 * T * 128, pv=2 * T * 128,
                           o=2 * 128 * 64, mlp=3 * 2 * 64 * 96, readout=2 * 64 * 2)
    problem = problem_of(model)
    assert [patched_run_flops(problem, m[None]) for m in MASKS] == expected
    # q and z 128 wide, k and v 64 (half), three MLP vectors of 96 (gate, up, their product)
    assert bytes_per_run(problem) == 4 * T * (4 * 64 + 2 * 128 + 2 * 64 + 3 * 96 + 3 * 4 * T)


def test_edge_flops_by_hand(tiny_model):
    """Tiny GPT-2 (d_model 64, 4 heads of 16) with three edges under recompute: senders L0H1, L1H0, L0H3
    (4 padded slots, L1H0 carried), receivers a query input, an MLP input and the logits. On top of the
    node counts: every layer run builds the query and MLP inputs (2·4 senders·6 tokens·64·(4 heads + 1)),
    projects its z through each W_O (2·4·16·64 per computed position) and twice more for the MLP's own-layer
    heads; the logits edge weighs the senders' writes at the read position (2·4·64)."""
    model = tiny_model[0]
    rng = np.random.default_rng(0)
    V = model.config.vocab_size
    rows = [dict(clean_ids=rng.integers(1, V, T).tolist(), corrupted_ids=[0] + rng.integers(1, V, T - 1).tolist(),
                 target_id=1, foil_id=2)]
    problem = build_problem(model, make_prompt_set(rows), parse_components(
        "L0H1>L1H2.q,L1H0>L2MLP,L0H3>logits", model.config), semantics="recompute")
    assert problem.shared_prefix == 0 and problem.carried == 1 and problem.data.edges.delta.shape[1] == 4
    q = k = v = o = 2 * 64 * 64
    layer = q + k + v + 2 * T * 64 * 2 + o + 2 * 64 * 256 * 2
    last = T * (k + v) + q + 2 * T * 64 * 2 + o + 2 * 64 * 256 * 2
    readout = 2 * 64 * 2
    inputs, per_row, logits = 2 * 4 * T * 64 * (4 + 1), 2 * 4 * 16 * 64 * 3, 2 * 4 * 64
    from_layer_1 = T * layer + last + readout + (inputs + T * per_row) + (inputs + per_row) + logits
    from_layer_2 = last + readout + inputs + per_row + logits
    assert [patched_run_flops(problem, m[None]) for m in np.eye(3)] == [from_layer_1, from_layer_2, from_layer_2]

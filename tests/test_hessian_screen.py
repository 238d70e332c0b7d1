"""The Hessian screen of pair interactions (H_ij = ∂²f/∂α_i∂α_j at α = 0): closed form on planted
polynomial games; on GPT-2, a grouped-query Llama and GPT-NeoX (heads, MLPs, key/value groups, both
directions) against central finite differences of the float64 evaluator and of HF torch runs in float64
with interpolated patches; `intjax patch --estimate hessian --verify-top K` against the exact sweep; the
screen's statistics against scipy; its compiled programs."""

from __future__ import annotations

import copy
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

import hf_patching_llama as ref_llama
import intjax
from intjax.cli import main
from intjax.compile_stats import count_compiles
from intjax.estimands import FunctionGame, interactions
from intjax.estimands.hessian import HVP_BLOCK, base_hessian, pair_values, pairs_of
from intjax.estimands.screen import recall_at, screen_check, spearman, strongest
from intjax.patching import build_problem, make_prompt_set, parse_components
from intjax.patching.evaluate import compile_view
from intjax.results import read_estimates
from test_llama import save_hf_llama
from test_patching import prompt_rows, reference_values as gpt2_reference


class PromptwisePolynomial(FunctionGame):
    """f_p(α) = g_p·α + ½ αᵀQ_pα + c_p Σ_{i<j} α_i² α_j, with one α row per prompt (a PromptwiseGame):
    H_p(0) = Q_p exactly, and INT_ij = Q_p,ij + c_p (the cubic term is 0 at the base, 1 on the vertex)."""

    def __init__(self, n: int, P: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.g, self.c = rng.normal(size=(P, n)), rng.normal(size=P)
        Q = rng.normal(size=(P, n, n))
        self.Q = (Q + Q.transpose(0, 2, 1)) / 2
        self.P = P
        super().__init__(lambda a: jax.vmap(self.one)(jnp.broadcast_to(a, (P, n)), jnp.arange(P)), n)

    def one(self, a, p):
        upper = jnp.triu(jnp.ones((self._n, self._n)), 1)
        g, Q, c = (jnp.asarray(x, a.dtype)[p] for x in (self.g, self.Q, self.c))
        return g @ a + a @ Q @ a / 2 + c * (a ** 2) @ upper @ a

    @property
    def n_prompts(self) -> int:
        """P."""
        return self.P

    def per_prompt(self, alpha):
        """f with row p of α at prompt p."""
        return jax.vmap(self.one)(alpha, jnp.arange(self.P))


@pytest.mark.parametrize("n", [3, HVP_BLOCK, 2 * HVP_BLOCK + 3])
def test_planted_quadratic_plus_cubic_hessian_and_screen_error_in_closed_form(n):
    """n below, at and across whole blocks of tangents (the last one padded)."""
    game = PromptwisePolynomial(n, P=3)
    H = base_hessian(game)
    np.testing.assert_allclose(H, game.Q, atol=1e-5)
    shared = base_hessian(FunctionGame(game.fn, n))  # the path for games without per-prompt α
    np.testing.assert_allclose(shared, game.Q, atol=1e-5)
    sets, exact, _ = interactions(game, order=2)
    assert sets == pairs_of(n)
    np.testing.assert_allclose(exact, pair_values(game.Q) + game.c[:, None], atol=1e-4)
    check = screen_check(pair_values(H), exact)
    assert check["max_abs_error"] == pytest.approx(abs(game.c.mean()), abs=1e-4)  # every pair is off by mean c
    assert check["max_abs_error_any_prompt"] == pytest.approx(np.abs(game.c).max(), abs=1e-4)


def test_screen_statistics_against_scipy_and_by_hand():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 6, 40).astype(float), rng.normal(size=40)
    assert spearman(a, a + b) == pytest.approx(spearmanr(a, a + b).correlation, abs=1e-12)  # ties in a
    screen = np.array([[3.0, -5.0, 1.0, 0.5, 4.0], [3.0, -5.0, 1.0, 0.5, 4.0]])
    exact = np.array([[-6.0, 0.0, 2.0, 0.1, 5.0], [-6.0, 0.0, 2.0, 0.1, 5.0]])
    assert strongest(screen, 3).tolist() == [1, 4, 0]
    assert recall_at(screen, exact, 2) == 0.5  # exact top 2: {0, 4}; screen's: {1, 4}
    check = screen_check(screen[:, [1, 4, 0]], exact[:, [1, 4, 0]])
    assert check["max_abs_error"] == 9.0 and check["mean_abs_error"] == pytest.approx(15 / 3)
    assert check["sign_agreement"] == pytest.approx(1 / 3) and check["exact_scale"] == 6.0
    # no spread over prompts: exact 0 on pair 1 is not compared; 4 against 5 right, 3 against -6 wrong
    assert check["signs_compared"] == 2 and check["signs_wrong"] == 1


SPECS = {  # heads, MLPs and key/value groups (GQA: L0KV1 is what query heads 2 and 3 read)
    "gpt2": "L0H1,L1H2,L2H0,L0MLP,L1MLP,L1KV3",
    "llama": "L0H1,L1H2,L2H3,L1MLP,L0KV1,L1KV0",
    "gpt_neox": "L0H2,L1H0,L2H1,L0MLP,L1KV2,L0KV0",
}


@pytest.fixture(scope="module")
def families(tmp_path_factory, tiny):
    """family -> (folder, torch model): the tiny GPT-2, a grouped-query Llama (4 query, 2 key/value heads)
    and GPT-NeoX."""
    out = {"gpt2": tiny}
    for family in ("llama", "gpt_neox"):
        folder = tmp_path_factory.mktemp(f"hessian-{family}")
        out[family] = folder, save_hf_llama(folder, family)
    return out


def fd_masks(n: int, h: float) -> tuple[np.ndarray, list]:
    """Masks for central second differences: 0, ±h e_i, and (±h, ±h) on every pair."""
    masks, index = [np.zeros(n)], []
    for i in range(n):
        for s in (1, -1):
            m = np.zeros(n)
            m[i] = s * h
            masks.append(m)
    for i, j in itertools.combinations(range(n), 2):
        for si, sj in itertools.product((1, -1), repeat=2):
            m = np.zeros(n)
            m[i], m[j] = si * h, sj * h
            masks.append(m)
        index.append((i, j))
    return np.array(masks), index


def fd_hessian(values: np.ndarray, n: int, h: float) -> np.ndarray:
    """H `[P, n, n]` from f at `fd_masks` (`[M, P]`)."""
    P = values.shape[1]
    H = np.zeros((P, n, n))
    f0 = values[0]
    for i in range(n):
        H[:, i, i] = (values[1 + 2 * i] - 2 * f0 + values[2 + 2 * i]) / h ** 2
    for k, (i, j) in enumerate(itertools.combinations(range(n), 2)):
        pp, pm, mp, mm = values[1 + 2 * n + 4 * k: 5 + 2 * n + 4 * k]
        H[:, i, j] = H[:, j, i] = (pp - pm - mp + mm) / (4 * h ** 2)
    return H


@pytest.mark.parametrize("family", ["gpt2", pytest.param("llama", marks=pytest.mark.slow),
                                    pytest.param("gpt_neox", marks=pytest.mark.slow)])
def test_hessian_equals_finite_differences_of_the_evaluator_and_of_hf_torch(families, family):
    """H in float32 from Hessian-vector products, both directions, against central differences (h = 1e-3)
    of f in float64, once from intjax's chunked evaluator and once from HF's torch model in float64 with
    each component set to (1 − α)·b + α·s in forward hooks (an independent implementation of f)."""
    folder, hf_model = families[family]
    model = intjax.load_model(folder, tokenizer=False)[0]
    rows = prompt_rows(model.config.vocab_size, (7, 9))
    prompts = make_prompt_set(rows)
    components = parse_components(SPECS[family], model.config)
    n, h = len(components), 1e-3
    masks, _ = fd_masks(n, h)
    torch64 = float64_torch(hf_model)
    programs = []
    for direction in ("noising", "denoising"):
        problem = build_problem(model, prompts, components, direction=direction)
        with count_compiles() as compiled:
            H = base_hessian(problem, compiled=compile_view(problem))
        programs.append(compiled.programs)
        jax.config.update("jax_enable_x64", True)
        try:
            model64 = intjax.load_model(folder, tokenizer=False, dtype=jnp.float64)[0]
            problem64 = build_problem(model64, prompts, components, direction=direction)
            evaluator = fd_hessian(problem64.values(masks), n, h)
        finally:
            jax.config.update("jax_enable_x64", False)
        if family == "gpt2":
            values = gpt2_reference(torch64, rows, components, masks, direction, "counterfactual", "recompute")
        else:
            values = ref_llama.reference_values(torch64, rows, components, masks, direction)
        torch_fd = fd_hessian(values, n, h)
        scale = np.abs(torch_fd).max()
        off = ~np.eye(n, dtype=bool)
        assert scale > 0.05 and (np.abs(torch_fd[:, off]) > 1e-3 * scale).mean() > 0.5  # pairs do interact
        np.testing.assert_allclose(evaluator, torch_fd, atol=1e-6 * scale)  # the two references agree
        np.testing.assert_allclose(H, torch_fd, atol=3e-5 * scale, rtol=1e-4)
        print(f"{family} {direction}: max |H - torch FD| = {np.abs(H - torch_fd).max():.1e} (scale {scale:.2f})")
    # one program: its shapes come from the component slots and the block (never from n) and the labels it
    # never reads (components, direction) are blanked, so both directions and any other set of the same
    # site kinds and slot count share it
    other = build_problem(model, prompts, components[1:][::-1], direction="denoising")
    with count_compiles() as compiled:
        base_hessian(other, compiled=compile_view(other))
    assert programs[0] <= 1 and programs[1] == 0 and compiled.programs == 0, (programs, compiled.by_name)


def float64_torch(hf_model):
    """A float64 copy of a HF model, its RMSNorms (which HF computes in float32 whatever the weights) written
    out in float64, so that second differences at h = 1e-3 are not rounding noise."""
    import torch

    model = copy.deepcopy(hf_model).double()
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = (lambda x, m=module: m.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)
                                                                                + m.variance_epsilon))
    return model


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_patch_screen_then_verify_against_the_exact_sweep(tiny, tmp_path, capsys):
    """`--estimate hessian --verify-top 4` writes every pair's H under the exact sweep's item names, the
    exact INT of the 4 pairs strongest by |mean H| equal to the exact sweep's, and the screen's error on
    them as the two files give it."""
    folder, _ = tiny
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6, 8, 7)))
    spec = "L0H1,L0H3,L1H0,L1MLP,L2H2,L0KV2"
    common = ["patch", "--model", str(folder), "--data", str(data), "--components", spec, "--order", "2",
              "--direction", "denoising", "--quiet"]
    assert main(common + ["--out", str(tmp_path / "exact")]) == 0
    assert main(common + ["--estimate", "hessian", "--verify-top", "4", "--out", str(tmp_path / "screen")]) == 0
    exact, screen = read_estimates(tmp_path / "exact"), read_estimates(tmp_path / "screen")
    assert set(screen) == {"metric_clean", "metric_corrupted", "int2_hessian_denoising", "int2_denoising",
                           "screen_check_denoising"}
    H = screen["int2_hessian_denoising"]
    assert H.items == exact["int2_denoising"].items and H.options["estimate"] == "hessian"
    top = [H.items[k] for k in np.argsort(-np.abs(H.mean()))[:4]]
    verified = screen["int2_denoising"]
    assert list(verified.items) == top
    want = np.stack([exact["int2_denoising"].column(name) for name in top], axis=1)
    np.testing.assert_allclose(verified.values, want, atol=1e-5)
    err = np.abs(np.stack([H.column(name) for name in top], axis=1).mean(0) - want.mean(0))
    check = dict(zip(screen["screen_check_denoising"].items, screen["screen_check_denoising"].values[0]))
    assert check["max_abs_error"] == pytest.approx(err.max(), abs=1e-5)
    assert check["mean_abs_error"] == pytest.approx(err.mean(), abs=1e-5)
    assert "hessian screen (denoising), its 4 strongest pairs" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--estimate", "hessian"], "give order=2"),
    (["--order", "2", "--verify-top", "3"], "give estimate='hessian'"),
])
def test_screen_refuses_what_it_cannot_do(tiny, tmp_path, capsys, args, message):
    data = write_jsonl(tmp_path / "p.jsonl", prompt_rows(300, (6,)))
    assert main(["patch", "--model", str(tiny[0]), "--data", str(data), "--components", "L0H1,L1H0",
                 "--out", str(tmp_path / "out"), "--quiet", *args]) == 2
    assert message in capsys.readouterr().err


def test_blocks_run_from_their_first_layer_and_fill_pairs_by_symmetry(tiny):
    """Every head and MLP (15 components, 2 blocks of tangents in layer order, the second starting above
    layer 0, so its columns hold only the pairs at or above that layer): H against float64 central
    differences of the evaluator."""
    folder, _ = tiny
    model = intjax.load_model(folder, tokenizer=False)[0]
    prompts = make_prompt_set(prompt_rows(model.config.vocab_size, (6, 8), seed=2))
    components = parse_components("mlps,heads", model.config)  # not in layer order: the screen sorts them
    problem = build_problem(model, prompts, components)
    block = 8  # 2 blocks
    H = base_hessian(problem, block=block, compiled=compile_view(problem))
    n, h = len(components), 1e-3
    jax.config.update("jax_enable_x64", True)
    try:
        model64 = intjax.load_model(folder, tokenizer=False, dtype=jnp.float64)[0]
        fd = fd_hessian(build_problem(model64, prompts, components).values(fd_masks(n, h)[0]), n, h)
    finally:
        jax.config.update("jax_enable_x64", False)
    scale = np.abs(fd).max()
    assert np.sort(problem.first_layers())[block] > 0 and scale > 0.05
    np.testing.assert_allclose(H, fd, atol=3e-5 * scale, rtol=1e-4)

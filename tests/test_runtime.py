"""The process-wide JAX settings the intjax command runs under (settings tests: they check which
configuration is in force, not numbers; CPUs compute float32 products in full precision either way)."""

from __future__ import annotations

import jax

from intjax import cli
from intjax.runtime import exact_matmuls


def test_exact_matmuls_sets_highest_precision_and_restores_it(monkeypatch):
    monkeypatch.delenv("JAX_DEFAULT_MATMUL_PRECISION", raising=False)
    before = jax.config.jax_default_matmul_precision
    with exact_matmuls():
        assert jax.config.jax_default_matmul_precision == "highest"
    assert jax.config.jax_default_matmul_precision == before


def test_the_environment_variable_overrides_exact_matmuls(monkeypatch):
    monkeypatch.setenv("JAX_DEFAULT_MATMUL_PRECISION", "default")
    before = jax.config.jax_default_matmul_precision
    with exact_matmuls():
        assert jax.config.jax_default_matmul_precision == before


def test_the_command_runs_under_exact_matmuls_and_info_says_so(monkeypatch, capsys):
    monkeypatch.delenv("JAX_DEFAULT_MATMUL_PRECISION", raising=False)
    assert cli.main(["info", "--model", "ioi-small"]) == 0
    assert "float32 matrix products: precision highest" in capsys.readouterr().out
    monkeypatch.setenv("JAX_DEFAULT_MATMUL_PRECISION", "default")
    jax.config.update("jax_default_matmul_precision", "default")  # what JAX reads from the variable at import
    try:
        assert cli.main(["info", "--model", "ioi-small"]) == 0
        assert "float32 matrix products: precision default" in capsys.readouterr().out
    finally:
        jax.config.update("jax_default_matmul_precision", None)

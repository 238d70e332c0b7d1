"""How the report writes numbers: a mean with its standard error, a list of names."""

from __future__ import annotations


def pm(mean: float, se: float) -> str:
    """`+0.123 ± 0.045`: a mean and its standard error."""
    return f"{mean:+.3f} ± {se:.3f}"


def names_text(names: list[str], limit: int = 8) -> str:
    """Up to `limit` names joined by commas, with how many more there are (— for none)."""
    if not names:
        return "—"
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit})" if len(names) > limit else "")

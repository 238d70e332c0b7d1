"""The report's first section: the claims of the paper tested on this analysis (`ioi_claims.claims_section`)."""

from __future__ import annotations

from intjax.ioi.circuit import stage_order
from intjax.ioi.saved import IOIAnalysis
from intjax.report.ioi_claims import claims_section, label_claims_of


def claims_of(analysis: IOIAnalysis) -> list[str]:
    """The claims section's lines: the claim tests, what the model is, and the multiplicity of the report."""
    studies = analysis.studies
    n_labels = sum(len(label_claims_of(studies.remedy(e, "head"))) for e in ("noising", "denoising"))
    n_pairs = len(analysis.results["int2_noising"].items)
    return claims_section(analysis.model_name, analysis.n_layers, analysis.gpt2_small,
                          stage_order(studies.circuit)[0], analysis.claims,
                          n_readings=2 * min(analysis.options.top, n_pairs), n_labels=n_labels)

"""Studies: end-to-end analyses built from the estimands (IOI first)."""

from intjax.studies.ioi_analysis import IOIAnalysisOptions, run_ioi_analysis

__all__ = ["IOIAnalysisOptions", "run_ioi_analysis"]

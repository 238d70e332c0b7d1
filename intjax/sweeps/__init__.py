"""Sweeps at scale: chunks sharded over devices, checkpointed so a crash loses nothing."""

from intjax.sweeps.fingerprint import hash_arrays, sweep_fingerprint
from intjax.sweeps.runner import CheckpointedGame, ResumeError, run_sweep
from intjax.sweeps.vertex_cache import VertexCache

__all__ = ["hash_arrays", "sweep_fingerprint", "ResumeError", "run_sweep", "CheckpointedGame", "VertexCache"]

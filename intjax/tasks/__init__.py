"""Tasks: prompt generators, metrics and known circuits (IOI for now)."""

from intjax.tasks.ioi import (
    ABBA_TEMPLATES,
    BABA_TEMPLATES,
    GPT2_SMALL_IOI_CIRCUIT,
    GPT2_SMALL_IOI_CIRCUIT_SOURCE,
    HELDOUT_NAMES,
    HELDOUT_PLACES,
    IOI_METRIC,
    NAMES,
    OBJECTS,
    PLACES,
    TRAIN_NAMES,
    TRAIN_PLACES,
    IOIPrompts,
    circuit_heads,
    ioi_prompts,
    single_token_words,
)

__all__ = [
    "ABBA_TEMPLATES", "BABA_TEMPLATES", "GPT2_SMALL_IOI_CIRCUIT", "GPT2_SMALL_IOI_CIRCUIT_SOURCE",
    "HELDOUT_NAMES", "HELDOUT_PLACES", "IOI_METRIC", "NAMES", "OBJECTS", "PLACES", "TRAIN_NAMES",
    "TRAIN_PLACES", "IOIPrompts", "circuit_heads", "ioi_prompts", "single_token_words",
]

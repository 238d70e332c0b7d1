"""intjax: activation patching and its interaction effects, at high throughput, in JAX."""

from intjax.errors import ConfigError, InputError, IntjaxError, LoadError
from intjax.loading import load_model
from intjax.model import GPT2, Activations, GPT2Config

__version__ = "0.1.0"

__all__ = [
    "load_model", "GPT2", "GPT2Config", "Activations",
    "IntjaxError", "LoadError", "ConfigError", "InputError", "__version__",
]

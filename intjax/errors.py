"""Errors intjax raises on bad input: each message names the problem and the fix."""


class IntjaxError(Exception):
    """Base class of every error intjax raises on purpose."""


class LoadError(IntjaxError):
    """A model, tokenizer or checkpoint could not be loaded."""


class ConfigError(LoadError):
    """A config.json value that intjax does not implement."""


class InputError(IntjaxError, ValueError):
    """Tokens, prompts, component names or options that cannot be used as given."""

"""Errors with a one-line message that names the problem (never a traceback deep in torch)."""


class PrivauditError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits with status 2."""


class DataError(PrivauditError):
    """A dataset is missing, corrupt, or has the wrong shape, dtype or label range."""


class ConfigError(PrivauditError):
    """A configuration is impossible (e.g. fewer than 2 models, pkeep outside (0, 1))."""


class SignalError(PrivauditError):
    """Signal arrays have inconsistent shapes or contain NaN/inf."""


class TrainingError(PrivauditError):
    """Training failed (e.g. the loss diverged to NaN)."""

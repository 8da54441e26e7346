"""User-facing errors.

Anything a user can cause (a bad file, field, value or model) raises a `DistillError`
whose message is one line naming the culprit. The CLI prints it and exits with code 2;
everything else is a bug and keeps its traceback.
"""


class DistillError(Exception):
    """Bad input: the message names the file, field or model and says what is wrong."""


class ConfigError(DistillError):
    """A run config that cannot be read or does not validate."""


class DataError(DistillError):
    """A dataset or predictions file that cannot be read or is malformed."""


class ModelError(DistillError):
    """A model that cannot be found, loaded or used for the requested task."""

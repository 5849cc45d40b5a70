"""The project's own error types.

Every error a user can cause (a missing file, a malformed annotation, a bad config key, a checkpoint
that does not fit) is raised as a :class:`PoseError` whose message is one line naming the file or
field and what was expected. The CLIs print that line and exit non-zero without a traceback
(``--debug`` shows it); anything else reaching the top is a bug in ``pose``.
"""


class PoseError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""


class ConfigError(PoseError, ValueError):
    """A config file, key or value is missing, unknown, mistyped or inconsistent."""


class DataError(PoseError, ValueError):
    """An annotation, detection, image or video file cannot be used."""


class CheckpointError(PoseError, ValueError):
    """A checkpoint cannot be read, is unsafe, or does not fit the model."""


class DownloadError(PoseError, OSError):
    """A model-zoo download failed or did not match its checksum."""

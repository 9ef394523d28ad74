"""Errors raised by the training package.

    AtelierTrainingError
     +-- WeightFileError        a pinned weight file is missing, corrupted or unreadable
     +-- ArchitectureError      weights do not fit the network they are loaded into

Each message names the file (and the expected sha256 where there is one) so a user
can act on it without reading a torch stack trace.
"""


class AtelierTrainingError(Exception):
    """Base class for errors with a meaning for the user of the training package."""


class WeightFileError(AtelierTrainingError):
    """Raised when a pretrained weight file cannot be fetched, fails its sha256 check or cannot be parsed."""


class ArchitectureError(AtelierTrainingError):
    """Raised when a state dict or imported graph does not match the network's configuration."""

"""Typed exceptions; the CLI turns each into a one-line message and an exit code."""


class EmotionTFError(Exception):
    """Base class for errors the user can act on."""


class ConfigError(EmotionTFError):
    """A config key is unknown or its value is invalid."""


class DataError(EmotionTFError):
    """The data directory is missing, empty or inconsistent."""


class ModelDirError(EmotionTFError):
    """A path given as a model is not a usable export or run directory."""


class ClusterError(EmotionTFError):
    """A worker of a multi-worker training job failed or could not be reached."""


class VideoError(EmotionTFError):
    """A video file or stream cannot be opened or decoded, or has no frames."""


class InputError(EmotionTFError):
    """An image handed to the Python API cannot be used (unreadable, wrong type or shape)."""


class NonFiniteError(EmotionTFError):
    """Numbers that must be finite are not: the training loss or a model's scores (NaN, inf)."""

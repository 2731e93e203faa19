"""The FER recipe as benchmarks use it: `configs/fer2013.yaml` through `load_config`, plus
explicit overrides, so a benchmark measures the model the recipe trains (padding, strides,
dropout and all) unless an override says otherwise."""

from __future__ import annotations

from benchmarks.report import REPO_ROOT
from emotion_tf.config import Config, load_config

FER_RECIPE = REPO_ROOT / "configs" / "fer2013.yaml"
FER_FILE_SIZE = 48  # side of the FER2013 files; the recipe may upscale them
TINY = ("model.input_size=32", "model.channels=3", "model.width=0.0625")  # --smoke sizes


def recipe_config(*overrides: str) -> Config:
    """configs/fer2013.yaml with `overrides` (`section.key=value`) applied and validated."""
    return load_config(FER_RECIPE, list(overrides))


def default_config(*overrides: str) -> Config:
    """The built-in defaults (canonical 227 px RGB AlexNet) with `overrides` applied."""
    return load_config(None, list(overrides))

"""The private Keras hooks emotion-tf relies on, checked so that a Keras upgrade fails here first.

train/strategy.py works around keras-team/keras#20585 for multi-worker training with
`Model._symbolic_build(data_batch=...)` and by replacing `Model._maybe_symbolic_build`, which
`fit` and `evaluate` call before their first step. setup.cfg pins Keras below the next minor
release; raise the pin only once this file passes on it.
"""

from __future__ import annotations

import configparser
import inspect
from pathlib import Path

import keras
import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _keras_requirement() -> Requirement:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser["options"]["install_requires"].splitlines()
    (line,) = [x for x in lines if x.strip().startswith("keras")]
    return Requirement(line.strip())


def test_keras_is_pinned_below_the_next_minor_release() -> None:
    requirement = _keras_requirement()
    upper = [s for s in requirement.specifier if s.operator == "<"]
    assert upper, f"setup.cfg must cap keras (private hooks are used): {requirement}"
    assert requirement.specifier.contains(keras.__version__), (
        f"installed Keras {keras.__version__} is outside setup.cfg's {requirement}"
    )


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_symbolic_build_hooks_are_still_there() -> None:
    message = "Keras changed {}: revisit prepare_multi_worker_fit in emotion_tf/train/strategy.py"
    build = getattr(keras.Model, "_symbolic_build", None)
    assert build is not None, message.format("Model._symbolic_build")
    assert _parameters(build) == ["self", "iterator", "data_batch"], message.format(
        "Model._symbolic_build's arguments"
    )
    maybe = getattr(keras.Model, "_maybe_symbolic_build", None)
    assert maybe is not None, message.format("Model._maybe_symbolic_build")
    assert _parameters(maybe) == ["self", "iterator", "data_batch"], message.format(
        "Model._maybe_symbolic_build's arguments"
    )


def test_fit_and_evaluate_call_the_replaced_hook() -> None:
    """Replacing `_maybe_symbolic_build` on the model must be what `fit`/`evaluate` call."""
    import numpy as np

    calls = []
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    original = model._maybe_symbolic_build

    def spy(iterator=None, data_batch=None):
        calls.append("built")
        return original(iterator=iterator, data_batch=data_batch)

    model._maybe_symbolic_build = spy
    data = (np.ones((4, 3), "float32"), np.ones((4, 2), "float32"))
    model.fit(*data, epochs=1, verbose=0)
    model.evaluate(*data, verbose=0)
    assert len(calls) >= 2, "Keras no longer calls _maybe_symbolic_build from fit/evaluate"


@pytest.mark.parametrize("hook", ["train_step", "test_step"])
def test_step_hooks_are_public(hook: str) -> None:
    assert callable(getattr(keras.Model, hook))

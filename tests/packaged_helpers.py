"""One tiny trained run (train.keep=last, flip averaging) shared by the packaged-model, API and
TFLite tests of a session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_overrides

_RUNS: dict[str, Path] = {}


def tiny_last_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A finished 32 px run with an export; trained once per session."""
    if "run" not in _RUNS:
        from emotion_tf.config import load_config
        from emotion_tf.train.trainer import train

        run_dir = tmp_path_factory.mktemp("packaged") / "run"
        overrides = tiny_overrides(
            run_dir, data_dir, **{"train.keep": "last", "model.test_time_flip": "true"}
        )
        train(load_config(None, overrides), export=True)
        _RUNS["run"] = run_dir
    return _RUNS["run"]

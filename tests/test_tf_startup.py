"""TensorFlow's start-up settings: oneDNN kernels on every x86 CPU unless the user says no."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import emotion_tf
from emotion_tf.tf_startup import X86_64_MACHINES

PACKAGE_PARENT = Path(emotion_tf.__file__).parent.parent
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
REPORT_ONEDNN = (
    "import emotion_tf, os\n"
    "from tensorflow.python.util import _pywrap_util_port as port\n"
    f"print(os.environ.get({ONEDNN!r}), port.IsMklEnabled())\n"
)

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in X86_64_MACHINES, reason="oneDNN default: x86 only"
)


def _onednn_in_fresh_process(user_value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != ONEDNN}
    env.update(PYTHONPATH=str(PACKAGE_PARENT), TF_CPP_MIN_LOG_LEVEL="3")
    if user_value is not None:
        env[ONEDNN] = user_value
    result = subprocess.run(
        [sys.executable, "-c", REPORT_ONEDNN],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return result.stdout.split()


def test_importing_the_package_turns_onednn_on_before_tensorflow_starts() -> None:
    assert _onednn_in_fresh_process(None) == ["1", "True"]


def test_a_user_who_turned_onednn_off_keeps_it_off() -> None:
    assert _onednn_in_fresh_process("0") == ["0", "False"]

"""TensorFlow's start-up: oneDNN kernels on every x86 CPU, and its C++ start-up log kept out of
the command line's output.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI/BF16 or AMX.
`prefer_onednn` turns them on for other x86 CPUs too, unless the user set
`TF_ENABLE_ONEDNN_OPTS`: on a 2-core AVX2 AMD EPYC they trained the FER recipe's model 1.53x
faster (168 vs 110 images/s) and ran the video path 1.15x faster (benchmarks/README.md).

`TF_CPP_MIN_LOG_LEVEL` silences TensorFlow's own log, but lines written through absl before
its log is initialised ("All log messages before absl::InitializeLog() ...", then for example
"oneDNN custom operations are on" on CPUs with AVX-512) go straight to file descriptor 2
while `import tensorflow` runs. `quiet_tensorflow_import` catches that descriptor during the
import only and passes on every line that is not such an informational start-up line.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

# absl's preamble, and its informational lines ("I0000 00:00:17961.7  6122 port.cc:153] ...")
STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w.]+:\d+\] "
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU)"
)
# Whether the user chose TensorFlow's log level; if not, emotion-tf keeps its C++ log quiet.
TF_LOG_LEVEL_SET_BY_USER = "TF_CPP_MIN_LOG_LEVEL" in os.environ


def quiet_by_default() -> None:
    """Keep TensorFlow's C++ start-up log out of normal runs and of `import emotion_tf`
    (before anything imports TensorFlow), unless the user set `TF_CPP_MIN_LOG_LEVEL`."""
    if not TF_LOG_LEVEL_SET_BY_USER:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        quiet_tensorflow_import()


# platform.machine() of an x86-64 CPU (Linux and macOS, Windows), lower-cased.
X86_64_MACHINES = ("x86_64", "amd64")


def prefer_onednn() -> None:
    """Ask TensorFlow for its oneDNN kernels on any x86-64 CPU (before it is imported)."""
    if platform.machine().lower() in X86_64_MACHINES:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextlib.contextmanager
def filtered_stderr_descriptor() -> Iterator[None]:
    """Collect what is written to descriptor 2 and write it back without start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            kept = [line for line in text.splitlines() if not STARTUP_NOISE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


class _QuietLoader(importlib.abc.Loader):
    """The real loader of `tensorflow`, run with descriptor 2 filtered."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with filtered_stderr_descriptor():
            self.inner.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self.inner, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` the usual way, once, and wraps its loader."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        uninstall()
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


_FINDER = _QuietTensorFlowFinder()


def quiet_tensorflow_import() -> None:
    """From now on, the first `import tensorflow` keeps its start-up lines to itself."""
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Let TensorFlow's start-up lines through again (for `emotion-tf -v`)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)

"""Which version of the model is served, following the export base as TF Serving does.

TF Serving polls its model base path (`--file_system_poll_wait_seconds`) and serves the newest
integer version folder ("latest" version policy): a new version is loaded, and warmed up, before
it replaces the old one; when the served version is deleted, the newest remaining one is loaded;
when none remains, the model is unloaded. `ModelVersions.poll` does one such check; the server
runs it every `--poll-seconds` in a worker thread. Requests already batched for the old version
finish on it: they hold the model object, not the version number.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emotion_tf.export import list_versions, resolve_export

log = logging.getLogger(__name__)

Loader = Callable[[Path], Any]  # version folder -> a loaded, warmed-up ServedModel


def export_base_of(model_path: str | Path) -> Path | None:
    """The folder of integer versions to poll, or None when `model_path` is one version."""
    path = Path(model_path)
    if (path / "saved_model.pb").is_file():
        return None
    for base in (path, path / "export"):
        if list_versions(base):
            return base
    return None


class ModelVersions:
    """The currently served model (or None) and the base it is reloaded from."""

    def __init__(self, model_path: str | Path, loader: Loader):
        self.loader = loader
        self.base = export_base_of(model_path)
        self.current: Any = loader(resolve_export(model_path))
        self._failed: dict[Path, float] = {}  # version folder -> mtime when its load failed

    @classmethod
    def fixed(cls, model: Any) -> ModelVersions:
        """Serve `model` and never look for other versions."""
        versions = cls.__new__(cls)
        versions.loader = lambda path: model
        versions.base = None
        versions.current = model
        versions._failed = {}
        return versions

    @property
    def version(self) -> int:
        return self.current.version if self.current is not None else 0

    def _newest(self) -> Path | None:
        assert self.base is not None
        for version in reversed(list_versions(self.base)):
            folder = self.base / str(version)
            if (folder / "saved_model.pb").is_file():
                return folder
        return None

    def poll(self) -> str | None:
        """Load the newest version if it is not the one served.

        Returns what happened: "loaded", "unloaded" (no version left), "failed" or None.
        """
        if self.base is None:
            return None
        newest = self._newest()
        if newest is None:
            if self.current is None:
                return None
            log.warning("no version left under %s: model unloaded", self.base)
            self.current = None
            return "unloaded"
        if self.current is not None and Path(self.current.path) == newest:
            return None
        stamp = _mtime(newest)
        if self._failed.get(newest) == stamp:
            return None  # already failed as it is now; retried once it changes
        try:
            model = self.loader(newest)
        except Exception as err:  # a half-copied or broken version must not stop serving
            if newest not in self._failed:
                log.warning(
                    "cannot load %s (kept serving version %d): %s", newest, self.version, err
                )
            self._failed[newest] = stamp
            return "failed"
        old = self.version
        self.current = model
        self._failed.pop(newest, None)
        log.info("now serving version %d (was %d) from %s", model.version, old, newest)
        return "loaded"


def _mtime(folder: Path) -> float:
    """The newest modification time in `folder`, so a version still being copied is retried."""
    newest = 0.0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed meanwhile
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
    return newest

"""Atomic writes, the only place emotion-tf writes results: a reader sees the old or the new.

Files (bytes, text, JSON, Keras models and weights) are written to a temp file beside their
final place, fsynced, then renamed over it. Folders are built in a temp folder beside their
final place; replacing an existing one renames the old one aside, the new one in, then deletes
the old one, so a crash at any moment leaves the old or the new folder, never neither.
Temp names start with `.tmp-` and never parse as an export version.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emotion_tf.errors import DataError

TEMP_PREFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path | str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def temp_file_beside(path: Path) -> str:
    """A new empty temp file beside `path` with the same suffixes; `commit_temp_file` moves
    it into place. For outputs written over time (e.g. a video, frame by frame)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)  # Keras checks suffixes: .keras, .weights.h5
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    return tmp


def commit_temp_file(tmp: str, path: Path) -> None:
    """Fsync the finished temp file `tmp` and rename it over `path`."""
    _fsync_file(tmp)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def atomic_write_with(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(temp_path)` for a temp file beside `path`, fsync it, then rename it over."""
    tmp = temp_file_beside(path)
    try:
        write(tmp)
        commit_temp_file(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def atomic_save_model(model: Any, path: Path) -> None:
    """Save a Keras model to `path` (a .keras file) through a temporary file and a rename."""
    atomic_write_with(path, model.save)


def atomic_save_weights(model: Any, path: Path) -> None:
    """Save a Keras model's weights (and optimizer state) to `path` (.weights.h5) atomically."""
    atomic_write_with(path, lambda tmp: model.save_weights(tmp, overwrite=True))


def fsync_tree(root: Path) -> None:
    """fsync every file under `root`, before the folder is renamed into place."""
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync_file(os.path.join(folder, name))


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace a non-empty `out` unless `overwrite` is set."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"output exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(f"output folder is not empty: {out} (pass --overwrite to replace it)")


@contextlib.contextmanager
def temp_dir_beside(target: Path) -> Iterator[Path]:
    """A new temp folder in `target`'s parent, removed if the block fails."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target.name}-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(new: Path, out: Path) -> None:
    """Move the finished folder `new` to `out`, replacing an existing `out`.

    The old `out` is renamed aside first and deleted only once `new` is in place: at every
    moment `out` is the old folder or the new one (or, between two renames, the old one
    waits under a temp name beside it).
    """
    new, out = Path(new), Path(out)
    fsync_tree(new)
    if not out.exists():
        os.replace(new, out)
        return
    with temp_dir_beside(out) as aside:
        old = aside / "old"
        os.replace(out, old)
        try:
            os.replace(new, out)
        except BaseException:
            os.replace(old, out)  # put the old one back
            raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temp folder to fill; on success it replaces `out`, on error it is removed."""
    out = Path(out)
    check_output_dir(out, overwrite)
    with temp_dir_beside(out) as staging:
        yield staging
        replace_dir(staging, out)

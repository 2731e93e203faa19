"""Build an output folder beside its final place, then move it there in one rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from emotion_tf.errors import DataError


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace a non-empty `out` unless `overwrite` is set."""
    if out.exists() and not out.is_dir():
        raise DataError(f"output exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(f"output folder is not empty: {out} (pass --overwrite to replace it)")


@contextlib.contextmanager
def staged_output(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `out`, on error it is removed.

    A reader never sees a half-written `out`: either the old one or the finished new one.
    """
    out = Path(out)
    check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if out.is_dir():
            backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, backup / "old")
            os.replace(staging, out)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

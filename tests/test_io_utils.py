"""Atomic writes: after a crash at any step the old file or folder is there, or the new one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emotion_tf import io_utils
from emotion_tf.errors import DataError


def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "content.txt").write_text(text)
    return path


def test_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "x.json"
    io_utils.atomic_write_json(target, {"n": 1})
    io_utils.atomic_write_json(target, {"n": 2})
    assert target.read_text() == '{\n  "n": 2\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    io_utils.atomic_write_text(target, "old")

    def half_write(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise KeyboardInterrupt  # stands in for the process dying here

    with pytest.raises(KeyboardInterrupt):
        io_utils.atomic_write_with(target, half_write)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_staged_output_replaces_a_folder(tmp_path: Path) -> None:
    out = _folder(tmp_path / "out", "old")
    with pytest.raises(DataError, match="not empty"), io_utils.staged_output(out, False):
        pass
    with io_utils.staged_output(out, overwrite=True) as staging:
        (staging / "content.txt").write_text("new")
    assert (out / "content.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failed_staging_keeps_the_old_folder(tmp_path: Path) -> None:
    out = _folder(tmp_path / "out", "old")
    with pytest.raises(KeyboardInterrupt), io_utils.staged_output(out, True) as staging:
        (staging / "content.txt").write_text("half")
        raise KeyboardInterrupt
    assert (out / "content.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_crash_between_the_renames_never_leaves_neither(tmp_path: Path, monkeypatch) -> None:
    """The old folder moves aside first; if the new one cannot move in, the old one returns."""
    out = _folder(tmp_path / "out", "old")
    new = _folder(tmp_path / "new", "new")
    real_replace = os.replace
    calls = []

    def second_rename_fails(src, dst):
        calls.append((Path(src), Path(dst)))
        if len(calls) == 2:
            assert not out.exists()  # the moment between the renames: old is aside, not gone
            assert any(p.name.startswith(io_utils.TEMP_PREFIX) for p in tmp_path.iterdir())
            raise OSError("disk gone")
        return real_replace(src, dst)

    monkeypatch.setattr(io_utils.os, "replace", second_rename_fails)
    with pytest.raises(OSError, match="disk gone"):
        io_utils.replace_dir(new, out)
    monkeypatch.undo()
    assert (out / "content.txt").read_text() == "old"
    io_utils.replace_dir(new, out)
    assert (out / "content.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

"""The one error boundary: every command turns typed errors into one line and exit status 2."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import emotion_tf
from emotion_tf.cli import main
from emotion_tf.cli_base import MISSING_TENSORFLOW, Command, Group

PACKAGE = Path(emotion_tf.__file__).parent


def _all_commands(command: click.Command, path: str = "emotion-tf") -> list[tuple[str, object]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found.extend(_all_commands(sub, f"{path} {name}"))
    return found


def test_every_command_runs_inside_the_boundary() -> None:
    commands = _all_commands(main)
    assert len(commands) >= 15  # 8 commands, the data group and its 6 commands, main
    for path, command in commands:
        kind = Group if isinstance(command, click.Group) else Command
        assert isinstance(command, kind), f"{path} is a plain {type(command).__name__}"


def test_typed_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    result = CliRunner().invoke(main, ["data", "make-demo", str(out)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: output folder is not empty: {out} (pass --overwrite to replace it)"
    ]
    bad = CliRunner().invoke(main, ["data", "make-demo", str(tmp_path / "new"), "--per-class", "1"])
    assert (bad.exit_code, bad.stderr.count("\n")) == (2, 1)
    assert bad.stderr.startswith("error: --per-class must be at least 2")


def test_missing_tensorflow_names_the_extra(tmp_path: Path) -> None:
    """Installed without the cpu/gpu extra: one line saying what to install, no traceback."""
    image = tmp_path / "a.png"
    image.write_bytes(b"not read")
    code = "import sys; sys.modules['tensorflow'] = None; from emotion_tf.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "predict", "-m", str(tmp_path), str(image)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {MISSING_TENSORFLOW}"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_cli_modules_import_click_or_catch_typed_errors() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("cli.py", "cli_base.py"):
            continue
        assert "click" not in _imports(path), f"library module {path} imports click"
    catching = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "except EmotionTFError" in path.read_text()
    ]
    assert catching == ["cli_base.py"]


def test_error_after_tensorflow_started_is_still_one_line(tmp_path: Path) -> None:
    """TensorFlow's C++ start-up log (CPU features, CUDA libraries) stays out of the way."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(PACKAGE.parent)
    code = "from emotion_tf.cli import main; main()"
    not_a_model = tmp_path / "not-a-model"  # exists, so it is opened (TensorFlow starts)
    not_a_model.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", code, "predict", "-m", str(not_a_model), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and str(not_a_model) in line


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "-m", "{missing}", "x.jpg"],
        ["evaluate", "{missing}"],
        ["serve", "-m", "{missing}"],
        ["watch", "0", "-m", "{missing}"],
    ],
)
def test_a_missing_model_or_data_folder_fails_before_tensorflow_starts(
    tmp_path: Path, args: list[str]
) -> None:
    code = (
        "import sys\n"
        "from emotion_tf.cli import main\n"
        "try:\n    main()\n"
        "finally:\n    print('tensorflow' in sys.modules)\n"
    )
    missing = str(tmp_path / "missing")
    argv = [a.format(missing=missing) for a in args]
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {'data folder' if args[0] == 'evaluate' else 'model path'} not found: {missing}"
    ]
    assert result.stdout.strip() == "False"  # TensorFlow was never imported


def test_start_up_noise_on_descriptor_2_is_dropped_and_the_rest_kept() -> None:
    """absl's pre-initialisation lines (written by C++ straight to fd 2) are filtered out."""
    code = (
        "import os\n"
        "from emotion_tf.tf_startup import filtered_stderr_descriptor\n"
        "with filtered_stderr_descriptor():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called "
        "are written to STDERR\\n')\n"
        "    os.write(2, b'I0000 00:00:1796123961.723142    6122 port.cc:153] oneDNN on\\n')\n"
        "    os.write(2, b'a real problem\\n')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["a real problem"]

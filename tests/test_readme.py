"""README tables checked against the code, so that they cannot drift from it."""

from __future__ import annotations

import re
from pathlib import Path

import click

from emotion_tf import run_dir
from emotion_tf.cli import main
from emotion_tf.config import Config

README = (Path(__file__).resolve().parents[1] / "docs" / "commands.md").read_text()


def _section(heading: str) -> str:
    start = README.index(heading)
    end = README.find("\n## ", start + len(heading))
    return README[start : end if end >= 0 else None]


def _table_after(text: str, marker: str) -> list[str]:
    """First-column cells of the Markdown table that follows `marker`."""
    lines = text[text.index(marker) :].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    cells = []
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        cells.append(line.split("|")[1].strip())
    return cells


def _command_paths(command: click.Command, prefix: str = "emotion-tf") -> list[str]:
    paths = []
    for name, sub in getattr(command, "commands", {}).items():
        if isinstance(sub, click.Group):
            paths.extend(_command_paths(sub, f"{prefix} {name}"))
        else:
            paths.append(f"{prefix} {name}")
    return paths


def test_commands_section_names_every_command() -> None:
    commands = _section("## Commands")
    headings = " ".join(re.findall(r"^### (.+)$", commands, flags=re.MULTILINE))
    paths = _command_paths(main)
    assert len(paths) >= 13
    for path in paths:
        words = path.split()
        # a heading may name several: "`emotion-tf data prepare-fer2013 ...`, `data split ...`"
        short = " ".join(words[1:])
        assert f"`{path}" in headings or f"`{short}" in headings, f"README lacks {path}"


def test_run_folder_table_lists_every_run_dir_name() -> None:
    cells = _table_after(README, "The run directory (`train.run_dir`")
    listed = {re.sub(r"/.*$", "", name.strip("` ")) for cell in cells for name in cell.split(",")}
    names = {
        value for key, value in vars(run_dir).items() if key.isupper() and isinstance(value, str)
    }
    assert listed == names


def _config_keys(value: object, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for field in value.__dataclass_fields__:  # type: ignore[attr-defined]
        item = getattr(value, field)
        if hasattr(item, "__dataclass_fields__"):
            keys |= _config_keys(item, f"{prefix}{field}.")
        else:
            keys.add(f"{prefix}{field}")
    return keys


def test_config_table_lists_every_field_with_its_default() -> None:
    rows = [
        line.split("|")[1:3]
        for line in _section("## Config reference").splitlines()
        if line.startswith("| `")
    ]
    table = {key.strip().strip("`"): default.strip() for key, default in rows}
    config = Config()
    assert set(table) == _config_keys(config)
    for key, written in table.items():
        value = config
        for part in key.split("."):
            value = getattr(value, part)
        if isinstance(value, bool):
            assert written == str(value).lower(), key
        elif isinstance(value, (int, float)) and not written.startswith("("):
            assert float(written.replace(",", "")) == value, key
        elif isinstance(value, str) and value:
            assert written.strip("`") == value, key

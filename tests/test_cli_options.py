"""Shared options have one name and one default in every command, every option has help, and
the package has no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import click
from click.testing import CliRunner

from emotion_tf.cli import main
from emotion_tf.pipeline.options import DEFAULT_OPTIONS

PACKAGE = Path(__file__).resolve().parents[1] / "emotion_tf"
# parameter name -> (the one flag, the one default)
SHARED = {
    "faces": ("--faces", DEFAULT_OPTIONS.faces),
    "fallback": ("--fallback", DEFAULT_OPTIONS.fallback),
    "face_margin": ("--face-margin", None),
    "detector": ("--detector", None),
    "align": ("--align", DEFAULT_OPTIONS.align),
    "photo_rule": ("--photo-rule", DEFAULT_OPTIONS.rule),
    "model": ("--model", None),
    "trust_model": ("--trust-model", False),
}


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], click.Command]:
    found: dict[tuple[str, ...], click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_commands(command, (*prefix, name)))
        else:
            found[(*prefix, name)] = command
    return found


def test_every_help_runs_and_shared_options_have_one_name_and_default() -> None:
    commands = _commands(main)
    seen: dict[str, int] = {}
    for path, command in commands.items():
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            assert param.help, f"emotion-tf {' '.join(path)} {param.opts[0]} has no help"
            if param.name in SHARED:
                flag, default = SHARED[param.name]
                assert flag in param.opts, (path, param.opts)
                if not param.is_flag and (param.name != "faces" or path != ("data", "crop-faces")):
                    assert param.default == default, (path, param.name, param.default)
                seen[param.name] = seen.get(param.name, 0) + 1
            if param.name in ("output", "out_dir") and any(
                o.startswith("--out") for o in param.opts
            ):
                assert "--output" in param.opts, (path, param.opts)
    for name in ("faces", "fallback", "detector", "photo_rule"):
        assert seen.get(name, 0) >= 3, f"{name} is shared by predict, evaluate and serve"


def _imports(module: Path) -> set[str]:
    """Modules of emotion_tf imported at the top level of `module` (not inside functions)."""
    tree = ast.parse(module.read_text())
    names: set[str] = set()
    for node in tree.body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("emotion_tf")
        ):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("emotion_tf"))
    return names


def test_the_package_has_no_import_cycles() -> None:
    modules = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle = [*trail[trail.index(other) :], other] if other in trail else [name, other]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, [*trail, other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])

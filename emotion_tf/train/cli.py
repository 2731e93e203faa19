"""`emotion-tf train`: train AlexNet from a config, then export the kept checkpoint."""

from __future__ import annotations

from typing import Any

import click

from emotion_tf.cli_base import command


@command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="YAML config (default: built-in defaults; see configs/).",
)
@click.option("--data-dir", help="Folder with train/ and validation/ class sub-folders.")
@click.option("--run-dir", help="Where checkpoints, logs, metrics and the export go.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any config field, e.g. --set train.epochs=5 (repeatable).",
)
@click.option("--no-export", is_flag=True, help="Skip the SavedModel export at the end.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Train again even if RUN_DIR holds a finished run (its results are replaced).",
)
def train(
    config_path: str | None,
    data_dir: str | None,
    run_dir: str | None,
    overrides: tuple[str, ...],
    no_export: bool,
    overwrite: bool,
) -> None:
    """Train AlexNet on DATA_DIR/train, validate on DATA_DIR/validation, then export.

    A run directory that holds a finished run is left as it is (exit 0) unless --overwrite.
    """
    from emotion_tf.config import load_config
    from emotion_tf.metrics import format_metrics
    from emotion_tf.train.trainer import train as run_training

    extra: dict[str, Any] = {}
    if data_dir:
        extra["data"] = {"data_dir": data_dir}
    if run_dir:
        extra["train"] = {"run_dir": run_dir}
    config = load_config(config_path, overrides, extra)
    result = run_training(config, export=not no_export, overwrite=overwrite)
    if result.already_complete:
        click.echo(
            f"run {result.run_dir} is already complete; nothing trained (pass --overwrite to "
            "train it again)"
        )
    click.echo(format_metrics(result.metrics))
    if result.skipped:
        click.echo(f"skipped {len(result.skipped)} undecodable file(s); see run_info.json")
    click.echo(f"run directory: {result.run_dir}")
    if result.export_path:
        click.echo(f"export: {result.export_path}")

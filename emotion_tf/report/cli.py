"""`emotion-tf report RUN_DIR`: figures and report.html for a finished run."""

from __future__ import annotations

from pathlib import Path

import click

from emotion_tf.cli_base import command


@command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--output",
    "-o",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Where to write (default: RUN_DIR/report).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Data dir with validation/ (default: where the run was trained).",
)
@click.option(
    "--mistakes",
    default=16,
    show_default=True,
    help="How many of the most confident mistakes to show.",
)
def report(run_dir: str, out_dir: str | None, data_dir: str | None, mistakes: int) -> None:
    """Write PNG figures (curves, confusion matrix, ROC, mistakes) and report.html for RUN_DIR.

    Uses RUN_DIR's history.json, metrics.json, config.yaml and best.keras, and predicts the
    run's validation data again for the ROC curve and the mistakes grid.
    """
    from emotion_tf.report.build import build_report

    result = build_report(
        Path(run_dir),
        out_dir=Path(out_dir) if out_dir else None,
        data_dir=Path(data_dir) if data_dir else None,
        mistakes=mistakes,
    )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for path in result.files:
        click.echo(str(path))

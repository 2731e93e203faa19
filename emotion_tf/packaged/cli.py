"""`emotion-tf pack`: write a finished run's kept model as a packaged-model file."""

from __future__ import annotations

from pathlib import Path

import click

from emotion_tf.cli_base import command


@command("pack")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="The .npz to write (emotion_tf/packaged/happy_sad.npz replaces the packaged model).",
)
@click.option(
    "--calibrate",
    "calibrate_dir",
    type=click.Path(file_okay=False),
    help="Fit a temperature on this labelled folder (class sub-folders; photos: each is "
    "classified on its largest face) and store it. Use data the model is not evaluated on.",
)
@click.option(
    "--temperature", type=float, help="Store this temperature instead of fitting one (default 1)."
)
def pack(run_dir: str, output: str, calibrate_dir: str | None, temperature: float | None) -> None:
    """Pack RUN_DIR's kept checkpoint into a compact file (int8 weights, <= 10 MB) that
    `emotion_tf.load(FILE)` and `--model FILE` read; it records the config and its hash."""
    _pack(Path(run_dir), Path(output), calibrate_dir, temperature)


def _pack(
    run_dir: Path, output: Path, calibrate_dir: str | None, temperature: float | None
) -> None:
    from emotion_tf.errors import ConfigError
    from emotion_tf.packaged.build import pack_run
    from emotion_tf.packaged.calibrate import calibrate_run

    if calibrate_dir and temperature is not None:
        raise ConfigError("give --calibrate or --temperature, not both")
    calibration = None
    if calibrate_dir:
        calibration = calibrate_run(run_dir, Path(calibrate_dir))
        temperature = calibration["temperature"]
        click.echo(
            f"temperature {temperature:.3f} fitted on {calibration['count']} image(s) of "
            f"{calibrate_dir} (NLL {calibration['nll_before']:.4f} -> "
            f"{calibration['nll_after']:.4f})"
        )
    result = pack_run(run_dir, output, 1.0 if temperature is None else temperature, calibration)
    click.echo(
        f"{result.path} ({result.size_bytes:,} bytes, from {result.checkpoint}, "
        f"config hash {result.config_hash})"
    )

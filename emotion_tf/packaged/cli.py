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
    "calibrate_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Fit a temperature on this labelled folder (class sub-folders; each photo read as "
    "predict reads it) and store it; repeat to fit on several. Use data the model is not "
    "evaluated on.",
)
@click.option(
    "--temperature", type=float, help="Store this temperature instead of fitting one (default 1)."
)
def pack(
    run_dir: str, output: str, calibrate_dirs: tuple[str, ...], temperature: float | None
) -> None:
    """Pack RUN_DIR's kept checkpoint into a compact file (int8 weights, <= 10 MB) that
    `emotion_tf.load(FILE)` and `--model FILE` read; it records the config and its hash."""
    _pack(Path(run_dir), Path(output), [Path(d) for d in calibrate_dirs], temperature)


def _pack(
    run_dir: Path, output: Path, calibrate_dirs: list[Path], temperature: float | None
) -> None:
    from emotion_tf.errors import ConfigError
    from emotion_tf.packaged.build import pack_run
    from emotion_tf.packaged.calibrate import calibrate_run

    if calibrate_dirs and temperature is not None:
        raise ConfigError("give --calibrate or --temperature, not both")
    calibration = None
    if calibrate_dirs:
        calibration = calibrate_run(run_dir, calibrate_dirs)
        temperature = calibration["temperature"]
        click.echo(
            f"temperature {temperature:.3f} fitted on {calibration['count']} image(s) of "
            f"{', '.join(map(str, calibrate_dirs))} (NLL {calibration['nll_before']:.4f} -> "
            f"{calibration['nll_after']:.4f})"
        )
    result = pack_run(run_dir, output, 1.0 if temperature is None else temperature, calibration)
    click.echo(
        f"{result.path} ({result.size_bytes:,} bytes, from {result.checkpoint}, "
        f"config hash {result.config_hash})"
    )

"""`emotion-tf explain IMAGE... --output DIR [-m MODEL]`: Grad-CAM heat maps for faces in images."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from emotion_tf.cli_base import command, model_option
from emotion_tf.faces.cli import detector_options, face_options, photo_options

EXPLAIN_MODEL_HELP = (
    "A run directory (its kept checkpoint), a .keras file, an export inside a run directory, or "
    "a packaged .npz: Grad-CAM needs the Keras model's gradients, which a SavedModel alone "
    "lacks. Default: the happy/sad model packaged with emotion-tf."
)


@command("explain")
@click.argument("images", nargs=-1, required=True)
@functools.partial(model_option, help=EXPLAIN_MODEL_HELP)
@click.option(
    "--output",
    "-o",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the heat-map PNGs and explanations.json.",
)
@click.option(
    "--class",
    "classes",
    multiple=True,
    metavar="NAME",
    help="Also explain this class (repeatable); the predicted class is always done.",
)
@face_options
@detector_options
def explain(
    images: tuple[str, ...],
    model: str | None,
    out_dir: str,
    classes: tuple[str, ...],
    faces: str,
    fallback: str,
    face_margin: float | None,
    detector: str | None,
    align: bool,
) -> None:
    """Grad-CAM heat maps (from conv5) of the model's decision for each face in IMAGES.

    The model is the packaged one unless --model names another. Exits with status 1 if any
    input could not be explained.
    """
    from emotion_tf.explain.model import load_keras_model
    from emotion_tf.explain.paths import EXPLANATIONS_FILE, explain_paths

    keras_model = load_keras_model(model)
    results = explain_paths(
        keras_model,
        list(images),
        Path(out_dir),
        list(classes),
        photo_options(faces, fallback, face_margin, detector, align),
    )
    failed = 0
    for item in results:
        if item.error:
            failed += 1
            click.echo(f"{item.path}: ERROR: {item.error}", err=True)
        elif item.no_face:
            click.echo(f"{item.path}: no face found")
        else:
            click.echo(
                f"{item.file}  ({item.label} {item.confidence:.2f}, "
                f"Grad-CAM for {item.explained_class})"
            )
    click.echo(f"wrote {Path(out_dir) / EXPLANATIONS_FILE}")
    if failed:
        sys.exit(1)

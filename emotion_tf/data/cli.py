"""`emotion-tf data ...`: the data set commands (make-demo, prepare-fer2013, split, check,
to-tfrecord; crop-faces lives in emotion_tf.faces.cli)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from emotion_tf.cli_base import group
from emotion_tf.data.tfrecord import DEFAULT_ORDER_SEED
from emotion_tf.pipeline.options import DEFAULT_MAX_PIXELS


def _counts_table(counts: dict[str, dict[str, int]]) -> str:
    classes = sorted({c for per_split in counts.values() for c in per_split})
    width = max([len(c) for c in classes] + [6]) + 2
    lines = [f"{'split':<12}" + "".join(f"{c:>{width}}" for c in classes)]
    for split, per_split in counts.items():
        lines.append(f"{split:<12}" + "".join(f"{per_split.get(c, 0):>{width}}" for c in classes))
    return "\n".join(lines)


@group()
def data() -> None:
    """Data set tools."""


@data.command("make-demo")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--per-class", default=360, show_default=True, help="Images per class.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same images.")
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it is not empty.")
def make_demo(out_dir: str, per_class: int, seed: int, overwrite: bool) -> None:
    """Generate the synthetic schematic-face demo set into OUT_DIR."""
    from emotion_tf.data.demo import generate_demo_dataset

    counts = generate_demo_dataset(
        Path(out_dir), per_class=per_class, seed=seed, overwrite=overwrite
    )
    click.echo(json.dumps(counts))


@data.command("prepare-fer2013")
@click.argument("csv_path", metavar="FER2013_CSV", type=click.Path(dir_okay=False))
@click.argument("out_dir", metavar="OUT", type=click.Path(file_okay=False))
@click.option(
    "--classes",
    default="happy,sad",
    show_default=True,
    help="Comma-separated FER2013 classes, by name or number (0=angry 1=disgust 2=fear "
    "3=happy 4=sad 5=surprise 6=neutral).",
)
@click.option(
    "--image-format",
    type=click.Choice(["png", "jpg"]),
    default="png",
    show_default=True,
    help="png is lossless; jpg is smaller.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it is not empty.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for programs.",
)
def prepare_fer2013_command(
    csv_path: str, out_dir: str, classes: str, image_format: str, overwrite: bool, fmt: str
) -> None:
    """Convert the Kaggle FER2013 CSV (emotion,pixels,Usage) into image folders.

    Writes OUT/train|validation|test/<class>/ images: Usage Training goes to train,
    PublicTest to validation and PrivateTest to test. Bad rows are reported and skipped.
    """
    from emotion_tf.data.tools.fer2013 import prepare_fer2013

    result = prepare_fer2013(
        Path(csv_path),
        Path(out_dir),
        classes=[c for c in classes.split(",") if c.strip()],
        image_format=image_format,
        overwrite=overwrite,
    )
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(_counts_table(result.counts))
    click.echo(f"rows of other classes left out: {result.other_classes}")
    if result.skipped:
        click.echo(f"bad rows skipped: {len(result.skipped)} (see the warnings above)")
    click.echo(f"wrote {out_dir}")


@data.command("split")
@click.argument("src", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--validation",
    default=0.33,
    show_default=True,
    type=float,
    help="Share of each class for validation/.",
)
@click.option(
    "--test", default=0.0, show_default=True, type=float, help="Share of each class for test/."
)
@click.option("--seed", default=1337, show_default=True, help="Same seed, same split.")
@click.option("--link", is_flag=True, help="Symlink to the source files instead of copying.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it is not empty.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for programs.",
)
def split_command(
    src: str,
    out: str,
    validation: float,
    test: float,
    seed: int,
    link: bool,
    overwrite: bool,
    fmt: str,
) -> None:
    """Split SRC (a folder of class folders) into OUT/train and OUT/validation (and test).

    Stratified: each class is split on its own, in an order fixed by --seed. Byte-identical
    copies of an image stay in one split, so they cannot leak between splits.
    """
    from emotion_tf.data.tools.split import split_dataset

    result = split_dataset(
        Path(src),
        Path(out),
        validation=validation,
        test=test,
        seed=seed,
        link=link,
        overwrite=overwrite,
    )
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(_counts_table(result.counts))
    click.echo(f"{'linked' if link else 'copied'} into {out}")


@data.command("check")
@click.argument("data_dir", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for programs.",
)
@click.option("--show", default=10, show_default=True, help="Examples listed per problem.")
@click.option(
    "--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, help="Larger is an error."
)
@click.option("--strict", is_flag=True, help="Exit with status 1 if any problem is found.")
def check_command(data_dir: str, fmt: str, show: int, max_pixels: int, strict: bool) -> None:
    """Report counts, imbalance, bad files, duplicates, leakage and label conflicts.

    DATA_DIR holds train/, validation/ (and test/) class folders, or is itself a folder of
    class folders. Byte-identical files in two splits are leakage; in two classes, label
    conflicts.
    """
    from emotion_tf.data.tools.check import check_dataset, format_report

    report = check_dataset(Path(data_dir), max_pixels=max_pixels)
    click.echo(json.dumps(report, indent=2) if fmt == "json" else format_report(report, show))
    if strict and report["problems"]:
        sys.exit(1)


@data.command("to-tfrecord")
@click.argument("data_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--shards", default=8, show_default=True, help="Shards per split.")
@click.option(
    "--max-pixels",
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images with more pixels (decompression bombs).",
)
@click.option(
    "--seed",
    default=DEFAULT_ORDER_SEED,
    show_default=True,
    help="Seed of the stored order of training examples (train.seed gives the same order).",
)
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT_DIR.")
def to_tfrecord_command(
    data_dir: str, out_dir: str, shards: int, max_pixels: int, seed: int, overwrite: bool
) -> None:
    """Write DATA_DIR's train/ and validation/ as sharded TFRecords into OUT_DIR.

    Train on the result with --data-dir OUT_DIR. Files that cannot be decoded are left out
    and listed in OUT_DIR/tfrecords.json.
    """
    from emotion_tf.data.tfrecord import MANIFEST, write_tfrecords

    manifest = write_tfrecords(data_dir, out_dir, shards, max_pixels, overwrite, order_seed=seed)
    for split, info in manifest["splits"].items():
        skipped = len(info["skipped_files"])
        note = f"; skipped {skipped} bad file(s)" if skipped else ""
        click.echo(
            f"{split}: {info['num_examples']} examples in {len(info['files'])} shard(s) "
            f"{json.dumps(info['counts'])}{note}"
        )
    click.echo(f"manifest: {Path(out_dir) / MANIFEST}")

"""The `emotion-tf` command line: the `main` group and the export, predict and evaluate commands.

Every other command lives in its package's `cli.py` (train, serve, report, explain, data,
faces, video: watch; pack); all run inside the one error boundary of `emotion_tf.cli_base`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from emotion_tf import __version__
from emotion_tf.batch.cli import batch
from emotion_tf.cli_base import (
    existing_data_dir,
    group,
    model_option,
    progress,
    show_tensorflow_log,
    trust_model_option,
)
from emotion_tf.data.cli import data
from emotion_tf.errors import ConfigError
from emotion_tf.explain.cli import explain
from emotion_tf.faces.cli import (
    crop_faces,
    detector_options,
    face_options,
    min_confidence_option,
    photo_options,
    photo_rule_option,
)
from emotion_tf.packaged.cli import pack
from emotion_tf.pipeline.options import DEFAULT_OPTIONS, OUTPUT_FORMATS
from emotion_tf.report.cli import report
from emotion_tf.serve.cli import serve
from emotion_tf.train.cli import train
from emotion_tf.video.cli import video_options, watch
from emotion_tf.video.source import DEFAULT_SAMPLE_FPS, is_video_path


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "PIL", "apache_beam"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emotion-tf")
@click.option(
    "-v", "--verbose", is_flag=True, help="Debug logging, and TensorFlow's own start-up log."
)
def main(verbose: bool) -> None:
    """Train, export, evaluate and run AlexNet happy/sad facial-expression classifiers."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # file names that are not UTF-8 must print, not crash
            stream.reconfigure(errors="backslashreplace")
    _setup_logging(verbose)
    if verbose:
        show_tensorflow_log()  # before any command imports TensorFlow


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--export-dir", help="Export base (default: RUN_DIR/export).")
@click.option("--version", "version", type=int, help="Version number (default: next free).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["savedmodel", "tflite", "fixed-savedmodel"]),
    default="savedmodel",
    show_default=True,
    help="savedmodel: a versioned SavedModel for TF Serving; tflite: one .tflite file; "
    "fixed-savedmodel: the .tflite's graph as a SavedModel folder (for tensorflowjs_converter).",
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "float16", "int8"]),
    default="none",
    show_default=True,
    help="TFLite weights: float32 (none), float16, or int8 (dynamic range).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(),
    help="The .tflite file (default: RUN_DIR/export/model[-QUANTIZE].tflite), or the "
    "fixed-savedmodel folder (default: RUN_DIR/export/fixed).",
)
def export(
    run_dir: str,
    export_dir: str | None,
    version: int | None,
    fmt: str,
    quantize: str,
    output: str | None,
) -> None:
    """Export RUN_DIR's kept checkpoint as a versioned SavedModel for TF Serving, or as a
    TFLite file (--format tflite), or as the TFLite file's graph in a SavedModel folder
    (--format fixed-savedmodel, for tensorflowjs_converter). RUN_DIR may also be a packaged
    .npz (a SavedModel export of it needs --export-dir).

    The .tflite takes uint8 images already resized to the model's input size (antialiased,
    as `emotion_tf.preprocess.resize_uint8` does) and returns probabilities; its metadata holds
    the class names and input size.
    """
    from emotion_tf.errors import ConfigError

    if fmt != "savedmodel" and (export_dir or version is not None):
        raise ConfigError("--export-dir and --version are for versioned SavedModel exports")
    if fmt == "tflite":
        if output and Path(output).is_dir():
            raise ConfigError(f"--output for --format tflite is a file, not a folder: {output}")
        from emotion_tf.tflite.source import export_tflite

        click.echo(str(export_tflite(run_dir, output, quantize)))
        return
    if quantize != "none":
        raise ConfigError("--quantize is for --format tflite")
    if fmt == "fixed-savedmodel":
        from emotion_tf.tflite.source import export_fixed_saved_model

        click.echo(str(export_fixed_saved_model(run_dir, output)))
        return
    if output:
        raise ConfigError("--output is for --format tflite and fixed-savedmodel")
    from emotion_tf.predictors.resolve import PACKAGED_SUFFIX

    if Path(run_dir).suffix == PACKAGED_SUFFIX:
        if not export_dir:
            raise ConfigError(f"exporting the packaged model {run_dir} needs --export-dir")
        from emotion_tf.packaged.saved_model import export_packaged

        click.echo(str(export_packaged(Path(run_dir), Path(export_dir), version)))
        return
    from emotion_tf.run_dir import load_run

    run = load_run(Path(run_dir))  # checks the folder before TensorFlow starts
    from emotion_tf.export import export_model

    target = export_model(
        run.model,
        Path(export_dir) if export_dir else run.export_dir,
        run.class_names,
        version=version,
        metadata=run.export_metadata(),
        test_time_flip=run.config.model.test_time_flip,
    )
    click.echo(str(target))


EXIT_UNREADABLE = 1  # some inputs could not be read; the others were answered


@main.command()
@click.argument("paths", nargs=-1, required=True)
@model_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(OUTPUT_FORMATS),
    default="table",
    show_default=True,
    help="table for people; json, jsonl (one object per line; videos: as each frame is done) "
    "or csv for programs, all with the same fields.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_OPTIONS.batch_size,
    show_default=True,
    help="Face crops per model call.",
)
@face_options
@click.option(
    "--annotate",
    "annotate_dir",
    type=click.Path(file_okay=False),
    help="Write copies of the images (videos: an annotated MP4 each) with boxes, labels and "
    "confidences drawn into this folder.",
)
@video_options(
    str(DEFAULT_SAMPLE_FPS),
    "Videos: frames per second to analyse, or 'all' for every frame.",
    "Videos: write timeline.png, summary.json and report.html into this folder.",
    prefix="Videos: ",
)
@trust_model_option
@detector_options
@click.option(
    "--per-photo", is_flag=True, help="One row per photo from all its faces (see --photo-rule)."
)
@photo_rule_option
@min_confidence_option
@click.option(
    "--summary-by",
    help="Also a reaction summary per group of photos: folder, prefix:PATH (the folder after "
    "PATH) or regex:PATTERN; printed on stderr (see --summary-output).",
)
@click.option(
    "--summary-output",
    type=click.Path(file_okay=False),
    help="Write the --summary-by groups as groups.json, groups.csv and groups.html here.",
)
def predict(
    paths: tuple[str, ...],
    model: str | None,
    fmt: str,
    batch_size: int,
    faces: str,
    fallback: str,
    face_margin: float | None,
    annotate_dir: str | None,
    sample_fps: float | None,
    smooth_s: float,
    report_dir: str | None,
    trust_model: bool,
    detector: str | None,
    align: bool,
    per_photo: bool,
    photo_rule: str,
    context: float,
    min_confidence: float | None,
    summary_by: str | None,
    summary_output: str | None,
) -> None:
    """Predict happy/sad for image files and folders (any depth), or for video files.

    Uses the packaged model unless --model names another. Each face gives one row with its box
    [x, y, w, h] and detector score (0-1); --per-photo gives one row per photo. A photo without
    a face is an answer (source whole-image or second-look; with --fallback none a no_face
    row). Runs over several photos end with a summary on stderr. Videos (mp4, mov, avi, mkv,
    webm) give one row per person per analysed frame. Exit status: 0 when every input was
    read, 1 when some could not be (the others are answered), 2 for a usage error.
    """
    from emotion_tf.predict import Annotator, face_rows, format_rows, photo_row, predict_photos
    from emotion_tf.predictors.resolve import open_model

    options = photo_options(
        faces,
        fallback,
        face_margin,
        detector,
        align,
        photo_rule,
        context,
        batch_size=batch_size,
        min_confidence=min_confidence,
    )
    videos = [p for p in paths if is_video_path(p)]
    if videos:
        if len(videos) < len(paths):
            raise ConfigError("give videos and images to predict in separate calls")
        if align:
            raise ConfigError("--align is for photos: video faces are followed without landmarks")
        from emotion_tf.video.cli import predict_videos

        loaded = open_model(model, trust=trust_model)
        failed = predict_videos(
            loaded,
            videos,
            fmt,
            sample_fps,
            smooth_s,
            face_margin,
            report_dir,
            annotate_dir,
            detector=detector,
        )
        if failed:
            click.echo(f"{failed} of {len(videos)} video(s) failed", err=True)
            sys.exit(EXIT_UNREADABLE)
        return
    loaded = open_model(model, trust=trust_model)
    from emotion_tf.pipeline.groups import group_key
    from emotion_tf.pipeline.sources import expand_inputs
    from emotion_tf.pipeline.summary import RunSummary

    items = list(expand_inputs(paths))
    annotator = Annotator(Path(annotate_dir), loaded.class_names) if annotate_dir else None
    answers = predict_photos(loaded, [path for path, _ in items], options, annotator)
    summary = RunSummary(loaded.class_names)
    group_of = group_key(summary_by) if summary_by else None
    groups: dict[str, RunSummary] = {}
    rows: list[Any] = []
    with progress(answers, len(items), "reading photos") as bar:
        for answer in bar:
            summary.add(answer)
            if group_of is not None:
                groups.setdefault(group_of(answer.name), RunSummary(loaded.class_names)).add(answer)
            rows.extend([photo_row(answer)] if per_photo else face_rows(answer))
            if fmt == "jsonl":
                for row in rows:
                    click.echo(json.dumps(row.to_dict()))
                rows.clear()
    if fmt != "jsonl":
        click.echo(format_rows(rows, loaded.class_names, fmt))
    if summary.photos > 1:
        click.echo(summary.line(), err=True)
    if group_of is not None:
        write_groups(dict(sorted(groups.items())), loaded.class_names, summary_output)
    if annotator:
        click.echo(f"annotated {len(annotator.written)} image(s) in {annotate_dir}", err=True)
    if summary.unreadable:
        click.echo(f"{summary.unreadable} of {summary.photos} input(s) unreadable", err=True)
        sys.exit(EXIT_UNREADABLE)


def write_groups(groups: dict[str, Any], class_names: list[str], folder: str | None) -> None:
    """Each group's summary line on stderr, and its files in `folder` when given."""
    from emotion_tf.io_utils import atomic_write_text
    from emotion_tf.pipeline.groups import group_files

    for name, summary in groups.items():
        click.echo(f"{name}: {summary.line()}", err=True)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        title = "emotion-tf predict: reactions by group"
        for name, text in group_files(groups, class_names, title).items():
            atomic_write_text(Path(folder) / name, text)
        click.echo(f"group summary in {folder}", err=True)


MISTAKES_SHOWN = 24  # photos on evaluate's --mistakes sheet


@main.command()
@click.argument("data_dir", type=click.Path(file_okay=False), callback=existing_data_dir)
@model_option
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Also write metrics JSON here."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for programs.",
)
@face_options
@trust_model_option
@detector_options
@photo_rule_option
@min_confidence_option
@click.option(
    "--mistakes",
    "mistakes_png",
    type=click.Path(dir_okay=False),
    help=f"Also draw the {MISTAKES_SHOWN} most confident mistakes into this PNG: each photo "
    "with the faces read, its class and what it was read as (also listed in --output).",
)
@click.option(
    "--report",
    "report_html",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML page: the metrics, the confusion matrix, accuracy "
    "against coverage (to choose --min-confidence) and the most confident mistakes.",
)
def evaluate(
    data_dir: str,
    model: str | None,
    output: str | None,
    fmt: str,
    faces: str,
    fallback: str,
    face_margin: float | None,
    trust_model: bool,
    detector: str | None,
    align: bool,
    photo_rule: str,
    context: float,
    min_confidence: float | None,
    mistakes_png: str | None,
    report_html: str | None,
) -> None:
    """Accuracy (with 95% intervals), per-class precision/recall/F1, confusion matrix and
    expected calibration error of the model (default: the packaged one) on DATA_DIR.

    DATA_DIR is a folder of class sub-folders, or a data dir whose validation/ split is used.
    Every photo goes through the same pipeline as predict and gets one answer from all its
    faces (--photo-rule). Exit status: 0 when every photo was read, 1 when some could not be
    (the metrics then cover the rest), 2 for a usage error.
    """
    from emotion_tf.evaluate import evaluate_photos, format_by_source
    from emotion_tf.io_utils import atomic_write_bytes, atomic_write_json
    from emotion_tf.metrics import format_metrics
    from emotion_tf.predictors.resolve import open_model

    predictor = open_model(model, trust=trust_model)
    options = photo_options(
        faces,
        fallback,
        face_margin,
        detector,
        align,
        photo_rule,
        context,
        min_confidence=min_confidence,
    )
    shown = MISTAKES_SHOWN if mistakes_png or report_html else 0
    metrics, found = evaluate_photos(predictor, Path(data_dir), options, mistakes=shown)
    if fmt == "json":
        click.echo(json.dumps(metrics, indent=2))
    else:
        click.echo(format_metrics(metrics) + format_by_source(metrics))
    for item in metrics["errors"]:
        click.echo(f"unreadable {item['path']}: {item['error']}", err=True)
    if metrics["no_face"]:
        click.echo(f"{len(metrics['no_face'])} photo(s) without a face, not scored", err=True)
    if output:
        atomic_write_json(Path(output), metrics)
    sheet = None
    if shown:
        from emotion_tf.report.mistakes import mistakes_sheet

        sheet = mistakes_sheet(metrics["mistakes"], predictor.class_names)
    if mistakes_png and sheet is not None:
        atomic_write_bytes(Path(mistakes_png), sheet)
        click.echo(f"drew {len(metrics['mistakes'])} mistake(s) in {mistakes_png}", err=True)
    if report_html:
        from emotion_tf.io_utils import atomic_write_text
        from emotion_tf.report.evaluation import evaluation_page

        page = evaluation_page(metrics, found, predictor.class_names, options, sheet)
        atomic_write_text(Path(report_html), page)
        click.echo(f"report in {report_html}", err=True)
    if metrics["errors"]:
        click.echo(f"{len(metrics['errors'])} of {metrics['photos']} photo(s) unreadable", err=True)
        sys.exit(EXIT_UNREADABLE)


for _command in (train, serve, report, explain, data, watch, pack, batch):
    main.add_command(_command)
data.add_command(crop_faces)

if __name__ == "__main__":
    main()

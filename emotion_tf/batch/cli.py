"""`emotion-tf batch PATTERN... --output DIR [--runner=...]`: score photos on Apache Beam."""

from __future__ import annotations

import json
import sys

import click

from emotion_tf.cli_base import command, model_option, trust_model_option
from emotion_tf.errors import ConfigError
from emotion_tf.faces.cli import detector_options, face_options, photo_options, photo_rule_option

BEAM_MISSING = (
    "emotion-tf batch needs Apache Beam: pip install -e '.[cpu,beam]' (or 'emotion-tf[beam]')"
)


@command("batch", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED, required=True)
@click.option(
    "--output",
    "-o",
    required=True,
    help="Folder for rows-*.jsonl, dead_letters-*.jsonl and the group summary (local, gs://, "
    "s3://).",
)
@model_option
@trust_model_option
@face_options
@detector_options
@photo_rule_option
@click.option(
    "--per-photo", is_flag=True, help="One row per photo from all its faces (as predict's)."
)
@click.option(
    "--summary-by",
    help="Reaction summary per group: folder, prefix:PATH (the folder after PATH) or "
    "regex:PATTERN; written as groups.json, groups.csv and groups.html.",
)
def batch(
    args: tuple[str, ...],
    output: str,
    model: str | None,
    trust_model: bool,
    faces: str,
    fallback: str,
    face_margin: float | None,
    detector: str | None,
    align: bool,
    photo_rule: str,
    context: float,
    per_photo: bool,
    summary_by: str | None,
) -> None:
    """Score every photo matched by PATTERN (files, folders, globs; gs:// and s3:// with Beam's
    extras) through the same photo pipeline as predict, on Apache Beam. Any other option of the
    form --name=value goes to Beam (--runner=DataflowRunner, --direct_num_workers=2, ...); the
    runner defaults to the DirectRunner (this machine).

    Writes rows like `predict --format json` (JSON lines), unreadable files with their reason to
    dead_letters, and prints read = answered + dead letters. Exit status 1 if there were dead
    letters, 2 for a usage error.
    """
    patterns = tuple(a for a in args if not a.startswith("-"))
    beam_args = [a for a in args if a.startswith("-")]
    if not any(a.split("=")[0] == "--runner" for a in beam_args):
        # Beam's own default (Prism) downloads a binary at run time: the DirectRunner does not.
        beam_args.append("--runner=DirectRunner")
    if not patterns:
        raise ConfigError("give at least one input PATTERN (a file, folder or glob)")
    try:
        from emotion_tf.batch.beam import BatchJob, run
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "apache_beam":
            raise
        raise ConfigError(BEAM_MISSING) from err
    if summary_by:
        from emotion_tf.pipeline.groups import group_key

        group_key(summary_by)  # a bad spec fails before the pipeline starts
    options = photo_options(faces, fallback, face_margin, detector, align, photo_rule, context)
    job = BatchJob(patterns, output, model, options, per_photo, summary_by, trust_model)
    counts = run(job, beam_args)
    click.echo(json.dumps(counts), err=True)
    click.echo(
        f"read {counts['read']} = answered {counts['answered']} + dead letters "
        f"{counts['dead_letters']}; results in {output}",
        err=True,
    )
    if counts["dead_letters"]:
        sys.exit(1)

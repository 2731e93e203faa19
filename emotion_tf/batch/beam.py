"""The photo pipeline as an Apache Beam pipeline: read -> prepare (decode, faces, crops) ->
RunInference over the crops -> answers (the photo rule) -> rows, dead letters, group summaries.

The same `emotion_tf.pipeline` code as `emotion-tf predict` prepares and answers every photo, and
the model is the same backend (`open_model`), loaded once per worker by a RunInference model
handler; so a row is the row `predict --format json` prints for the same file. Runs unchanged on
the DirectRunner, Dataflow, Flink or Spark (pipeline options pass through).

Nothing is lost and nothing counted twice: every file matched is either answered (a row, a
no-face answer included) or a dead letter (`dead_letters-*.jsonl`: path and reason). The
counters `read`, `answered` and `dead_letters` (namespace `emotion_tf`) and the closing summary
show read = answered + dead letters.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from emotion_tf.data.files import is_image_name, upright_image_data
from emotion_tf.pipeline.decode import PhotoSource
from emotion_tf.pipeline.groups import group_files, group_key
from emotion_tf.pipeline.options import DEFAULT_OPTIONS, PhotoOptions
from emotion_tf.pipeline.run import ModelShape, PhotoAnswer, PhotoPipeline
from emotion_tf.pipeline.summary import RunSummary
from emotion_tf.predict import face_rows, photo_row

log = logging.getLogger(__name__)

NAMESPACE = "emotion_tf"
CROPS = "crops"
DEAD = "dead"


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """What `emotion-tf batch` runs: inputs, model, photo options and where results go."""

    patterns: tuple[str, ...]
    output: str  # a folder, local or gs:// / s3://
    model: str | None = None  # None: the packaged model (shipped with the package)
    options: PhotoOptions = DEFAULT_OPTIONS
    per_photo: bool = False
    summary_by: str | None = None
    trust_model: bool = False


def match_patterns(patterns: Sequence[str]) -> list[str]:
    """Each pattern as Beam matches it: a local folder becomes `folder/**`."""
    import os

    return [f"{p.rstrip('/')}/**" if os.path.isdir(p) else p for p in patterns]


class CropModelHandler(ModelHandler[np.ndarray, np.ndarray, Any]):
    """RunInference over face crops (uint8 [size, size, C]) with `emotion_tf.load`'s backend:
    the model loads once per worker and answers each crop with its class probabilities."""

    def __init__(self, model: str | None, trust: bool = False, batch_size: int = 64):
        super().__init__()
        self._model, self._trust, self._batch_size = model, trust, batch_size

    def load_model(self) -> Any:
        from emotion_tf.predictors.resolve import open_model

        return open_model(self._model, trust=self._trust)

    def run_inference(
        self, batch: Sequence[np.ndarray], model: Any, inference_args: dict[str, Any] | None = None
    ) -> Iterable[np.ndarray]:
        probabilities = model.predict_images(np.stack(batch))["probabilities"]
        return list(np.asarray(probabilities))

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(crop.nbytes for crop in batch)

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self._batch_size}


class ReadPhoto(beam.DoFn):
    """A matched file -> (path, PhotoSource): its bytes checked like `predict` checks a file's
    (size, format, pixel budget, turned upright by EXIF), or the source with its error."""

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels
        self.read = beam.metrics.Metrics.counter(NAMESPACE, "read")

    def process(self, readable: Any) -> Iterator[tuple[str, PhotoSource]]:
        path = readable.metadata.path
        self.read.inc()
        try:
            size = readable.metadata.size_in_bytes
            if size > 8 * self.max_pixels + (1 << 20):
                raise ValueError(
                    f"too large: {size} bytes for images of at most {self.max_pixels} pixels"
                )
            data, error = upright_image_data(readable.read(), self.max_pixels)
        except Exception as err:  # a storage error or a hostile file: a dead letter, not a crash
            data, error = None, f"cannot read: {type(err).__name__}: {err}"[:200]
        yield path, PhotoSource(path, data=data, error=error)


class PreparePhoto(beam.DoFn):
    """(path, source) -> (path, Prepared) on the main output (crops dropped) and its crops as
    ((path, index), crop) on `crops`; the detector is built once per worker."""

    def __init__(self, shape: ModelShape, options: PhotoOptions):
        self.shape, self.options = shape, options
        self.pipeline: PhotoPipeline | None = None

    def setup(self) -> None:
        self.pipeline = PhotoPipeline(self.shape, self.options)

    def process(self, item: tuple[str, PhotoSource]) -> Iterator[Any]:
        assert self.pipeline is not None
        path, source = item
        prepared = self.pipeline.prepare(source)
        for index, crop in enumerate(prepared.crops if prepared.crops is not None else []):
            yield beam.pvalue.TaggedOutput(CROPS, ((path, index), crop))
        prepared.crops = None
        prepared.source = dataclasses.replace(prepared.source, data=None)
        yield path, prepared


class AnswerPhoto(beam.DoFn):
    """(path, {"photo": [Prepared], "probs": [(index, probabilities)]}) -> its PhotoAnswer."""

    def __init__(self, shape: ModelShape, options: PhotoOptions):
        self.shape, self.options = shape, options

    def setup(self) -> None:
        # Answering needs the photo rule, not a detector.
        self.pipeline = PhotoPipeline(self.shape, dataclasses.replace(self.options, faces="none"))

    def process(self, item: tuple[str, dict[str, list[Any]]]) -> Iterator[PhotoAnswer]:
        _, joined = item
        rows = [p for _, p in sorted(joined["probs"], key=lambda pair: pair[0])]
        classes = len(self.shape.class_names)
        for prepared in joined["photo"]:
            probabilities = np.array(rows[: prepared.rows], np.float32)
            yield self.pipeline.answer(prepared, probabilities.reshape(-1, classes))


class SplitAnswers(beam.DoFn):
    """Answers -> JSON rows (as `predict --format json` prints them) on the main output, and
    the unreadable inputs as {"path", "error"} on `dead`; counted."""

    def __init__(self, per_photo: bool):
        self.per_photo = per_photo
        self.answered = beam.metrics.Metrics.counter(NAMESPACE, "answered")
        self.dead = beam.metrics.Metrics.counter(NAMESPACE, "dead_letters")

    def process(self, answer: PhotoAnswer) -> Iterator[Any]:
        if answer.error is not None:
            self.dead.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD, json.dumps({"path": answer.name, "error": answer.error})
            )
            return
        self.answered.inc()
        rows = [photo_row(answer)] if self.per_photo else face_rows(answer)
        for row in rows:
            yield json.dumps(row.to_dict())


class CombineSummaries(beam.CombineFn):
    """PhotoAnswers -> one RunSummary (per key under CombinePerKey)."""

    def __init__(self, class_names: Sequence[str]):
        self.class_names = list(class_names)

    def create_accumulator(self) -> RunSummary:
        return RunSummary(self.class_names)

    def add_input(self, summary: RunSummary, answer: PhotoAnswer) -> RunSummary:
        summary.add(answer)
        return summary

    def merge_accumulators(self, summaries: Iterable[RunSummary]) -> RunSummary:
        merged = RunSummary(self.class_names)
        for summary in summaries:
            merged.merge(summary)
        return merged

    def extract_output(self, summary: RunSummary) -> RunSummary:
        return summary


def _write_summaries(
    groups: list[tuple[str, RunSummary]], output: str, class_names: list[str]
) -> None:
    """groups.json, groups.csv and groups.html under `output` (through Beam's filesystems)."""
    title = "emotion-tf batch: reactions by group"
    for name, text in group_files(dict(sorted(groups)), class_names, title).items():
        with FileSystems.create(FileSystems.join(output, name)) as handle:
            handle.write(text.encode("utf-8"))


def build(pipeline: beam.Pipeline, job: BatchJob, shape: ModelShape) -> dict[str, Any]:
    """Add the job's transforms to `pipeline`; returns its main PCollections by name."""
    options = job.options
    names = list(shape.class_names)
    matched = (
        pipeline
        | "Patterns" >> beam.Create(match_patterns(job.patterns))
        | "Match" >> fileio.MatchAll()
        | "Images" >> beam.Filter(lambda meta: is_image_name(meta.path.rsplit("/", 1)[-1]))
        | "Open" >> fileio.ReadMatches()
    )
    sources = matched | "Read" >> beam.ParDo(ReadPhoto(options.max_pixels))
    prepared = sources | "Prepare" >> beam.ParDo(PreparePhoto(shape, options)).with_outputs(
        CROPS, main="photos"
    )
    handler = KeyedModelHandler(CropModelHandler(job.model, job.trust_model, options.batch_size))
    probabilities = (
        prepared[CROPS]
        | "Infer" >> RunInference(handler)
        | "ByPath" >> beam.MapTuple(lambda key, probs: (key[0], (key[1], np.asarray(probs))))
    )
    joined = {"photo": prepared.photos, "probs": probabilities} | "Join" >> beam.CoGroupByKey()
    answers = joined | "Answer" >> beam.ParDo(AnswerPhoto(shape, options))
    split = answers | "Split" >> beam.ParDo(SplitAnswers(job.per_photo)).with_outputs(
        DEAD, main="rows"
    )
    split.rows | "WriteRows" >> beam.io.WriteToText(
        FileSystems.join(job.output, "rows"), file_name_suffix=".jsonl"
    )
    split[DEAD] | "WriteDead" >> beam.io.WriteToText(
        FileSystems.join(job.output, "dead_letters"), file_name_suffix=".jsonl"
    )
    if job.summary_by:
        key = group_key(job.summary_by)
        (
            answers
            | "Group" >> beam.Map(lambda answer: (key(answer.name), answer))
            | "Summarize" >> beam.CombinePerKey(CombineSummaries(names))
            | "AllGroups" >> beam.combiners.ToList()
            | "WriteSummary" >> beam.Map(_write_summaries, job.output, names)
        )
    return {"answers": answers, "rows": split.rows, "dead": split[DEAD]}


def run(job: BatchJob, beam_args: Sequence[str] = ()) -> dict[str, int]:
    """Run the job to the end; returns the counters read, answered and dead_letters."""
    from emotion_tf.predictors.resolve import open_model

    shape = ModelShape.of(open_model(job.model, trust=job.trust_model))  # fails early, clearly
    pipeline = beam.Pipeline(options=PipelineOptions(list(beam_args)))
    build(pipeline, job, shape)
    result = pipeline.run()
    result.wait_until_finish()
    return counters(result)


def counters(result: Any) -> dict[str, int]:
    """The job's counters from a finished pipeline result."""
    counts = {"read": 0, "answered": 0, "dead_letters": 0}
    for counter in result.metrics().query()["counters"]:
        name = counter.key.metric.name
        if counter.key.metric.namespace == NAMESPACE and name in counts:
            counts[name] += int(counter.committed or counter.attempted or 0)
    return counts

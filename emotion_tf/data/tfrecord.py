"""Sharded TFRecords for data sets too large for folders of files.

`emotion-tf data to-tfrecord DATA_DIR OUT --shards N` scans DATA_DIR like `train` does and
writes, per split, N shards `OUT/<split>-00000-of-0000N.tfrecord` of `tf.train.Example`s:

- `image`: the file's encoded bytes, unchanged (jpg/png/bmp/gif/webp);
- `label`: the class index (int64); `path`: the source path (bytes);
- `orientation`: the EXIF orientation (int64, 1 = upright), applied when read.

plus `OUT/tfrecords.json`, the manifest: class names, counts, shard names, the files left out.
A data dir holding that manifest is read as TFRecords by `train` (`data.data_dir=OUT`).

Order: the pipeline reads training files in one seeded random order (so that a shuffle buffer
smaller than the class-sorted list still mixes classes) and validation files as listed. The
records are written in exactly that order (`--seed`, default 1337 like `train.seed`); the k-th
record goes to shard k mod N and reading interleaves the shards one record at a time, so the
records come back in that order and training gives the same results on either form.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emotion_tf import __version__
from emotion_tf.data.files import (
    SPLITS,
    BadFile,
    LabelledFiles,
    display_path,
    file_list_hash,
    load_splits,
    read_first_frame,
    scan_split,
)
from emotion_tf.errors import DataError
from emotion_tf.io_utils import atomic_write_json, check_output_dir, staged_output

MANIFEST = "tfrecords.json"
DEFAULT_ORDER_SEED = 1337  # TrainConfig.seed's default
FORMAT = "emotion-tf-tfrecord"
FORMAT_VERSION = 1
_CHUNK = 256  # files inspected in parallel at a time; bounds the bytes held in memory

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RecordSplit:
    """One split stored as TFRecord shards."""

    class_names: list[str]
    files: list[str]  # shard paths
    class_counts: dict[str, int]
    file_list_hash: str = ""
    order_seed: int | None = None  # the seed of the stored order (None: folder order)

    def counts(self) -> dict[str, int]:
        return dict(self.class_counts)


def is_tfrecord_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(data_dir: str | Path) -> dict[str, Any]:
    """The parsed `tfrecords.json` of a TFRecord data dir."""
    manifest_path = Path(data_dir) / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read TFRecord manifest {manifest_path}: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{manifest_path}: not an emotion-tf TFRecord manifest")
    return manifest


def load_record_splits(data_dir: str | Path) -> dict[str, RecordSplit]:
    """Read the manifest of a TFRecord data dir and check that its shards are there."""
    data_dir = Path(data_dir)
    manifest_path = data_dir / MANIFEST
    manifest = read_manifest(data_dir)
    class_names = list(manifest["class_names"])
    result = {}
    for split in SPLITS:
        info = manifest["splits"].get(split)
        if not info:
            raise DataError(f"{manifest_path}: no '{split}' split")
        shards = [str(data_dir / name) for name in info["files"]]
        missing = [s for s in shards if not os.path.isfile(s)]
        if missing:
            raise DataError(f"TFRecord shard missing: {missing[0]}")
        counts = {name: int(info["counts"].get(name, 0)) for name in class_names}
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            raise DataError(f"{manifest_path}: class '{empty[0]}' has no '{split}' examples")
        result[split] = RecordSplit(
            class_names, shards, counts, info.get("file_list_hash", ""), info.get("order_seed")
        )
    return result


def _example(data: bytes, label: int, path: str, orientation: int) -> bytes:
    import tensorflow as tf

    def feature(**kind: Any) -> tf.train.Feature:
        return tf.train.Feature(**kind)

    features = {
        "image": feature(bytes_list=tf.train.BytesList(value=[data])),
        "label": feature(int64_list=tf.train.Int64List(value=[label])),
        "path": feature(bytes_list=tf.train.BytesList(value=[os.fsencode(path)])),
        "orientation": feature(int64_list=tf.train.Int64List(value=[orientation])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def training_order(count: int, order_seed: int | None) -> list[int]:
    """The order the pipeline reads a split's files in: seeded random, or as listed (None).

    Must match `emotion_tf.data.pipeline.encoded_examples`, which uses the same permutation.
    """
    import numpy as np

    if order_seed is None:
        return list(range(count))
    return [int(i) for i in np.random.default_rng(order_seed).permutation(count)]


def _read_in_order(paths: list[str], workers: int) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of `paths`, in order, read in parallel a chunk at a time."""
    import concurrent.futures

    def read(path: str) -> bytes:  # animated images are stored as their first frame only
        return read_first_frame(path)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start : start + _CHUNK]
            yield from zip(chunk, pool.map(read, chunk))


def _write_split(
    split: str,
    files: LabelledFiles,
    out_dir: Path,
    shards: int,
    max_pixels: int,
    workers: int,
    order_seed: int | None,
) -> tuple[LabelledFiles, list[str], list[BadFile]]:
    """Scan one split, then write its good files into `shards` shards in training order.

    Returns the clean file list (folder order), the shard names and the files left out.
    """
    import tensorflow as tf

    clean, bad = scan_split(files, max_pixels, workers)
    for item in bad:
        log.warning("skipping %s: %s", display_path(item.path), item.reason)
    order = training_order(len(clean.paths), order_seed)
    count = min(shards, max(1, len(order)))
    names = [f"{split}-{i:05d}-of-{count:05d}.tfrecord" for i in range(count)]
    writers = [tf.io.TFRecordWriter(str(out_dir / name)) for name in names]
    orientations = clean.orientation_list()
    try:
        ordered = [clean.paths[i] for i in order]
        for position, (index, (path, data)) in enumerate(
            zip(order, _read_in_order(ordered, workers))
        ):
            # The k-th file goes to shard k mod count: reading round-robin restores the order.
            example = _example(data, clean.labels[index], path, orientations[index])
            writers[position % count].write(example)
            if (position + 1) % 1000 == 0:
                log.info("%s: %d of %d files written", split, position + 1, len(order))
    except OSError as err:
        raise DataError(f"a file changed while it was converted: {err}") from err
    finally:
        for writer in writers:
            writer.close()
    return clean, names, bad


def write_tfrecords(
    data_dir: str | Path,
    out_dir: str | Path,
    shards: int,
    max_pixels: int = 50_000_000,
    overwrite: bool = False,
    workers: int = 4,
    order_seed: int | None = DEFAULT_ORDER_SEED,
) -> dict[str, Any]:
    """Convert a folder data set to sharded TFRecords in `out_dir`; return the manifest.

    Written into a temporary folder beside `out_dir` and renamed into place at the end, so an
    interrupted conversion never leaves a half-written data set that looks complete.
    """
    if shards < 1:
        raise DataError(f"--shards must be at least 1. Received: {shards}")
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite)
    splits = load_splits(Path(data_dir))
    with staged_output(out_dir, overwrite) as tmp:
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "source": str(Path(data_dir).resolve()),
            "max_pixels": max_pixels,
            "class_names": splits["train"].class_names,
            "splits": {},
        }
        clean: dict[str, LabelledFiles] = {}
        for split, files in splits.items():
            seed = order_seed if split == "train" else None
            clean[split], names, bad = _write_split(
                split, files, tmp, shards, max_pixels, workers, seed
            )
            manifest["splits"][split] = {
                "files": names,
                "counts": clean[split].counts(),
                "num_examples": len(clean[split].paths),
                "file_list_hash": file_list_hash({split: clean[split]}, data_dir),
                "order_seed": seed,
                "skipped_files": [{"path": display_path(b.path), "reason": b.reason} for b in bad],
                "exif_rotated": sum(o != 1 for o in clean[split].orientation_list()),
            }
        manifest["file_list_hash"] = file_list_hash(clean, data_dir)
        atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


def read_records(split: RecordSplit, parallel_reads: int = 16) -> Any:
    """(encoded image bytes, label, orientation) for every record, in the folder's order."""
    import tensorflow as tf

    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "orientation": tf.io.FixedLenFeature([], tf.int64, default_value=1),
    }

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(record, spec)
        label = tf.cast(example["label"], tf.int32)
        return example["image"], label, tf.cast(example["orientation"], tf.int32)

    shards = tf.data.Dataset.from_tensor_slices(tf.constant(split.files, tf.string))
    records = shards.interleave(
        tf.data.TFRecordDataset,
        cycle_length=len(split.files),  # one record from each shard in turn: the folder order
        block_length=1,
        num_parallel_calls=min(parallel_reads, len(split.files)),
        deterministic=True,
    )
    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

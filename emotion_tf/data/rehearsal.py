"""`data.rehearsal_dir`: a sample of another data set's training images mixed into training.

Fine-tuning a trained model on a few hundred new images can make it forget what it read well
before (FER2013 faces, for a model fine-tuned on web photos). Mixing a fixed, seeded sample of
the original training images into every epoch keeps that reading in practice ("rehearsal").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emotion_tf.config import Config
from emotion_tf.data.files import (
    BadFile,
    LabelledFiles,
    display_path,
    list_split,
    scan_split,
    split_folder,
)


def add_rehearsal(
    train: LabelledFiles, config: Config
) -> tuple[LabelledFiles, dict[str, Any], list[BadFile]]:
    """`train` with up to data.rehearsal_per_class images of each class drawn (seeded by
    train.seed) from data.rehearsal_dir; also what was added and the unusable files left out."""
    source = split_folder(config.data.rehearsal_dir, "train")
    pool = list_split(source, train.class_names)  # one-line DataError on a missing class
    rng = np.random.default_rng(config.train.seed)
    labels = np.asarray(pool.labels)
    chosen: list[int] = []
    for index in range(len(train.class_names)):
        members = np.flatnonzero(labels == index)
        size = min(config.data.rehearsal_per_class, len(members))
        chosen.extend(sorted(int(i) for i in rng.choice(members, size=size, replace=False)))
    sample = LabelledFiles(
        train.class_names, [pool.paths[i] for i in chosen], [pool.labels[i] for i in chosen]
    )
    sample, bad = scan_split(sample, config.data.max_pixels)
    merged = LabelledFiles(
        train.class_names,
        train.paths + sample.paths,
        train.labels + sample.labels,
        train.ignored,
        train.orientation_list() + sample.orientation_list(),
        train.animated_list() + sample.animated_list(),
    )
    summary = {"dir": display_path(str(source)), "counts": sample.counts(), "skipped": len(bad)}
    return merged, summary, bad

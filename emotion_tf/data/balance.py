"""`data.oversample`: the smaller classes of a training split repeated to the largest's size.

Class weights balance the classes over everything trained on; when one source is lopsided
(web-happy-sad-more: 2.4 sad photos to each happy one) and another is not (the FER2013
rehearsal sample), the model still learns that the lopsided source's look means its majority
class. Repeating its minority photos (each seen with fresh augmentation) evens that source out.
"""

from __future__ import annotations

import numpy as np

from emotion_tf.data.files import LabelledFiles


def oversample(files: LabelledFiles, seed: int) -> LabelledFiles:
    """`files` with each class's photos repeated (whole copies, then a seeded sample of the
    rest) until every class present has as many as the largest."""
    labels = np.asarray(files.labels)
    present = [c for c in range(len(files.class_names)) if (labels == c).any()]
    if not present:
        return files
    target = max(int((labels == c).sum()) for c in present)
    rng = np.random.default_rng(seed)
    chosen: list[int] = list(range(len(files.paths)))
    for c in present:
        members = np.flatnonzero(labels == c)
        missing = target - len(members)
        copies, rest = divmod(missing, len(members))
        chosen.extend(int(i) for i in np.tile(members, copies))
        chosen.extend(sorted(int(i) for i in rng.choice(members, size=rest, replace=False)))
    orientations, animated = files.orientation_list(), files.animated_list()
    return LabelledFiles(
        files.class_names,
        [files.paths[i] for i in chosen],
        [files.labels[i] for i in chosen],
        files.ignored,
        [orientations[i] for i in chosen],
        [animated[i] for i in chosen],
    )

"""The closing summary of a run over photos: how many, how many faces, the share of each
label and of photos without a face (with 95% intervals), and how many could not be read.

`predict` prints it for every run over more than one photo; `--summary-by` (and the Beam
batch job) keep one per group.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from emotion_tf.metrics import wilson_interval
from emotion_tf.pipeline.run import PhotoAnswer


@dataclasses.dataclass
class RunSummary:
    """Counts over a run's answers; `add` one answer at a time."""

    class_names: list[str]
    photos: int = 0
    faces: int = 0
    no_face: int = 0
    unreadable: int = 0
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    confidence_sum: float = 0.0

    def add(self, answer: PhotoAnswer) -> None:
        self.photos += 1
        if answer.error is not None:
            self.unreadable += 1
        elif answer.no_face:
            self.no_face += 1
        else:
            self.faces += answer.face_count
            assert answer.label is not None and answer.confidence is not None
            self.labels[answer.label] = self.labels.get(answer.label, 0) + 1
            self.confidence_sum += answer.confidence

    def merge(self, other: RunSummary) -> RunSummary:
        """This summary with `other`'s counts added (Beam combines partial summaries)."""
        self.photos += other.photos
        self.faces += other.faces
        self.no_face += other.no_face
        self.unreadable += other.unreadable
        self.confidence_sum += other.confidence_sum
        for name, count in other.labels.items():
            self.labels[name] = self.labels.get(name, 0) + count
        return self

    @property
    def answered(self) -> int:
        """Photos with a label."""
        return sum(self.labels.values())

    def to_dict(self) -> dict[str, Any]:
        """Counts, shares of the read photos (labels and no face) with 95% intervals."""
        read = self.photos - self.unreadable
        names = [*self.class_names, *(n for n in self.labels if n not in self.class_names)]
        shares = {
            name: {
                "count": self.labels.get(name, 0),
                "share": self.labels.get(name, 0) / read if read else 0.0,
                "ci95": wilson_interval(self.labels.get(name, 0), read),
            }
            for name in names  # the classes, then "unclear" when --min-confidence abstained
        }
        return {
            "photos": self.photos,
            "faces": self.faces,
            "answered": self.answered,
            "no_face": self.no_face,
            "unreadable": self.unreadable,
            "labels": shares,
            "no_face_share": self.no_face / read if read else 0.0,
            "mean_confidence": self.confidence_sum / self.answered if self.answered else None,
        }

    def line(self) -> str:
        """One line for people: `12 photos, 15 faces: happy 58%, sad 42%, no face 0%; ...`."""
        read = self.photos - self.unreadable
        parts = ["nothing read"]
        if read:
            parts = [f"{name} {self.labels.get(name, 0) / read:.0%}" for name in self.class_names]
            parts.append(f"no face {self.no_face / read:.0%}")
        text = f"{self.photos} photo(s), {self.faces} face(s): {', '.join(parts)}"
        return text + (f"; {self.unreadable} unreadable" if self.unreadable else "")

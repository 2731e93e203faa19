"""Write an annotated copy of a video: each face's box, person id, label and confidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotion_tf.faces.annotate import PALETTE
from emotion_tf.io_utils import commit_temp_file, temp_file_beside
from emotion_tf.video.analyze import FrameResult


class VideoAnnotator:
    """Feed `FrameResult`s (with images) in order; `close()` finishes `path` (MP4, mp4v).

    The video has the processed frames at the rate they were processed (the sampling rate, or
    the source's rate with every frame). It is written to a temporary file and renamed into
    place at `close()`, so an interrupted run never leaves a half-written file under `path`.
    """

    def __init__(self, path: Path, fps: float, class_names: list[str]):
        self.path = Path(path)
        self.fps = fps if fps > 0 else 10.0
        self.class_names = list(class_names)
        self._writer = None
        self.frames = 0
        self._tmp = temp_file_beside(self.path)

    def __call__(self, result: FrameResult) -> None:
        import cv2

        if result.image is None:
            return
        image = cv2.cvtColor(np.ascontiguousarray(result.image), cv2.COLOR_RGB2BGR)
        if self._writer is None:
            height, width = image.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(self._tmp, fourcc, self.fps, (width, height))
        draw_annotations(image, result, self.class_names)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file; returns its path, or None when no frame was written."""
        if self._writer is None:
            Path(self._tmp).unlink(missing_ok=True)
            return None
        self._writer.release()
        self._writer = None
        commit_temp_file(self._tmp, self.path)
        return self.path


def draw_annotations(image: np.ndarray, result: FrameResult, class_names: list[str]) -> None:
    """Draw each face's box and "#person label confidence", and the time, onto BGR `image`."""
    import cv2

    short = min(image.shape[:2])
    thickness = max(1, round(short / 240))
    scale = max(0.4, short / 800)
    for person in result.people:
        x, y, w, h = person.box.as_list()
        index = class_names.index(person.label) if person.label in class_names else 0
        r, g, b = PALETTE[index % len(PALETTE)]
        colour = (b, g, r)
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        caption = f"#{person.person} {person.label} {person.confidence:.2f}"
        (text_w, text_h), base = cv2.getTextSize(
            caption, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness
        )
        top = y - text_h - base - 4 if y - text_h - base - 4 >= 0 else y + h
        cv2.rectangle(image, (x, top), (x + text_w + 4, top + text_h + base + 4), colour, -1)
        cv2.putText(
            image,
            caption,
            (x + 2, top + text_h + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    cv2.putText(
        image,
        f"{result.time_s:.2f} s",
        (6, image.shape[0] - 8),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )

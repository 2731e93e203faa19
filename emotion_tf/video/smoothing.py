"""Per-person smoothing of class probabilities over a time window, and the moments where a
person's label changes.

The window is causal (the last `window_s` seconds up to the current frame), so live streams and
files give the same values frame by frame. A smoothed label lags a sudden change by up to half
the window; the moment reported for a change is therefore dated back to the start of the
unbroken run of frames whose own (unsmoothed) label is the new one.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

# Seconds of smoothing when not told: long enough to ride out a blink or a detector slip,
# short enough that a real change of expression shows within half a second of lag.
DEFAULT_SMOOTH_S = 1.0


@dataclasses.dataclass(frozen=True)
class LabelChange:
    """A person's label changed from `before` to `after` at `time_s` (frame `frame`)."""

    time_s: float
    frame: int
    before: str
    after: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class Smoother:
    """Mean of the probabilities of one person's frames within the last `window_s` seconds.

    `window_s == 0` passes each frame's probabilities through. `update` returns the smoothed
    probabilities and, when the smoothed label changed, the `LabelChange`.
    """

    def __init__(self, class_names: list[str], window_s: float):
        if window_s < 0:
            raise ValueError(f"smoothing window must be >= 0 seconds. Received: {window_s}")
        self.class_names = list(class_names)
        self.window_s = float(window_s)
        self._window: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        # (time, frame, own label) of recent frames, to date changes back.
        self._recent: collections.deque[tuple[float, int, int]] = collections.deque()
        self.label: int | None = None

    def update(
        self, time_s: float, frame: int, probabilities: np.ndarray
    ) -> tuple[np.ndarray, LabelChange | None]:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        self._window.append((time_s, probabilities))
        while self._window and self._window[0][0] <= time_s - self.window_s - 1e-9:
            self._window.popleft()
        if not self._window:  # window_s == 0
            self._window.append((time_s, probabilities))
        smoothed = np.mean([p for _, p in self._window], axis=0)
        own = int(np.argmax(probabilities))
        self._recent.append((time_s, frame, own))
        while len(self._recent) > 1 and self._recent[0][0] < time_s - 2 * self.window_s - 1e-9:
            self._recent.popleft()
        label = int(np.argmax(smoothed))
        change = None
        if self.label is not None and label != self.label:
            start_time, start_frame = time_s, frame
            for past_time, past_frame, past_label in reversed(self._recent):
                if past_label != label:
                    break
                start_time, start_frame = past_time, past_frame
            change = LabelChange(
                round(start_time, 6),
                start_frame,
                self.class_names[self.label],
                self.class_names[label],
            )
        self.label = label
        return smoothed, change

"""Find faces in photos with OpenCV's bundled Haar cascades (shipped inside the wheel, offline).

OpenCV 4.x wheels carry the cascade XML files under `cv2.data.haarcascades`; OpenCV 5 dropped
them, hence the `opencv-python-headless>=4.8,<5` pin. `docs/lab/faces-and-reports.md` has the
comparison that chose the cascade and its settings.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from pathlib import Path

import numpy as np

from emotion_tf.errors import ConfigError

CASCADES: dict[str, str] = {
    "default": "haarcascade_frontalface_default.xml",
    "alt": "haarcascade_frontalface_alt.xml",
    "alt2": "haarcascade_frontalface_alt2.xml",
    "alt_tree": "haarcascade_frontalface_alt_tree.xml",
}
DEFAULT_CASCADE = "alt2"
# Landmark names: "left"/"right" are the image's left and right (not the person's). mtcnn gives
# the eyes, nose and mouth corners; BlazeFace the eyes, nose and mouth centre ("mouth").
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right", "mouth")


@dataclasses.dataclass(frozen=True)
class FaceBox:
    """A face as a pixel box [x, y, w, h] (top-left corner, width, height) and a score.

    `score` is the detector's confidence; for the Haar detector it is the number of raw cascade
    hits merged into the box (higher is surer; not a probability). None for boxes that did not
    come from a detector.
    """

    x: int
    y: int
    w: int
    h: int
    score: float | None = None
    # Facial points in image pixels, by name (`LANDMARKS`), where the detector gives them.
    landmarks: dict[str, tuple[float, float]] | None = dataclasses.field(
        default=None, compare=False, hash=False
    )

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def scaled(self, factor: float) -> FaceBox:
        """The box (and its landmarks) in an image `factor` times the size."""
        points = None
        if self.landmarks is not None:
            points = {k: (x * factor, y * factor) for k, (x, y) in self.landmarks.items()}
        return FaceBox(
            round(self.x * factor),
            round(self.y * factor),
            round(self.w * factor),
            round(self.h * factor),
            self.score,
            points,
        )

    @property
    def area(self) -> int:
        return self.w * self.h

    def iou(self, other: FaceBox) -> float:
        """Intersection over union of two boxes."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union else 0.0


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W] luminance of a [H, W], [H, W, 1] or RGB [H, W, 3] uint8 image."""
    import cv2

    if image.ndim == 2:
        return image
    if image.shape[-1] == 1:
        return image[..., 0]
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


@functools.cache
def _cascade_path(name: str) -> str:
    import cv2

    if name not in CASCADES:
        raise ConfigError(
            f"unknown face cascade. Expected one of {sorted(CASCADES)}. Received: {name!r}"
        )
    data = getattr(cv2, "data", None)
    if data is None or not hasattr(cv2, "CascadeClassifier"):
        raise ConfigError(
            f"OpenCV {cv2.__version__} ships no Haar cascades (OpenCV 5 dropped them); "
            "install opencv-python-headless>=4.8,<5"
        )
    path = Path(data.haarcascades) / CASCADES[name]
    if not path.is_file():
        raise ConfigError(f"OpenCV cascade file missing from the installed wheel: {path}")
    return str(path)


def downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """`image` shrunk (area interpolation) so its longer side is at most `max_side`, and the
    factor applied (1.0 when it already fits)."""
    import cv2

    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, 1.0
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] from a gray [H, W] / [H, W, 1] or RGB(A) image."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=-1))
    return np.ascontiguousarray(image[..., :3])


class HaarFaceDetector:
    """Frontal-face detector; `detect(image)` returns boxes sorted by area, largest first.

    Images larger than `max_side` are scanned on a downscaled copy (boxes are mapped back), which
    bounds the time per photo; faces smaller than `min_size` pixels at that scale are not found.
    When nothing is found, the image is scanned once more with `border_retry` of its size
    added around it (edge pixels replicated), which finds faces that fill the frame.
    """

    def __init__(
        self,
        cascade: str = DEFAULT_CASCADE,
        scale_factor: float = 1.1,
        min_neighbors: int = 4,
        min_size: int = 24,
        max_side: int = 1024,
        equalize: bool = True,
        border_retry: float = 0.25,
    ):
        if not 1.0 < scale_factor <= 2.0:
            raise ConfigError(
                f"scale_factor must be in (1, 2]. Received: scale_factor={scale_factor}"
            )
        if min_neighbors < 0:
            raise ConfigError(
                f"min_neighbors must be >= 0. Received: min_neighbors={min_neighbors}"
            )
        if min_size < 8:
            raise ConfigError(f"min_size must be >= 8 pixels. Received: min_size={min_size}")
        import cv2

        self.name = f"haar-{cascade}"
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side
        self.equalize = equalize
        self.border_retry = border_retry
        self._classifier = cv2.CascadeClassifier(_cascade_path(cascade))
        self._lock = threading.Lock()
        if self._classifier.empty():
            raise ConfigError(f"OpenCV could not load the cascade {_cascade_path(cascade)}")

    def detect(
        self,
        image: np.ndarray,
        face_sizes: tuple[int, int] | None = None,
        scale_factor: float | None = None,
        max_side: int | None = None,
    ) -> list[FaceBox]:
        """Faces in a uint8 gray or RGB image, largest first. `face_sizes` (smallest, largest
        side in pixels of `image`) limits the scan to faces of about a known size, which costs
        about half as much (a tracker looking for a face it saw on the last frame);
        `scale_factor` replaces the detector's own step between scanned sizes for this call;
        `max_side` its downscaling bound (0: none, for a caller that scaled the image itself)."""
        import cv2

        bound = self.max_side if max_side is None else max_side
        gray = to_gray(np.asarray(image, dtype=np.uint8))
        gray, scale = downscaled(gray, bound) if bound > 0 else (gray, 1.0)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        if min(gray.shape) < self.min_size:
            return []
        sizes = (self.min_size, 0)  # 0: no upper bound
        if face_sizes is not None:
            sizes = (max(self.min_size, round(face_sizes[0] * scale)), round(face_sizes[1] * scale))
        step = scale_factor or self.scale_factor
        boxes = self._scan(gray, sizes, step)
        if not boxes and self.border_retry > 0:
            boxes = self._scan_padded(gray, sizes, step)
        boxes = [
            FaceBox(
                round(b.x / scale),
                round(b.y / scale),
                round(b.w / scale),
                round(b.h / scale),
                b.score,
            )
            for b in boxes
        ]
        boxes = [b for b in boxes if b.w > 0 and b.h > 0]
        return sorted(boxes, key=lambda b: (-b.area, b.y, b.x))

    def _scan(self, gray: np.ndarray, sizes: tuple[int, int], step: float) -> list[FaceBox]:
        with self._lock:  # one CascadeClassifier is not safe to share between threads
            rects, neighbours = self._classifier.detectMultiScale2(
                gray,
                scaleFactor=step,
                minNeighbors=self.min_neighbors,
                minSize=(sizes[0], sizes[0]),
                maxSize=(sizes[1], sizes[1]),
            )
        return [
            FaceBox(x, y, w, h, float(count))
            for (x, y, w, h), count in zip(
                np.reshape(rects, (-1, 4)).tolist(), np.ravel(neighbours)
            )
        ]

    def _scan_padded(self, gray: np.ndarray, sizes: tuple[int, int], step: float) -> list[FaceBox]:
        """Scan again with the border replicated outwards: the cascade's window must fit around
        a face, so a face that fills the frame (a close-up, a crop) is only found this way.
        Boxes are clipped to the image; those centred outside it are dropped."""
        import cv2

        height, width = gray.shape
        pad = max(1, round(self.border_retry * max(height, width)))
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        boxes = []
        for box in self._scan(padded, sizes, step):
            cx, cy = box.x + box.w / 2 - pad, box.y + box.h / 2 - pad
            if not (0 <= cx < width and 0 <= cy < height):
                continue
            x0, y0 = max(0, box.x - pad), max(0, box.y - pad)
            x1, y1 = min(width, box.x - pad + box.w), min(height, box.y - pad + box.h)
            boxes.append(FaceBox(x0, y0, x1 - x0, y1 - y0, box.score))
        return boxes

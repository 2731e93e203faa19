"""Cut square face crops around detector boxes, framed like the training crops.

Three ways to frame a face, all measured against FER2013 crops (benchmarks/face_framing.py):
- an explicit `margin`: the square around the box centre, the longer box side grown by the
  margin on each side (`--face-margin`);
- the detector's `Framing` (the default): each detector's boxes sit differently on a face
  (MTCNN's are taller than wide, BlazeFace's tighter than Haar's), so each has its own scale
  and vertical shift that reproduce the FER2013 crop from its box;
- `align=True` with landmarks (eyes and mouth): the crop is turned so the eyes are level and
  sized and placed from the eye-to-mouth distance, as FER2013 faces sit in their crops.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.faces.detector import FaceBox

# A FER2013 crop is about 1.05 times the side of the Haar box found in it, centred on the same
# point (median over 194 faces, docs/lab/faces-and-reports.md): this margin on each side makes crops
# of detected faces framed like the FER2013 training crops.
DEFAULT_MARGIN = 0.025
# Landmark alignment by default: chosen on web-happy-sad (docs/lab/faces-and-reports.md).
DEFAULT_ALIGN = False


@dataclasses.dataclass(frozen=True)
class Framing:
    """A detector's box -> FER2013-like crop: side = `scale` * sqrt(w * h), centre moved down
    by `dy` times the side (medians over 200 FER2013 validation faces, face_framing.py)."""

    scale: float
    dy: float = 0.0


FRAMINGS: dict[str, Framing] = {
    "haar": Framing(1.0 + 2 * DEFAULT_MARGIN),
    "mtcnn": Framing(1.07, 0.010),
    "blazeface": Framing(1.116, -0.014),
}


def detector_family(name: str) -> str:
    """The detector family a name belongs to ('haar' for 'haar-alt2'); a union ('haar+blazeface')
    belongs to its first detector's family, whose geometry all its boxes are given in."""
    return name.split("+")[0].split("-")[0]


def framing_for(name: str) -> Framing:
    """The FER2013 framing of boxes from the detector called `name` (Haar's for families it does
    not know)."""
    return FRAMINGS.get(detector_family(name), FRAMINGS["haar"])


def framing_of(detector: object) -> Framing:
    """The FER2013 framing of a detector object's boxes (`framing_for` its name)."""
    return framing_for(str(getattr(detector, "name", "haar")))


# With landmarks: a FER2013 crop's side is 2.53 times the distance from the eyes' midpoint to
# the mouth, and its centre lies 0.29 of that distance from the eyes towards the mouth
# (MTCNN and BlazeFace agree within 0.01 on 200 FER2013 validation faces).
LANDMARK_SIDE = 2.53
LANDMARK_CENTRE = 0.29
# Landmark framing is trusted when its side is within this factor of the box framing's.
LANDMARK_AGREEMENT = 1.6


@dataclasses.dataclass(frozen=True)
class CropRegion:
    """A square region of the image: centre (cx, cy), side, and turn (radians, eyes level)."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def as_box(self) -> FaceBox:
        """The axis-aligned square (ignores the turn)."""
        side = max(1, round(self.side))
        return FaceBox(round(self.cx - side / 2.0), round(self.cy - side / 2.0), side, side)


def square_region(box: FaceBox, margin: float) -> FaceBox:
    """The square around `box`'s centre whose side is the longer box side times (1 + 2 margin).

    May reach outside the image; `crop_face` pads what lies outside.
    """
    if not 0.0 <= margin <= 2.0:
        raise ConfigError(f"face margin must be in [0, 2]. Received: margin={margin}")
    side = max(1, round(max(box.w, box.h) * (1.0 + 2.0 * margin)))
    cx = box.x + box.w / 2.0
    cy = box.y + box.h / 2.0
    return FaceBox(round(cx - side / 2.0), round(cy - side / 2.0), side, side, box.score)


def _mouth(points: dict[str, tuple[float, float]]) -> np.ndarray | None:
    if "mouth" in points:
        return np.array(points["mouth"], float)
    if "mouth_left" in points and "mouth_right" in points:
        return (np.array(points["mouth_left"], float) + np.array(points["mouth_right"])) / 2
    return None


def landmark_region(box: FaceBox, level: bool = True) -> CropRegion | None:
    """The FER2013-like crop placed from the eyes and mouth (turned so the eyes are level
    when `level`), or None without usable landmarks."""
    points = box.landmarks or {}
    mouth = _mouth(points)
    if mouth is None or "left_eye" not in points or "right_eye" not in points:
        return None
    left, right = np.array(points["left_eye"], float), np.array(points["right_eye"], float)
    eyes = (left + right) / 2
    distance = float(np.linalg.norm(mouth - eyes))
    if distance < 1.0:
        return None
    centre = eyes + LANDMARK_CENTRE * (mouth - eyes)
    angle = math.atan2(right[1] - left[1], right[0] - left[0]) if level else 0.0
    return CropRegion(float(centre[0]), float(centre[1]), LANDMARK_SIDE * distance, angle)


def face_region(
    box: FaceBox,
    margin: float | None = None,
    framing: Framing | None = None,
    align: bool = False,
) -> CropRegion:
    """Where to cut the crop for `box`: by explicit `margin`, else (with `align` and
    landmarks) from the landmarks, else by the detector's `framing` (default: Haar's)."""
    if margin is not None:
        square = square_region(box, margin)
        return CropRegion(square.x + square.w / 2.0, square.y + square.h / 2.0, square.w)
    framing = framing or FRAMINGS["haar"]
    side = framing.scale * math.sqrt(max(1, box.w) * max(1, box.h))
    framed = CropRegion(box.x + box.w / 2.0, box.y + box.h / 2.0 + framing.dy * side, side)
    if align:
        placed = landmark_region(box)
        agreement = placed.side / side if placed is not None else 0.0
        if placed is not None and 1 / LANDMARK_AGREEMENT <= agreement <= LANDMARK_AGREEMENT:
            return placed
    return framed


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 [H, W, channels] from a gray or RGB image, converted exactly as training's decode
    path converts (TF's gray <-> RGB ops)."""
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3. Received: channels={channels}")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image[..., :1], 3, axis=-1)
    import tensorflow as tf

    return tf.image.rgb_to_grayscale(tf.constant(image[..., :3])).numpy()


def cut_region(image: np.ndarray, region: CropRegion) -> np.ndarray:
    """The square uint8 [S, S, C] crop of `region`, turned by its angle; parts outside the
    image are filled by repeating the edge pixels."""
    if image.ndim == 2:
        image = image[..., None]
    if region.angle == 0.0:
        return _cut_square(image, region.as_box())
    import cv2

    side = max(1, round(region.side))
    cos, sin = math.cos(region.angle), math.sin(region.angle)
    half = side / 2.0
    # Output pixel (u, v) reads the image at centre + R(angle) (u - half, v - half).
    matrix = np.array(
        [
            [cos, -sin, region.cx - cos * half + sin * half],
            [sin, cos, region.cy - sin * half - cos * half],
        ]
    )
    channels = image.shape[-1]
    source = image[..., 0] if channels == 1 else np.ascontiguousarray(image)
    crop = cv2.warpAffine(
        source,
        matrix,
        (side, side),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return crop[..., None] if crop.ndim == 2 else crop


def _cut_square(image: np.ndarray, region: FaceBox) -> np.ndarray:
    height, width = image.shape[:2]
    x0, y0 = region.x, region.y
    x1, y1 = x0 + region.w, y0 + region.h
    pad = (
        (max(0, -y0), max(0, y1 - height)),
        (max(0, -x0), max(0, x1 - width)),
        (0, 0),
    )
    inside = image[max(0, y0) : max(0, min(y1, height)), max(0, x0) : max(0, min(x1, width))]
    if inside.size == 0:
        raise ConfigError(f"face box {region.as_list()} lies outside the {width}x{height} image")
    crop = np.pad(inside, pad, mode="edge") if any(p for pair in pad for p in pair) else inside
    return np.ascontiguousarray(crop)


def crop_face(
    image: np.ndarray,
    box: FaceBox,
    margin: float | None = DEFAULT_MARGIN,
    channels: int | None = None,
    framing: Framing | None = None,
    align: bool = False,
) -> np.ndarray:
    """A square uint8 [S, S, C] crop around `box` (see `face_region`), padded by edge
    replication where it leaves the image, converted to `channels` (default: the image's)."""
    crop = cut_region(image, face_region(box, margin, framing, align))
    return convert_channels(crop, channels) if channels else crop

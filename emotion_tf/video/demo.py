"""Generated videos: the demo set's schematic faces moving over a plain background and
changing expression at given moments, and a tiny model that tells those faces apart (used by
the tests, benchmarks/video.py and the figure in docs/video.md)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

# Faces of the demo generator (jitter 0) that the default Haar detector finds, happy and sad
# alike, at 100-160 px (checked by tests/test_video.py).
DETECTABLE_SEEDS: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 14, 22)
# Faces the tiny demo model is trained on.
MODEL_SEEDS = DETECTABLE_SEEDS[:5]
FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}


@dataclasses.dataclass(frozen=True)
class ActorScript:
    """One face: its drawing seed and side, where it moves (top-left corner, linearly from
    `start` to `end` over the video), and its expression from each given second on."""

    seed: int
    side: int
    start: tuple[int, int]
    end: tuple[int, int]
    expressions: tuple[tuple[float, str], ...] = ((0.0, "happy"),)

    def expression_at(self, time_s: float) -> str:
        current = self.expressions[0][1]
        for since, expression in self.expressions:
            if time_s >= since:
                current = expression
        return current

    def position_at(self, fraction: float) -> tuple[int, int]:
        x = self.start[0] + (self.end[0] - self.start[0]) * fraction
        y = self.start[1] + (self.end[1] - self.start[1]) * fraction
        return round(x), round(y)


@functools.lru_cache(maxsize=64)
def face_pixels(seed: int, expression: str, side: int) -> np.ndarray:
    """RGB uint8 [side, side, 3]: demo face `seed` (centred, upright) with `expression`."""
    from emotion_tf.data.demo import draw_face

    image = draw_face(np.random.default_rng(seed), expression, side, False, jitter=0.0)
    return np.asarray(image.convert("RGB"))


def background(width: int, height: int) -> np.ndarray:
    """A soft two-way colour gradient (no face-like structure)."""
    xs = np.linspace(0.0, 1.0, width)[None, :, None]
    ys = np.linspace(0.0, 1.0, height)[:, None, None]
    base = np.array([150.0, 170.0, 190.0]) + 40 * xs * np.array([1, -0.5, 0]) + 30 * ys
    return np.clip(base, 0, 255).astype(np.uint8)


def render_frame(
    actors: list[ActorScript], time_s: float, duration_s: float, size: tuple[int, int]
) -> np.ndarray:
    """The RGB frame at `time_s`; later actors are drawn over earlier ones."""
    width, height = size
    frame = background(width, height).copy()
    fraction = min(1.0, time_s / duration_s) if duration_s > 0 else 0.0
    for actor in actors:
        x, y = actor.position_at(fraction)
        face = face_pixels(actor.seed, actor.expression_at(time_s), actor.side)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(width, x + actor.side), min(height, y + actor.side)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = face[y0 - y : y1 - y, x0 - x : x1 - x]
    return frame


def write_demo_video(
    path: Path,
    actors: list[ActorScript],
    duration_s: float,
    fps: float = 10.0,
    size: tuple[int, int] = (640, 480),
) -> Path:
    """Write the video (codec by suffix: mp4/mov/mkv mp4v, avi MJPG, webm VP8); returns path."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(path.suffix.lower(), "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        for index in range(round(duration_s * fps)):
            frame = render_frame(actors, index / fps, duration_s, size)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def face_crops(
    seeds: tuple[int, ...], per_face: int, size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Crops of the demo faces as the tracker cuts them (shifted and scaled a little), resized
    to `size`: uint8 [n, size, size, 3] and labels (0 happy, 1 sad)."""
    import cv2

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for face_seed in seeds:
        for label, expression in enumerate(("happy", "sad")):
            face = face_pixels(face_seed, expression, 160)
            padded = cv2.copyMakeBorder(face, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
            for _ in range(per_face):
                side = int(rng.integers(110, 170))
                x = 40 + 80 - side // 2 + int(rng.integers(-12, 13))
                y = 40 + 80 - side // 2 + int(rng.integers(-12, 13))
                crop = padded[max(0, y) : y + side, max(0, x) : x + side]
                images.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
                labels.append(label)
    return np.stack(images), np.array(labels)


def train_face_model(out_dir: Path, size: int = 32, epochs: int = 8) -> Path:
    """Export of a tiny AlexNet (`size` px, width 1/16) trained for a few seconds on crops of
    MODEL_SEEDS' faces: it tells the demo videos' happy and sad faces apart (and little else)."""
    import keras

    from emotion_tf.config import ModelConfig
    from emotion_tf.export import export_model
    from emotion_tf.model.alexnet import build_alexnet

    keras.utils.set_random_seed(0)
    images, labels = face_crops(MODEL_SEEDS, 24, size)
    model = build_alexnet(ModelConfig(input_size=size, channels=3, width=0.0625), 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(
        images.astype("float32"),
        labels.astype("int32"),
        batch_size=16,
        epochs=epochs,
        shuffle=True,
        verbose=0,
    )
    return export_model(model, out_dir, ["happy", "sad"], warmup=False)


def two_people(seconds: float = 6.0) -> list[ActorScript]:
    """Two faces that cross: the first turns sad at 25% of the video, the second happy at 75%."""
    return [
        ActorScript(
            DETECTABLE_SEEDS[0],
            130,
            (30, 140),
            (480, 200),
            ((0.0, "happy"), (0.25 * seconds, "sad")),
        ),
        ActorScript(
            DETECTABLE_SEEDS[2],
            120,
            (480, 230),
            (40, 150),
            ((0.0, "sad"), (0.75 * seconds, "happy")),
        ),
    ]

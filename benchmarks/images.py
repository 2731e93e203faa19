"""Images for benchmarks: real FER2013 faces from ../shared where present, else synthetic ones."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.report import REPO_ROOT

CLASSES = ("happy", "sad")


def shared_fer_dir() -> Path | None:
    """../shared/data/fer2013-happy-sad (or $EMOTION_TF_SHARED_DATA/...) if it exists."""
    base = Path(os.environ.get("EMOTION_TF_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    path = base / "fer2013-happy-sad"
    return path if (path / "train").is_dir() else None


def _source_images(count: int, seed: int, start: int = 0) -> Iterable[tuple[str, Any]]:
    """(class name, PIL image) pairs: real FER faces where available, else synthetic faces.

    FER files are taken in one fixed shuffled order per class from position `start` on, so
    that disjoint ranges (train, validation) share no file until the set runs out.
    """
    import numpy as np
    from PIL import Image

    fer = shared_fer_dir()
    rng = np.random.default_rng(seed)
    if fer is not None:
        order = np.random.default_rng(0)
        per_class = {}
        for name in CLASSES:
            files = sorted((fer / "train" / name).glob("*.jpg"))
            per_class[name] = [files[i] for i in order.permutation(len(files))]
        for index in range(start, start + count):
            name = CLASSES[index % len(CLASSES)]
            files = per_class[name]
            with Image.open(files[(index // len(CLASSES)) % len(files)]) as image:
                yield name, image.convert("L")
        return
    from emotion_tf.data.demo import draw_face

    for index in range(count):
        name = CLASSES[index % len(CLASSES)]
        yield name, draw_face(rng, name, 96, grayscale=False)


def image_source() -> str:
    return "fer2013 (../shared)" if shared_fer_dir() is not None else "synthetic faces"


def make_jpegs(
    root: Path,
    count: int,
    size: int,
    channels: int,
    seed: int = 0,
    quality: int = 90,
    start: int = 0,
) -> list[Path]:
    """Write `count` JPEGs of size x size pixels under root/<class>/ and return their paths.

    Real FER2013 faces from ../shared are resized (and tinted, for colour) to `size`; without
    them, synthetic schematic faces are used. Colour images get a random tint so that the JPEG
    carries real chroma data to decode.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed + 1)
    paths = []
    for index, (name, image) in enumerate(_source_images(count, seed, start)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        if channels == 1:
            image = image.convert("L")
        else:
            gray = np.asarray(image.convert("L"), dtype=np.float32)
            tint = rng.uniform(0.6, 1.2, size=3)
            rgb = np.clip(gray[..., None] * tint[None, None, :], 0, 255).astype(np.uint8)
            image = Image.fromarray(rgb, "RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        path = folder / f"{name}_{index:05d}.jpg"
        image.save(path, format="JPEG", quality=quality)
        paths.append(path)
    return paths


def make_split_dir(
    root: Path, train: int, validation: int, size: int, channels: int, seed: int = 0
) -> Path:
    """A data dir with train/ and validation/ class folders of generated JPEGs."""
    make_jpegs(root / "train", train, size, channels, seed)
    make_jpegs(root / "validation", validation, size, channels, seed + 100, start=train)
    return root


class WorkDir:
    """A temp dir (removed at the end) or a given folder (kept)."""

    def __init__(self, path: str | None, prefix: str):
        import tempfile

        self._tmp = None if path else tempfile.TemporaryDirectory(prefix=prefix)
        self.path = Path(path) if path else Path(self._tmp.name)
        self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

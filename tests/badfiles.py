"""Generated bad and awkward image files for the fuzz-style robustness tests.

`write_bad_files(folder)` writes one file per case and returns the cases: what the file is,
and what the tools must do with it (use it, or refuse it with a reason matching `reason`).
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# A name that is not valid UTF-8 (Latin-1 "é" and a stray 0xff), as bytes on Linux.
NON_UTF8_NAME = b"caf\xe9-\xff.png"


@dataclasses.dataclass
class Case:
    name: str  # file name (str; bytes names are in `raw_name`)
    what: str
    reason: str | None  # regex the refusal must match; None: the file must be used
    raw_name: bytes | None = None

    @property
    def path_name(self) -> str:
        """The name as Python's os functions return it (surrogate escapes for bad bytes)."""
        return os.fsdecode(self.raw_name) if self.raw_name else self.name


def face(seed: int, size: tuple[int, int] = (40, 30)) -> np.ndarray:
    """A random uint8 RGB image, height x width = size."""
    return np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)


def encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A ~100-byte PNG whose header declares width x height RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 3001 * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def exif_rotated_jpeg(array: np.ndarray, orientation: int) -> bytes:
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def rgb16_png(seed: int) -> bytes:
    import tensorflow as tf

    pixels = np.random.default_rng(seed).integers(0, 65535, (24, 20, 3)).astype(np.uint16)
    return tf.io.encode_png(tf.constant(pixels)).numpy()


def animated_gif(seed: int) -> bytes:
    frames = [Image.fromarray(face(seed + i, (20, 20))) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def write_bad_files(folder: Path, seed: int = 0) -> list[Case]:
    """Write every case into `folder` (created) and return the cases."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = encode(face(seed), "JPEG", quality=90)
    png = encode(face(seed + 1), "PNG")
    corrupt = bytearray(jpeg)
    corrupt[len(corrupt) // 3 : len(corrupt) // 3 + 300] = bytes(range(256)) + bytes(44)
    cases_and_bytes: list[tuple[Case, bytes]] = [
        (Case("valid.jpg", "a plain valid JPEG", None), jpeg),
        (Case("png-named.jpg", "PNG content named .jpg (valid content)", None), png),
        (Case("truncated.jpg", "JPEG cut in half", r"cannot be decoded"), jpeg[: len(jpeg) // 2]),
        (Case("truncated.png", "PNG cut in half", r"cannot be decoded"), png[: len(png) // 2]),
        (
            Case("corrupt.jpg", "JPEG with 300 scrambled bytes", r"cannot be decoded|not an image"),
            bytes(corrupt),
        ),
        (Case("zero.jpg", "zero-byte file", r"empty file"), b""),
        (Case("text.jpg", "a text file named .jpg", r"not an image"), b"just some notes\n" * 4),
        (
            Case("bomb.png", "PNG header claiming 100000x100000", r"too large: 100000x100000"),
            png_bomb(),
        ),
        (Case("animated.gif", "3-frame animated GIF (first frame used)", None), animated_gif(seed)),
        (
            Case("gray16.png", "16-bit grayscale PNG", None),
            encode(
                np.random.default_rng(seed).integers(0, 65535, (20, 24)).astype(np.uint16), "PNG"
            ),
        ),
        (Case("rgb16.png", "16-bit RGB PNG", None), rgb16_png(seed)),
        (Case("cmyk.jpg", "CMYK JPEG", None), _cmyk_jpeg(face(seed + 2))),
        (
            Case("exif6.jpg", "JPEG stored sideways, EXIF orientation 6", None),
            exif_rotated_jpeg(face(seed + 3, (30, 40)), 6),
        ),
        (
            Case("tiff-named.jpg", "TIFF content named .jpg", r"TIFF content.*cannot decode"),
            encode(face(seed + 4), "TIFF"),
        ),
        (Case("", "PNG with a non-UTF-8 file name", None, NON_UTF8_NAME), png),
    ]
    for case, data in cases_and_bytes:
        name = case.raw_name if case.raw_name else case.name.encode()
        with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
            handle.write(data)
    cases = [case for case, _ in cases_and_bytes]
    # Links: a symlink to a valid file works; a symlink loop and a dangling link are refused.
    os.symlink(folder / "valid.jpg", folder / "link-to-valid.jpg")
    cases.append(Case("link-to-valid.jpg", "symlink to a valid JPEG", None))
    os.symlink("loop-b.jpg", folder / "loop-a.jpg")
    os.symlink("loop-a.jpg", folder / "loop-b.jpg")
    cases.append(Case("loop-a.jpg", "symlink loop (a -> b -> a)", r"cannot read: Too many levels"))
    cases.append(Case("loop-b.jpg", "symlink loop (b -> a -> b)", r"cannot read: Too many levels"))
    os.symlink("missing.jpg", folder / "dangling.jpg")
    cases.append(Case("dangling.jpg", "symlink to a missing file", r"cannot read: No such file"))
    os.mkfifo(folder / "fifo.jpg")
    cases.append(
        Case("fifo.jpg", "named pipe called .jpg (would block a reader)", r"not a regular file")
    )
    # A folder symlink pointing back up: never followed, so the walk cannot loop.
    os.symlink("..", folder / "up-loop")
    return cases


def _cmyk_jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert("CMYK").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()

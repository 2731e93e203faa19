"""Animated GIF / WebP / APNG: only the first frame is ever decoded, and pixel limits hold
for what a decoder would allocate (every frame, frames larger than their canvas)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from emotion_tf.data.animation import first_frame, frames
from emotion_tf.data.files import list_split, read_image_bytes, scan_split
from emotion_tf.data.pipeline import decoded_examples
from emotion_tf.faces.photo import decode_photo
from emotion_tf.serve.protocol import RequestError, check_image_bytes

RED, BLUE = (255, 0, 0), (0, 0, 255)


def hostile_gif(count: int = 100, size: int = 2048) -> bytes:
    """`count` frames of size x size in a small file: one PIL frame's image block repeated.

    The first frame is red; the repeats use palette entry 1 (blue), so a decoder that returned
    anything but the first frame would show it.
    """
    frame = Image.new("P", (size, size), 0)
    frame.putpalette([*RED, *BLUE] + [0] * 762)
    out = io.BytesIO()
    frame.save(out, format="GIF")
    data = out.getvalue()
    (packed,) = struct.unpack_from("<B", data, 10)
    head_end = 13 + (3 << ((packed & 7) + 1))
    head, block = data[:head_end], data[head_end:-1]
    assert block[0] == 0x2C and data[-1] == 0x3B
    # Later frames: the same descriptor with a local colour table that makes index 0 blue.
    local = bytearray(block[:10])
    local[9] = 0x80 | (packed & 7)
    later = bytes(local) + bytes([*BLUE, *RED] + [0] * (3 * (2 << (packed & 7)) - 6)) + block[10:]
    return head + block + later * (count - 1) + b"\x3b"


def animated(fmt: str, colors: list[tuple[int, int, int]], size: int = 32) -> bytes:
    images = [Image.new("RGB", (size, size), color) for color in colors]
    out = io.BytesIO()
    images[0].save(out, format=fmt, save_all=True, append_images=images[1:])
    return out.getvalue()


def test_hostile_gif_is_cut_to_its_first_frame_without_decoding_the_rest() -> None:
    data = hostile_gif()
    assert len(data) < 1_000_000
    info = frames(data)
    assert info is not None and info.count == 100
    assert info.decoded_pixels == 100 * 2048 * 2048
    assert info.first_frame_pixels == 2048 * 2048
    with Image.open(io.BytesIO(data)) as probe:  # Pillow agrees: a real 100-frame animation
        assert probe.n_frames == 100
        probe.seek(1)
        assert probe.convert("RGB").getpixel((0, 0)) == BLUE
    cut = first_frame(data)
    assert len(cut) < len(data) / 50
    with Image.open(io.BytesIO(cut)) as probe:
        assert probe.n_frames == 1
    assert frames(cut).decoded_pixels == 2048 * 2048
    pixels = tf.io.decode_image(cut, expand_animations=True).numpy()
    assert pixels.shape == (1, 2048, 2048, 3) and tuple(pixels[0, 5, 5]) == RED


def test_still_images_pass_unchanged() -> None:
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP"):
        out = io.BytesIO()
        Image.new("RGB", (16, 16), RED).save(out, format=fmt)
        assert first_frame(out.getvalue()) == out.getvalue(), fmt
        assert (frames(out.getvalue()) or frames(b"GIF89a")).count <= 1


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_decode_to_their_first_frame(fmt: str) -> None:
    """WebP matters most: TF's decoder corrupts the heap on animated WebP (the process aborts)."""
    data = animated(fmt, [RED, BLUE, BLUE])
    image = decode_photo(data, 3)
    assert image.shape == (32, 32, 3)
    assert np.abs(image[0, 0].astype(int) - RED).max() <= 8


def test_serve_checks_cut_animations_and_count_the_frame_not_the_canvas() -> None:
    data = hostile_gif()
    served = check_image_bytes(data, "instances[0]", 4096 * 4096)
    assert frames(served).count == 1
    with pytest.raises(RequestError, match=r"instances\[0\]: image too large"):
        check_image_bytes(data, "instances[0]", 2048 * 2048 - 1)
    # A frame larger than its 1x1 canvas: the decoder would allocate the frame, not the canvas.
    small_canvas = data[:6] + struct.pack("<HH", 1, 1) + data[10:]
    with pytest.raises(RequestError, match="image too large"):
        check_image_bytes(small_canvas, "instances[0]", 4096)


def test_files_and_pipeline_use_the_first_frame(tmp_path: Path) -> None:
    for name in ("happy", "sad"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (32, 32), BLUE).save(tmp_path / name / "still.png")
    (tmp_path / "happy" / "moving.gif").write_bytes(animated("GIF", [RED, BLUE, BLUE]))
    (tmp_path / "sad" / "moving.jpg").write_bytes(animated("WEBP", [RED, BLUE]))  # webp content
    (tmp_path / "sad" / "hostile.gif").write_bytes(hostile_gif(40, 1024))

    data, info = read_image_bytes(str(tmp_path / "sad" / "hostile.gif"), 50_000_000)
    assert info.animated and frames(data).count == 1
    data, info = read_image_bytes(str(tmp_path / "sad" / "hostile.gif"), 1024 * 1024 - 1)
    assert data is None and "too large" in info.reason

    clean, bad = scan_split(list_split(tmp_path), 50_000_000)
    assert bad == []
    flags = dict(zip((Path(p).name for p in clean.paths), clean.animated_list()))
    assert flags == {
        "moving.gif": True,
        "still.png": False,
        "moving.jpg": True,
        "hostile.gif": True,
    }
    images = [image for image, _ in decoded_examples(clean, 32, 3).as_numpy_iterator()]
    firsts = {Path(p).name: image[0, 0].tolist() for p, image in zip(clean.paths, images)}
    for name in ("moving.gif", "moving.jpg", "hostile.gif"):
        assert np.abs(np.array(firsts[name]) - RED).max() <= 8, name
    assert np.abs(np.array(firsts["still.png"]) - BLUE).max() <= 8

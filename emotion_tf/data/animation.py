"""Animated images (GIF, WebP, APNG) cut down to their first frame before anything decodes them.

TensorFlow's GIF decoder LZW-decodes every frame before `expand_animations=False` keeps the first
(a 1.4 MB GIF of 100 frames of 4096x4096 costs 1.7 GB), and its WebP decoder corrupts the heap
on animated WebP (the process aborts). So every path that hands encoded bytes to TF passes them
through `first_frame` first:
- GIF: the bytes up to the end of the first image block, plus the trailer; the later frames are
  skipped block by block, never decompressed;
- animated WebP: the first frame decoded by Pillow (which decodes frames one at a time) and
  re-encoded as PNG;
- APNG: unchanged; TF's PNG decoder reads only the default image and skips the animation chunks.

`decoded_pixels` says how many pixels a decoder allocates for the bytes: what the pixel limits
(`data.max_pixels`, `serve --max-pixels`) are checked against, by header, before decoding.
Pure Python apart from Pillow; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import io
import struct

_GIF_MAGIC = (b"GIF87a", b"GIF89a")
_GIF_TRAILER = b"\x3b"


@dataclasses.dataclass(frozen=True)
class Frames:
    """What the headers say: frames, canvas size, and the pixels TF's decoder would allocate."""

    count: int
    width: int
    height: int
    decoded_pixels: int  # all frames, as TF would decode the bytes unchanged
    first_frame_pixels: int  # what decoding only the first frame allocates


class _TruncatedError(Exception):
    pass


def _gif_blocks(data: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """(canvas width, height, [(end offset, frame pixels) per image block]) of a GIF.

    Walks the block structure without decompressing anything; stops at the trailer, at the
    first byte that is not a block, or where the file is cut short (the decoder reports such
    files as broken).
    """
    if len(data) < 13:
        return 0, 0, []
    width, height, packed = struct.unpack_from("<HHB", data, 6)
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    frames: list[tuple[int, int]] = []
    try:
        while pos < len(data):
            kind = data[pos]
            if kind == 0x21:  # extension: label, then data sub-blocks
                pos = _skip_sub_blocks(data, pos + 2)
            elif kind == 0x2C:  # image descriptor, optional local colour table, LZW data
                if pos + 10 > len(data):
                    break
                frame_w, frame_h, packed = struct.unpack_from("<HHB", data, pos + 5)
                pos += 10 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
                pos = _skip_sub_blocks(data, pos + 1)  # +1: the LZW minimum code size
                frames.append((pos, frame_w * frame_h))
            else:  # the trailer, or garbage after the last block
                break
    except _TruncatedError:
        pass
    return width, height, frames


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise _TruncatedError
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (fourcc, payload) chunks of a RIFF WebP file, as far as they are complete."""
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        chunks.append((fourcc, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def _is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def _webp_frames(data: bytes) -> Frames | None:
    """Frames of an animated WebP (None for a still one)."""
    chunks = _webp_chunks(data)
    header = next((payload for fourcc, payload in chunks if fourcc == b"VP8X"), b"")
    if len(header) < 10 or not header[0] & 0x02:  # the animation flag
        return None
    width = int.from_bytes(header[4:7], "little") + 1
    height = int.from_bytes(header[7:10], "little") + 1
    count = sum(1 for fourcc, _ in chunks if fourcc == b"ANMF")
    canvas = width * height
    return Frames(max(count, 1), width, height, max(count, 1) * canvas, canvas)


def frames(data: bytes) -> Frames | None:
    """The frame structure of GIF or animated WebP `data`; None for other (still) formats."""
    if data[:6] in _GIF_MAGIC:
        width, height, blocks = _gif_blocks(data)
        canvas = width * height
        areas = [max(canvas, area) for _, area in blocks] or [canvas]
        return Frames(len(blocks), width, height, sum(areas), areas[0])
    if _is_webp(data):
        return _webp_frames(data)
    return None


def first_frame(data: bytes) -> bytes:
    """`data` with every frame after the first removed (unchanged if it has one frame)."""
    if data[:6] in _GIF_MAGIC:
        _, _, blocks = _gif_blocks(data)
        if not blocks:
            return data  # broken before the first frame ends: the decoder names the problem
        return data[: blocks[0][0]] + _GIF_TRAILER
    if _is_webp(data) and _webp_frames(data) is not None:
        return _webp_first_frame_png(data)
    return data


def _webp_first_frame_png(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        still = image.convert("RGBA" if "A" in image.mode else "RGB")
    out = io.BytesIO()
    still.save(out, format="PNG", compress_level=1)
    return out.getvalue()

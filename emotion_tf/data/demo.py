"""Deterministic generator of a small synthetic demo data set of schematic faces.

Every image is a cartoon face drawn with Pillow: ``happy`` faces have a mouth curving up (a
smile, sometimes open), relaxed or arched brows and sometimes squinted eyes; ``sad`` faces have a
mouth curving down (a frown), brows whose inner ends are raised and sometimes droopy eyes or a
tear. Position, scale, rotation, face shape, skin tone, background, line thickness, mouth shape,
noise, blur, hair and ears vary per image, and so do the image size, colour mode and file format
(JPEG, PNG, BMP and GIF; RGB, grayscale, RGBA and palette images).

The output is a function of the arguments only: the same seed gives byte-identical files.

Usage::

    emotion-tf data make-demo data --per-class 360 --seed 0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from emotion_tf.errors import ConfigError
from emotion_tf.io_utils import staged_output

__all__ = ["CLASS_NAMES", "SPLITS", "draw_face", "generate_demo_dataset"]

CLASS_NAMES: tuple[str, ...] = ("happy", "sad")
SPLITS: tuple[str, ...] = ("train", "validation")

# The shorter side of the canvas a face is drawn on before it is downsampled (anti-aliasing).
_CANVAS_SIDE = 320
# File format of image ``i`` of a class is ``_FORMAT_CYCLE[i % 10]`` (70% JPEG, 10% each other).
_FORMAT_CYCLE: tuple[str, ...] = (
    "jpg",
    "png",
    "bmp",
    "gif",
    "jpg",
    "jpg",
    "jpg",
    "jpg",
    "jpg",
    "jpg",
)
# Image ``i`` of a class is grayscale when ``i % 7`` is one of these (2/7, about 29%).
_GRAY_RESIDUES: tuple[int, ...] = (2, 5)
# Pose and scale spread of the committed set: enough variety to need a CNN, small enough that
# AlexNet trained from scratch on a few hundred images reaches >= 95% in a few CPU minutes.
DATASET_JITTER = 0.7
# Range of the longer image side per format; BMPs are uncompressed, so they are kept small.
_SIDE_RANGE: dict[str, tuple[int, int]] = {
    "jpg": (48, 128),
    "png": (48, 96),
    "bmp": (40, 64),
    "gif": (40, 112),
}
_SKIN_TONES = np.array(
    [
        (58, 38, 28),
        (92, 58, 40),
        (141, 85, 36),
        (176, 118, 72),
        (198, 134, 66),
        (224, 172, 105),
        (241, 194, 145),
        (255, 219, 172),
        (255, 236, 220),
    ],
    dtype=np.float64,
)
_CARTOON_SKINS = np.array(
    [(255, 214, 60), (250, 235, 120), (170, 220, 150), (160, 200, 240), (250, 180, 200)],
    dtype=np.float64,
)
_HAIR_COLOURS = np.array(
    [(20, 16, 14), (60, 40, 25), (110, 70, 40), (200, 160, 90), (150, 60, 30), (170, 170, 170)],
    dtype=np.float64,
)

Point = tuple[float, float]
Colour = tuple[int, ...]


class _FaceFrame:
    """Maps face-local coordinates (unit = half the face height, y down) to canvas pixels."""

    def __init__(self, cx: float, cy: float, unit: float, angle_deg: float) -> None:
        self.cx, self.cy, self.unit = cx, cy, unit
        rad = math.radians(angle_deg)
        self.cos, self.sin = math.cos(rad), math.sin(rad)

    def points(self, xs: np.ndarray, ys: np.ndarray) -> list[Point]:
        """Transforms arrays of local coordinates into a list of canvas points."""
        px = self.cx + self.unit * (xs * self.cos - ys * self.sin)
        py = self.cy + self.unit * (xs * self.sin + ys * self.cos)
        return [(float(x), float(y)) for x, y in zip(px, py, strict=True)]

    def px(self, length: float) -> float:
        """Converts a local length to pixels."""
        return length * self.unit


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 2 * math.pi
) -> tuple[np.ndarray, np.ndarray]:
    """Local coordinates of an ellipse arc (angles in radians, clockwise on screen)."""
    n = max(8, int(48 * abs(end - start) / (2 * math.pi)) + 1)
    t = np.linspace(start, end, n)
    return cx + rx * np.cos(t), cy + ry * np.sin(t)


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> Colour:
    """Linear blend of two colours."""
    return tuple(round((1 - t) * x + t * y) for x, y in zip(a, b, strict=True))


def _luma(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _random_colour(rng: np.random.Generator) -> Colour:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def _skin_colour(rng: np.random.Generator) -> Colour:
    if rng.random() < 0.12:
        base = _CARTOON_SKINS[rng.integers(len(_CARTOON_SKINS))]
    else:
        pos = rng.random() * (len(_SKIN_TONES) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(_SKIN_TONES) - 1)
        base = _SKIN_TONES[lo] * (1 - (pos - lo)) + _SKIN_TONES[hi] * (pos - lo)
    base = np.clip(base + rng.normal(0.0, 8.0, size=3), 0, 255)
    return tuple(int(v) for v in base)


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A solid or linear-gradient background, sometimes with faint clutter shapes."""
    c0 = np.array(_random_colour(rng), dtype=np.float64)
    if rng.random() < 0.3:  # desaturated
        c0 = np.full(3, _luma(c0))
    if rng.random() < 0.5:
        c1 = np.clip(c0 + rng.normal(0.0, 60.0, size=3), 0, 255)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        proj = xx * math.cos(angle) + yy * math.sin(angle)
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
        arr = c0 * (1 - t[..., None]) + c1 * t[..., None]
        image = Image.fromarray(np.round(arr).astype(np.uint8), "RGB")
    else:
        image = Image.new("RGB", (width, height), tuple(int(v) for v in c0))
    if rng.random() < 0.25:
        draw = ImageDraw.Draw(image)
        bg = tuple(int(v) for v in c0)
        for _ in range(int(rng.integers(1, 5))):
            colour = _mix(bg, _random_colour(rng), 0.35)
            x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
            w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.1, 0.5) * height
            box = (x0, y0, x0 + w, y0 + h)
            kind = rng.integers(3)
            if kind == 0:
                draw.ellipse(box, fill=colour)
            elif kind == 1:
                draw.rectangle(box, fill=colour)
            else:
                draw.line(box, fill=colour, width=int(rng.integers(3, 12)))
    return image


def _mouth_curve(
    mx: float, corner_y: float, half_width: float, bend: float, power: float, n: int = 25
) -> tuple[np.ndarray, np.ndarray]:
    """A mouth line through both corners: ``bend > 0`` is a smile, ``bend < 0`` a frown."""
    u = np.linspace(-1.0, 1.0, n)
    return mx + half_width * u, corner_y + bend * (1.0 - np.abs(u) ** power)


def _render(
    rng: np.random.Generator,
    expression: str,
    width: int,
    height: int,
    grayscale: bool,
    jitter: float = 1.0,
) -> Image.Image:
    """Draws one face into a ``width`` x ``height`` image (mode "L" or "RGB").

    ``jitter`` in [0, 1] scales the random face position, size, aspect and rotation; the data
    set uses 1, tests use 0 to compare the classes without the geometric spread.
    """
    if expression not in CLASS_NAMES:
        raise ValueError(
            f"`expression` must be one of {CLASS_NAMES}. Received: expression={expression!r}"
        )
    if width < 8 or height < 8:
        raise ValueError(
            f"Image sides must be at least 8 pixels. Received: width={width}, height={height}"
        )
    happy = expression == "happy"
    scale = _CANVAS_SIDE / min(width, height)
    cw, ch = round(width * scale), round(height * scale)
    canvas = _background(rng, cw, ch)
    draw = ImageDraw.Draw(canvas)

    # Geometry: the face height fills 55-95% of the shorter side; aspect = width / height.
    # ``jitter`` scales the spread around a centred, upright, mid-sized face (1: full range).
    fill = 0.75 + (rng.uniform(0.55, 0.95) - 0.75) * jitter
    unit = fill * _CANVAS_SIDE / 2
    aspect = 0.86 + (rng.uniform(0.72, 1.0) - 0.86) * jitter
    cx = cw / 2 + rng.uniform(-1, 1) * jitter * 0.85 * max(0.0, cw / 2 - unit * aspect)
    cy = ch / 2 + rng.uniform(-1, 1) * jitter * 0.85 * max(0.0, ch / 2 - unit)
    f = _FaceFrame(cx, cy, unit, rng.uniform(-15, 15) * jitter)
    lw = max(2, round(f.px(rng.uniform(0.035, 0.085))))

    skin = _skin_colour(rng)
    if _luma(skin) >= 95:
        ink = _mix((0, 0, 0), _random_colour(rng), rng.uniform(0.0, 0.25))
        outline = ink if rng.random() < 0.5 else _mix(skin, (0, 0, 0), 0.6)
    else:
        ink = _mix((255, 255, 255), _random_colour(rng), rng.uniform(0.0, 0.25))
        outline = ink if rng.random() < 0.5 else _mix(skin, (255, 255, 255), 0.6)
    hair = tuple(int(v) for v in _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))])
    hair_style = rng.choice(["none", "none", "cap", "fringe", "long"])

    # Hair behind the head, ears, then the face itself.
    if hair_style == "long":
        xs, ys = _ellipse(0.0, 0.12, aspect * 1.22, 1.12)
        draw.polygon(f.points(xs, ys), fill=hair)
    if rng.random() < 0.35:
        ear_rx, ear_ry = rng.uniform(0.1, 0.17), rng.uniform(0.16, 0.26)
        for side in (-1, 1):
            xs, ys = _ellipse(side * aspect * 0.97, -0.02, ear_rx, ear_ry)
            draw.polygon(f.points(xs, ys), fill=skin)
            draw.line(f.points(xs, ys), fill=outline, width=lw, joint="curve")
    xs, ys = _ellipse(0.0, 0.0, aspect, 1.0)
    draw.polygon(f.points(xs, ys), fill=skin)
    draw.line(f.points(xs, ys), fill=outline, width=lw, joint="curve")
    if hair_style in ("cap", "fringe", "long"):
        lower = rng.uniform(0.62, 0.75)
        theta = np.linspace(math.pi, 2 * math.pi, 40)
        top_x, top_y = aspect * 1.03 * np.cos(theta), 1.03 * np.sin(theta)
        keep = top_y <= -lower
        bottom_x = np.linspace(top_x[keep][-1], top_x[keep][0], 15)
        wave = (
            0.05 * np.abs(np.sin(np.linspace(0, 4 * math.pi, 15))) if hair_style == "fringe" else 0
        )
        bottom_y = np.full(15, -lower) + wave
        draw.polygon(
            f.points(
                np.concatenate([top_x[keep], bottom_x]), np.concatenate([top_y[keep], bottom_y])
            ),
            fill=hair,
        )

    # Cheeks (both classes, so they carry no label information).
    eye_y = rng.uniform(-0.3, -0.1)
    eye_dx = rng.uniform(0.27, 0.42) * aspect
    if rng.random() < 0.15:
        blush = _mix(skin, (255, 90, 120), 0.45)
        for side in (-1, 1):
            xs, ys = _ellipse(side * (eye_dx + 0.08), 0.2, 0.13, 0.08)
            draw.polygon(f.points(xs, ys), fill=blush)

    # Eyes.
    eye_r = rng.uniform(0.06, 0.12)
    style_roll = rng.random()
    gaze = rng.uniform(-0.3, 0.3, size=2) * eye_r
    for side in (-1, 1):
        ex = side * eye_dx
        if style_roll < 0.4:  # dots
            xs, ys = _ellipse(ex, eye_y, eye_r * 0.8, eye_r)
            draw.polygon(f.points(xs, ys), fill=ink)
        elif style_roll < 0.75:  # open eyes with pupils
            xs, ys = _ellipse(ex, eye_y, eye_r * 1.3, eye_r * 1.1)
            draw.polygon(f.points(xs, ys), fill=(250, 250, 250))
            draw.line(f.points(xs, ys), fill=ink, width=max(1, lw // 2), joint="curve")
            xs, ys = _ellipse(ex + gaze[0], eye_y + gaze[1], eye_r * 0.55, eye_r * 0.55)
            draw.polygon(f.points(xs, ys), fill=ink)
        elif happy:  # squinted, upside-down U
            xs, ys = _ellipse(ex, eye_y + eye_r * 0.5, eye_r * 1.3, eye_r, math.pi, 2 * math.pi)
            draw.line(f.points(xs, ys), fill=ink, width=lw, joint="curve")
        else:  # droopy: lower half-eye whose lid slopes down towards the outside
            xs, ys = _ellipse(ex, eye_y, eye_r * 1.3, eye_r, 0.0, math.pi)
            ys = ys + rng.uniform(0.25, 0.5) * (xs - ex) * side
            draw.polygon(f.points(xs, ys), fill=ink)

    # Brows: relaxed / arched for happy, inner ends raised for sad.
    if rng.random() < 0.8:
        brow_y = eye_y - eye_r - rng.uniform(0.08, 0.16)
        half = rng.uniform(0.08, 0.15)
        if happy:
            brow_y -= rng.uniform(0.0, 0.04)
            tilt = math.radians(rng.uniform(-3, 5))  # positive: inner end lower
            arch = rng.uniform(0.0, 0.06)
        else:
            tilt = -math.radians(rng.uniform(14, 32))  # inner end higher
            arch = rng.uniform(-0.01, 0.03)
        brow_w = max(2, round(lw * rng.uniform(0.9, 1.5)))
        for side in (-1, 1):
            u = np.linspace(-1.0, 1.0, 9)  # -1: inner end, +1: outer end
            xs = side * (eye_dx + half * u)
            ys = brow_y - half * u * math.tan(tilt) - arch * (1 - u**2)
            draw.line(f.points(xs, ys), fill=ink, width=brow_w, joint="curve")

    # Nose.
    nose_roll = rng.random()
    if nose_roll < 0.25:
        xs, ys = _ellipse(0.0, 0.12, 0.05, 0.05)
        draw.polygon(f.points(xs, ys), fill=_mix(skin, ink, 0.6))
    elif nose_roll < 0.5:
        xs = np.array([0.0, -0.06, 0.04])
        ys = np.array([-0.05, 0.18, 0.2])
        draw.line(f.points(xs, ys), fill=ink, width=max(1, lw // 2), joint="curve")

    # Tear (sad only, occasionally).
    if not happy and rng.random() < 0.2:
        side = -1 if rng.random() < 0.5 else 1
        tx, ty = side * (eye_dx + rng.uniform(-0.05, 0.08)), eye_y + eye_r + 0.17
        xs, ys = _ellipse(tx, ty, 0.05, 0.05, -0.2, math.pi + 0.2)
        xs, ys = np.append(xs, tx), np.append(ys, ty - 0.12)
        draw.polygon(f.points(xs, ys), fill=(90, 170, 255))

    # Mouth: the sign of the bend is what tells the classes apart.
    my = rng.uniform(0.38, 0.58)
    mx = rng.uniform(-0.06, 0.06)
    half_width = rng.uniform(0.25, 0.45) * max(aspect, 0.85)
    bend = half_width * rng.uniform(0.4, 0.9) * (1 if happy else -1)
    power = rng.uniform(1.6, 3.0)
    corner_y = my - bend / 2
    if rng.random() < (0.3 if happy else 0.1):  # open mouth
        outer_x, outer_y = _mouth_curve(mx, corner_y, half_width, bend, power)
        inner_x, inner_y = _mouth_curve(
            mx, corner_y, half_width, bend * rng.uniform(0.0, 0.3), power
        )
        # The open side (inner edge) sits above the smile or below the frown.
        poly_x = np.concatenate([outer_x, inner_x[::-1]])
        poly_y = np.concatenate([outer_y, inner_y[::-1]])
        draw.polygon(f.points(poly_x, poly_y), fill=_mix((120, 20, 30), ink, 0.3))
        if happy and rng.random() < 0.6:
            teeth_y = inner_y + 0.3 * (outer_y - inner_y)
            tx = np.concatenate([inner_x, inner_x[::-1]])
            ty = np.concatenate([inner_y, teeth_y[::-1]])
            draw.polygon(f.points(tx, ty), fill=(245, 245, 240))
        draw.line(f.points(poly_x, poly_y), fill=ink, width=max(1, lw // 2), joint="curve")
    else:
        mouth_w = max(2, round(lw * rng.uniform(1.0, 1.6)))
        xs, ys = _mouth_curve(mx, corner_y, half_width, bend, power)
        draw.line(f.points(xs, ys), fill=ink, width=mouth_w, joint="curve")
        if rng.random() < 0.2:  # corner ticks
            for end in (0, -1):
                dx = 0.06 * (1 if end == -1 else -1)
                tick_x = np.array([xs[end] - dx * 0.3, xs[end] + dx * 0.3])
                tick_y = np.array([ys[end] - 0.05, ys[end] + 0.05])
                draw.line(f.points(tick_x, tick_y), fill=ink, width=max(1, lw // 2))

    # Downsample, then photometric variation.
    image = canvas.resize((width, height), Image.Resampling.LANCZOS)
    if rng.random() < 0.15:
        image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.4, 1.1)))
    if grayscale:
        image = image.convert("L")
    arr = np.asarray(image, dtype=np.float64)
    arr = (arr - 128.0) * rng.uniform(0.8, 1.1) + 128.0 + rng.uniform(-15, 15)
    if rng.random() < 0.6:
        arr = arr + rng.normal(0.0, rng.uniform(2.0, 9.0), size=arr.shape)
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), image.mode)


def draw_face(
    rng: np.random.Generator, expression: str, size: int, grayscale: bool, jitter: float = 1.0
) -> Image.Image:
    """Draws one random schematic face.

    Args:
        rng: Source of randomness; the image is a function of its state.
        expression: "happy" or "sad".
        size: Side length of the square output image in pixels (at least 8).
        grayscale: Whether to return a mode "L" image instead of mode "RGB".
        jitter: Spread of position, size, aspect and rotation in [0, 1] (0: a centred,
            upright, mid-sized face; the same seed then draws the same face in both moods).

    Returns:
        A ``size`` x ``size`` PIL image.
    """
    return _render(rng, expression, size, size, grayscale, jitter=jitter)


def _image_size(rng: np.random.Generator, fmt: str) -> tuple[int, int]:
    """Random (width, height); about a quarter of the images are not square."""
    lo, hi = _SIDE_RANGE[fmt]
    side = int(rng.integers(lo, hi + 1))
    width = height = side
    if rng.random() < 0.25:
        short = max(lo, round(side * rng.uniform(0.7, 0.9)))
        if rng.random() < 0.5:
            width = short
        else:
            height = short
    return width, height


def _save(image: Image.Image, path: Path, fmt: str, rgba: bool, rng: np.random.Generator) -> None:
    """Saves ``image`` in format ``fmt``; colour PNGs may get an alpha channel."""
    if fmt == "jpg":
        image.save(path, format="JPEG", quality=int(rng.integers(80, 91)))
    elif fmt == "png":
        if rgba and image.mode == "RGB":
            # Opaque centre, partly transparent corners; the RGB values keep the whole picture.
            w, h = image.size
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
            r = np.hypot((xx + 0.5) / w - 0.5, (yy + 0.5) / h - 0.5) / math.sqrt(0.5)
            alpha = np.clip(255 - np.maximum(r - 0.6, 0) * 320, 128, 255).astype(np.uint8)
            image = image.convert("RGBA")
            image.putalpha(Image.fromarray(alpha, "L"))
        image.save(path, format="PNG")
    elif fmt == "bmp":
        image.save(path, format="BMP")
    elif fmt == "gif":
        if image.mode == "RGB":
            colours = int(rng.choice([32, 64, 128]))
            image = image.quantize(colors=colours, dither=Image.Dither.NONE)
        image.save(path, format="GIF")
    else:  # pragma: no cover - guarded by _FORMAT_CYCLE
        raise ValueError(f"Unknown format. Received: fmt={fmt!r}")


def _readme(
    counts: dict[str, dict[str, int]],
    formats: dict[str, int],
    per_class: int,
    validation_fraction: float,
    seed: int,
    modes: dict[str, int],
    n_gray: int,
) -> str:
    command = f"emotion-tf data make-demo data --per-class {per_class} --seed {seed}"
    if not math.isclose(validation_fraction, 1 / 3):
        command += f" --validation-fraction {validation_fraction}"
    total = sum(formats.values())
    lines = [
        "# Demo data: synthetic schematic faces",
        "",
        "Every image in this directory is synthetic: a cartoon face drawn by",
        "`emotion_tf/data/demo.py` (numpy + Pillow). No real people, no downloaded data.",
        "`happy` faces smile (mouth curving up); `sad` faces frown (mouth curving down, inner",
        "brow ends raised). Position, scale, rotation, colours, noise, size and format vary.",
        "",
        "Generated from the repository root with:",
        "",
        "```",
        command,
        "```",
        "",
        "Re-running it (add `--overwrite` to replace this directory) gives byte-identical files.",
        "",
        "| split | happy | sad | total |",
        "|---|---:|---:|---:|",
    ]
    for split in SPLITS:
        row = counts[split]
        lines.append(f"| {split} | {row['happy']} | {row['sad']} | {sum(row.values())} |")
    lines += ["", "| format | files | share |", "|---|---:|---:|"]
    for fmt in ("jpg", "png", "bmp", "gif"):
        lines.append(f"| .{fmt} | {formats[fmt]} | {100 * formats[fmt] / total:.0f}% |")
    lines += ["", "| Pillow mode on reading | files |", "|---|---:|"]
    for mode in sorted(modes):
        lines.append(f"| {mode} | {modes[mode]} |")
    lines += [
        "",
        f"{n_gray} images ({100 * n_gray / total:.0f}%) are grayscale; they were saved from mode"
        ' "L" (grayscale GIFs read back as mode "P" with a gray palette).',
        "",
        "Sides range from 40 to 160 pixels (BMPs at most 64); about a quarter are not square.",
        "",
    ]
    return "\n".join(lines)


def _write_dataset(
    root: Path, per_class: int, validation_fraction: float, seed: int
) -> dict[str, dict[str, int]]:
    counts = {split: dict.fromkeys(CLASS_NAMES, 0) for split in SPLITS}
    formats = dict.fromkeys(("jpg", "png", "bmp", "gif"), 0)
    modes: dict[str, int] = {}
    n_gray = 0
    n_val = min(max(round(per_class * validation_fraction), 1), per_class - 1)
    for class_index, expression in enumerate(CLASS_NAMES):
        order = np.random.default_rng([seed, class_index]).permutation(per_class)
        validation = {int(i) for i in order[:n_val]}
        for split in SPLITS:
            (root / split / expression).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, class_index, i + 1])
            fmt = _FORMAT_CYCLE[i % len(_FORMAT_CYCLE)]
            grayscale = i % 7 in _GRAY_RESIDUES
            rgba = fmt == "png" and not grayscale and (i // 10) % 2 == 0
            width, height = _image_size(rng, fmt)
            image = _render(rng, expression, width, height, grayscale, jitter=DATASET_JITTER)
            split = "validation" if i in validation else "train"
            path = root / split / expression / f"{expression}_{i + 1:04d}.{fmt}"
            _save(image, path, fmt, rgba, rng)
            counts[split][expression] += 1
            formats[fmt] += 1
            n_gray += grayscale
            with Image.open(path) as saved:
                modes[saved.mode] = modes.get(saved.mode, 0) + 1
    text = _readme(counts, formats, per_class, validation_fraction, seed, modes, n_gray)
    (root / "README.md").write_text(text, encoding="utf-8")
    return counts


def generate_demo_dataset(
    out_dir: Path,
    per_class: int = 360,
    validation_fraction: float = 1 / 3,
    seed: int = 0,
    *,
    overwrite: bool = False,
) -> dict[str, dict[str, int]]:
    """Writes the demo data set to ``out_dir/{train,validation}/{happy,sad}/``.

    The set is generated in a temporary directory beside ``out_dir`` and then renamed into place,
    so an interrupted run never leaves a half-written ``out_dir``. A ``README.md`` describing the
    set is written too.

    Args:
        out_dir: Destination directory; must be missing or empty unless ``overwrite`` is set.
        per_class: Number of images per class (at least 2).
        validation_fraction: Share of each class that goes to the validation split.
        seed: Non-negative seed; the same seed gives byte-identical files.
        overwrite: Replace an existing non-empty ``out_dir``.

    Returns:
        The number of images per split and class, ``{split: {class: n}}``.
    """
    out_dir = Path(out_dir)
    if per_class < 2:
        raise ConfigError(f"--per-class must be at least 2. Received: {per_class}")
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(
            f"validation fraction must be strictly between 0 and 1. Received: {validation_fraction}"
        )
    if seed < 0:
        raise ConfigError(f"--seed must be non-negative. Received: {seed}")
    with staged_output(out_dir, overwrite) as tmp:
        counts = _write_dataset(tmp, per_class, validation_fraction, seed)
    return counts

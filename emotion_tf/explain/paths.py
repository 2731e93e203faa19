"""Grad-CAM panels for every face of every input image, as `emotion-tf explain` writes them.

Whole photos go through the same face detection and crops as `predict`.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.explain.gradcam import GradCam, explanation_panel, paste_heat
from emotion_tf.explain.model import KerasModel
from emotion_tf.faces.annotate import Annotation, annotate_image
from emotion_tf.faces.crop import face_region, framing_of
from emotion_tf.faces.locate import resolve_detector
from emotion_tf.io_utils import atomic_write_bytes, atomic_write_json
from emotion_tf.pipeline.decode import decode_source
from emotion_tf.pipeline.options import DEFAULT_OPTIONS, PhotoOptions
from emotion_tf.pipeline.run import crop_regions
from emotion_tf.pipeline.sources import sources_from_paths

EXPLANATIONS_FILE = "explanations.json"


@dataclasses.dataclass
class Explanation:
    """One written heat map: which input, face and class, and the file it went to."""

    path: str
    file: str | None = None
    face: int | None = None
    box: list[int] | None = None
    label: str | None = None
    confidence: float | None = None
    explained_class: str | None = None
    error: str | None = None
    no_face: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def explain_paths(
    keras_model: KerasModel,
    inputs: list[str],
    out_dir: Path,
    classes: list[str] | None = None,
    options: PhotoOptions = DEFAULT_OPTIONS,
) -> list[Explanation]:
    """Write Grad-CAM panels for every face of every input into `out_dir`.

    For each face: `<stem>_face<i>_<class>.png` (crop and overlay side by side) for the
    predicted class and for each of `classes`. For photos where faces were detected, also
    `<stem>_gradcam[_<class>].png`: the whole photo with each face's heat map in place.
    `explanations.json` lists everything written. Bad inputs give an error entry and the rest
    goes on.
    """
    detector = resolve_detector(options.detector) if options.faces != "none" else None
    names = keras_model.class_names
    for name in classes or []:
        if name not in names:
            raise ConfigError(f"--class must be one of {names}. Received: {name!r}")
    cam = GradCam(keras_model.model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[Explanation] = []
    used_stems: set[str] = set()

    def save(picture: Any, name: str) -> str:
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        atomic_write_bytes(out_dir / name, buffer.getvalue())
        return str(out_dir / name)

    for source in sources_from_paths(inputs, options.max_pixels):
        path = source.name
        decoded = None
        if source.error is None:
            try:
                decoded = decode_source(source, cam.channels)
            except ValueError as err:
                source.error = str(err)
        if decoded is None:
            results.append(Explanation(path, error=source.error))
            continue
        photo = decoded.colour
        regions, crops = crop_regions(decoded, cam.size, options, detector)
        if not regions:
            results.append(Explanation(path, no_face=True))
            continue
        stem = _unique_stem(Path(path).stem, used_stems)
        predicted_heat, probabilities, predicted = cam(crops)
        wanted: list[tuple[str, np.ndarray, np.ndarray]] = [("", predicted_heat, predicted)]
        for name in classes or []:
            heat, _, targets = cam(crops, names.index(name))
            wanted.append((name, heat, targets))
        written: set[str] = set()
        for suffix, heat, targets in wanted:
            whole = photo.copy()
            marks = []
            for i, region in enumerate(regions):
                explained = names[int(targets[i])]
                label = names[int(predicted[i])]
                confidence = float(probabilities[i, predicted[i]])
                if not region.is_whole_image:
                    # An aligned crop's heat map is drawn unturned on its square.
                    square = face_region(
                        region.box, options.margin, framing_of(detector), options.align
                    )
                    whole = paste_heat(whole, square.as_box(), heat[i])
                    caption = f"{label} {confidence:.2f} (CAM: {explained})"
                    marks.append(Annotation(region.box.as_list(), caption, int(predicted[i])))
                name = f"{stem}_face{i}_{explained}.png"
                if name in written:  # --class named the predicted class
                    continue
                written.add(name)
                caption = f"predicted {label} {confidence:.2f} - Grad-CAM for {explained}"
                file = save(explanation_panel(crops[i], heat[i], caption), name)
                results.append(
                    Explanation(path, file, i, region.box.as_list(), label, confidence, explained)
                )
            if marks:
                name = f"{stem}_gradcam{'_' + suffix if suffix else ''}.png"
                save(annotate_image(whole, marks), name)
    atomic_write_json(out_dir / EXPLANATIONS_FILE, [r.to_dict() for r in results])
    return results


def _unique_stem(stem: str, used: set[str]) -> str:
    name, count = stem, 1
    while name in used:
        count += 1
        name = f"{stem}-{count}"
    used.add(name)
    return name

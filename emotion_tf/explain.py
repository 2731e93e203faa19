"""Grad-CAM explanations (Selvaraju et al., 2017) from AlexNet's last convolution, conv5.

The heat map for class c weights each conv5 channel by the spatial mean of d(logit_c)/d(channel)
and keeps the positive part of the weighted sum, scaled to [0, 1] per image. Gradients need the
Keras model: a run directory (its best.keras), a .keras file, or an export inside a run
directory (its best.keras, checked against the export's config hash). A SavedModel export
alone holds only the serving graph, whose inner layers cannot be reached.

Whole photos go through the same face detection and crops as `predict`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.errors import ModelDirError

FEATURE_LAYER = "pool5"  # Grad-CAM uses the input of pool5: conv5 after its activation
LOGITS_LAYER = "fc8"


@dataclasses.dataclass
class KerasModel:
    model: Any
    class_names: list[str]
    path: Path


def _class_names_near(folder: Path, num_classes: int) -> list[str]:
    for name in ("metrics.json",):
        path = folder / name
        if path.is_file():
            names = json.loads(path.read_text()).get("class_names")
            if names and len(names) == num_classes:
                return list(names)
    return [f"class_{i}" for i in range(num_classes)]


def _run_dir_of_export(path: Path) -> Path | None:
    """The run directory an export lives in (`<run>/export/<version>` or `<run>/export`)."""
    for candidate in (path, *path.parents[:3]):
        if (candidate / "best.keras").is_file():
            return candidate
    return None


def load_keras_model(path: str | Path) -> KerasModel:
    """The Keras model behind `path`: a run dir, a .keras file, or an export in a run dir."""
    import keras

    path = Path(path)
    if not path.exists():
        raise ModelDirError(f"model path not found: {path}")
    if path.is_file():
        if path.suffix != ".keras":
            raise ModelDirError(f"expected a .keras file or a run directory. Received: {path}")
        checkpoint = path
    elif (path / "best.keras").is_file():
        checkpoint = path / "best.keras"
    else:
        run_dir = _run_dir_of_export(path)
        if run_dir is None:
            raise ModelDirError(
                f"Grad-CAM needs gradients through the Keras model, and {path} has no best.keras "
                "(an export alone holds only the serving graph): pass the run directory or its "
                ".keras file"
            )
        _check_export_matches(path, run_dir)
        checkpoint = run_dir / "best.keras"
    try:
        model = keras.models.load_model(checkpoint, safe_mode=True)
    except (OSError, ValueError) as err:
        raise ModelDirError(f"cannot load Keras model {checkpoint}: {err}") from err
    for layer in (FEATURE_LAYER, LOGITS_LAYER):
        try:
            model.get_layer(layer)
        except ValueError as err:
            raise ModelDirError(
                f"{checkpoint} is not an emotion-tf AlexNet (no layer '{layer}')"
            ) from err
    names = _class_names_near(checkpoint.parent, int(model.output_shape[-1]))
    return KerasModel(model, names, checkpoint)


def _check_export_matches(export_path: Path, run_dir: Path) -> None:
    """Refuse when the export's config hash differs from the run's (a different model)."""
    from emotion_tf.config import load_config
    from emotion_tf.export import read_metadata, resolve_export

    try:
        exported = read_metadata(resolve_export(export_path)).get("config_hash")
    except ModelDirError:
        return
    config_path = run_dir / "config.yaml"
    if exported and config_path.is_file() and load_config(config_path).digest() != exported:
        raise ModelDirError(
            f"{export_path} was not exported from {run_dir / 'best.keras'} (config hash "
            "differs): pass the run directory the export came from"
        )


class GradCam:
    """Grad-CAM heat maps for a Keras AlexNet."""

    def __init__(self, model: Any):
        import keras

        self.model = model
        features = model.get_layer(FEATURE_LAYER).input
        logits = model.get_layer(LOGITS_LAYER).output
        self._inner = keras.Model(model.inputs, [features, logits, model.output])
        _, self.size, _, self.channels = model.input_shape

    def __call__(
        self, images: np.ndarray, class_index: int | list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Heat maps [N, size, size] in [0, 1], probabilities [N, classes], explained classes [N].

        `images` are uint8 or float 0-255 [N, size, size, channels]; `class_index` None explains
        each image's predicted class.
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(np.asarray(images), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op after the input, so d(logit)/d(features) exists
            features, logits, probabilities = self._inner(x, training=False)
            if class_index is None:
                targets = tf.argmax(probabilities, axis=1, output_type=tf.int32)
            else:
                indices = np.broadcast_to(np.asarray(class_index, np.int32), (x.shape[0],))
                targets = tf.constant(indices, tf.int32)
            chosen = tf.gather(tf.cast(logits, tf.float32), targets, axis=1, batch_dims=1)
            score = tf.reduce_sum(chosen)
        grads = tf.cast(tape.gradient(score, features), tf.float32)
        features = tf.cast(features, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
        cam = tf.image.resize(cam[..., None], [self.size, self.size], method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)  # after resizing: peak is 1
        cam = tf.clip_by_value(tf.math.divide_no_nan(cam, peak), 0.0, 1.0)
        return cam.numpy(), np.asarray(probabilities, np.float64), targets.numpy()


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB: `image` (gray or RGB) blended with the 'jet' colouring of `heat` (0-1)."""
    from matplotlib import colormaps

    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    rgb = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
    if heat.shape != rgb.shape[:2]:
        import tensorflow as tf

        heat = tf.image.resize(heat[..., None], rgb.shape[:2], method="bilinear")[..., 0].numpy()
    colours = colormaps["jet"](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb.astype(np.float64) + alpha * colours
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def explanation_panel(crop: np.ndarray, heat: np.ndarray, caption: str, side: int = 256) -> Any:
    """A PIL image: the face crop and its Grad-CAM overlay side by side, captioned."""
    from PIL import Image, ImageDraw

    from emotion_tf.faces.annotate import _font

    overlay = Image.fromarray(heat_overlay(crop, heat)).resize((side, side), Image.BILINEAR)
    plain = crop[..., 0] if crop.ndim == 3 and crop.shape[-1] == 1 else crop
    face = Image.fromarray(plain).convert("RGB").resize((side, side), Image.BILINEAR)
    font = _font(max(11, side // 18))
    bar = side // 7
    panel = Image.new("RGB", (2 * side, side + bar), (255, 255, 255))
    panel.paste(face, (0, bar))
    panel.paste(overlay, (side, bar))
    ImageDraw.Draw(panel).text((6, bar // 5), caption, fill=(0, 0, 0), font=font)
    return panel


def paste_heat(photo: np.ndarray, region: Any, heat: np.ndarray) -> np.ndarray:
    """`photo` (RGB) with `heat` blended into the square crop `region` (clipped to the photo)."""
    import tensorflow as tf

    out = photo.copy()
    heat_full = tf.image.resize(heat[..., None], [region.h, region.w])[..., 0].numpy()
    height, width = photo.shape[:2]
    x0, y0 = max(0, region.x), max(0, region.y)
    x1, y1 = min(width, region.x + region.w), min(height, region.y + region.h)
    if x1 <= x0 or y1 <= y0:
        return out
    part = heat_full[y0 - region.y : y1 - region.y, x0 - region.x : x1 - region.x]
    out[y0:y1, x0:x1] = heat_overlay(photo[y0:y1, x0:x1], part)
    return out


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
    faces: str = "auto",
    fallback: str = "none",
    margin: float | None = None,
    detector: Any = None,
) -> list[Explanation]:
    """Write Grad-CAM panels for every face of every input into `out_dir`.

    For each face: `<stem>_face<i>_<class>.png` (crop and overlay side by side) for the
    predicted class and for each of `classes`. For photos where faces were detected, also
    `<stem>_gradcam[_<class>].png`: the whole photo with each face's heat map in place.
    `explanations.json` lists everything written. Bad inputs give an error entry and the rest
    goes on.
    """
    import tensorflow as tf

    from emotion_tf.errors import ConfigError
    from emotion_tf.faces.annotate import Annotation, annotate_image
    from emotion_tf.faces.crop import DEFAULT_MARGIN, square_region
    from emotion_tf.faces.locate import check_mode
    from emotion_tf.faces.photo import decode_photo
    from emotion_tf.io_utils import atomic_write_bytes, atomic_write_json
    from emotion_tf.predict import DEFAULT_MAX_PIXELS, _read, expand_inputs, face_inputs

    check_mode(faces, fallback)
    margin = DEFAULT_MARGIN if margin is None else margin
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
        import io

        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        atomic_write_bytes(out_dir / name, buffer.getvalue())
        return str(out_dir / name)

    for path, error in expand_inputs(inputs):
        data = None
        if error is None:
            data, error = _read(path, DEFAULT_MAX_PIXELS)
        if error is None:
            try:
                image = decode_photo(data, cam.channels)
            except tf.errors.InvalidArgumentError:
                error = "cannot be decoded as jpg/png/bmp/gif"
        if error is not None:
            results.append(Explanation(path, error=error))
            continue
        regions, crops = face_inputs(image, cam.size, faces, fallback, margin, detector)
        if not regions:
            results.append(Explanation(path, no_face=True))
            continue
        stem = _unique_stem(Path(path).stem, used_stems)
        photo = decode_photo(data, 3)
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
                    whole = paste_heat(whole, square_region(region.box, margin), heat[i])
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
    atomic_write_json(out_dir / "explanations.json", [r.to_dict() for r in results])
    return results


def _unique_stem(stem: str, used: set[str]) -> str:
    name, count = stem, 1
    while name in used:
        count += 1
        name = f"{stem}-{count}"
    used.add(name)
    return name

"""The Keras model Grad-CAM needs: from a run directory, a .keras file, or an export in a run.

A SavedModel export alone holds only the serving graph, whose inner layers cannot be reached,
so an export is traced back to the run it lies in and checked against its config hash.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from emotion_tf.errors import ModelDirError
from emotion_tf.explain.gradcam import FEATURE_LAYER, LOGITS_LAYER
from emotion_tf.export import read_metadata, resolve_export
from emotion_tf.run_dir import RunDir, find_run_dir, load_checkpoint, read_json


@dataclasses.dataclass
class KerasModel:
    model: Any
    class_names: list[str]
    path: Path


def _class_names_near(folder: Path, num_classes: int) -> list[str]:
    names = (read_json(RunDir(folder).metrics_file, {}) or {}).get("class_names")
    if names and len(names) == num_classes:
        return list(names)
    return [f"class_{i}" for i in range(num_classes)]


def load_keras_model(path: str | Path | None = None) -> KerasModel:
    """The Keras model behind `path`: a run dir, a .keras file, an export in a run dir, or a
    packaged .npz; None is the model packaged with emotion-tf."""
    if path is None or Path(path).suffix == ".npz":
        return _packaged(path)
    path = Path(path)
    if not path.exists():
        raise ModelDirError(f"model path not found: {path}")
    if path.is_file():
        if path.suffix != ".keras":
            raise ModelDirError(f"expected a .keras file or a run directory. Received: {path}")
        checkpoint = path
    else:
        run = find_run_dir(path)
        if run is None:
            raise ModelDirError(
                f"Grad-CAM needs gradients through the Keras model, and {path} has no best.keras "
                "(an export alone holds only the serving graph): pass the run directory or its "
                ".keras file"
            )
        if run.path != path:
            _check_export_matches(path, run)
        checkpoint = run.kept_checkpoint(run.load_config())
    model = load_checkpoint(checkpoint)
    for layer in (FEATURE_LAYER, LOGITS_LAYER):
        try:
            model.get_layer(layer)
        except ValueError as err:
            raise ModelDirError(
                f"{checkpoint} is not an emotion-tf AlexNet (no layer '{layer}')"
            ) from err
    names = _class_names_near(checkpoint.parent, int(model.output_shape[-1]))
    return KerasModel(model, names, checkpoint)


def _packaged(path: str | Path | None) -> KerasModel:
    from emotion_tf.packaged import PACKAGED_MODEL_FILE
    from emotion_tf.packaged.archive import read_packaged

    packaged = read_packaged(Path(path) if path is not None else PACKAGED_MODEL_FILE)
    return KerasModel(packaged.model, packaged.class_names, packaged.path)


def _check_export_matches(export_path: Path, run: RunDir) -> None:
    """Refuse when the export's config hash differs from the run's (a different model)."""
    try:
        exported = read_metadata(resolve_export(export_path)).get("config_hash")
    except ModelDirError:
        return
    if exported and run.load_config().digest() != exported:
        raise ModelDirError(
            f"{export_path} was not exported from {run.path} (config hash differs): pass the "
            "run directory the export came from"
        )

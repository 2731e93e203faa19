"""What `export --format tflite` converts: a run's kept checkpoint or a packaged .npz file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from emotion_tf.errors import ModelDirError


@dataclasses.dataclass
class ModelSource:
    model: Any  # keras.Model
    class_names: list[str]
    test_time_flip: bool
    temperature: float
    metadata: dict[str, Any]
    default_dir: Path  # where the .tflite goes unless told


def load_source(path: str | Path) -> ModelSource:
    """A run directory (its kept checkpoint) or a packaged .npz, with what the export needs."""
    from emotion_tf.predictors.resolve import PACKAGED_SUFFIX, kept_checkpoint, open_checkpoint

    path = Path(path)
    if path.is_file() and path.suffix == PACKAGED_SUFFIX:
        from emotion_tf.packaged.archive import read_packaged

        packaged = read_packaged(path)
        keys = ("config_hash", "recipe_hash", "run_metrics")
        return ModelSource(
            packaged.model,
            packaged.class_names,
            packaged.test_time_flip,
            packaged.temperature,
            {
                "source": path.name,
                **{k: packaged.metadata[k] for k in keys if k in packaged.metadata},
            },
            path.parent,
        )
    checkpoint = kept_checkpoint(path) if path.is_dir() else None
    if checkpoint is None:
        raise ModelDirError(
            f"expected a finished run directory or a packaged .npz file. Received: {path}"
        )
    predictor = open_checkpoint(path, checkpoint)
    return ModelSource(
        predictor.model,
        predictor.class_names,
        predictor.test_time_flip,
        1.0,
        {"source": checkpoint.name, "config_hash": predictor.metadata["config_hash"]},
        path / "export",
    )


def export_tflite(
    path: str | Path, output: str | Path | None = None, quantize: str = "none"
) -> Path:
    """Write RUN_DIR's (or a packaged file's) model as .tflite; the default output is
    `<run>/export/model.tflite` (`model-float16.tflite`, `model-int8.tflite` when quantized)."""
    from emotion_tf.tflite.convert import write_tflite

    source = load_source(path)
    if output is None:
        suffix = "" if quantize == "none" else f"-{quantize}"
        output = source.default_dir / f"model{suffix}.tflite"
    return write_tflite(
        Path(output),
        source.model,
        source.class_names,
        quantize,
        source.test_time_flip,
        source.temperature,
        source.metadata,
    )


def export_fixed_saved_model(path: str | Path, output: str | Path | None = None) -> Path:
    """Write RUN_DIR's (or a packaged file's) model as the .tflite's graph in a SavedModel
    folder (default `<run>/export/fixed`), for `tensorflowjs_converter` and the like."""
    from emotion_tf.tflite.convert import write_fixed_saved_model

    source = load_source(path)
    return write_fixed_saved_model(
        Path(output) if output is not None else source.default_dir / "fixed",
        source.model,
        source.class_names,
        source.test_time_flip,
        source.temperature,
        source.metadata,
    )

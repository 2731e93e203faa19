"""The packaged model as a SavedModel export, for `emotion-tf serve` without a model named."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from emotion_tf.errors import ModelDirError


def export_packaged(path: Path, export_dir: Path, version: int | None = 1) -> Path:
    """Write the packaged model at `path` as `version` (None: the next free one) under
    `export_dir`, with its flip averaging and temperature inside the signatures; returns the
    version folder."""
    from emotion_tf.packaged.archive import read_packaged

    packaged = read_packaged(path)
    from emotion_tf.export import export_model

    keys = ("config_hash", "recipe_hash", "run_metrics")
    return export_model(
        packaged.model,
        export_dir,
        packaged.class_names,
        version=version,
        metadata={
            "source": Path(path).name,
            **{k: packaged.metadata[k] for k in keys if k in packaged.metadata},
        },
        test_time_flip=packaged.test_time_flip,
        temperature=packaged.temperature,
    )


@contextlib.contextmanager
def servable_model_base(model: str | None) -> Iterator[str]:
    """An export base to serve for `model`: itself, or (for None, the packaged model, or a
    packaged .npz) a temporary export removed when the server stops."""
    if model is not None and Path(model).suffix == ".tflite":
        raise ModelDirError(
            f"serve runs SavedModel exports; {model} is a TFLite file: pass its run directory, "
            "an export, or a packaged .npz"
        )
    if model is not None and Path(model).suffix != ".npz":
        yield model
        return
    from emotion_tf.packaged import PACKAGED_MODEL_FILE

    source = Path(model) if model is not None else PACKAGED_MODEL_FILE
    with tempfile.TemporaryDirectory(prefix="emotion-tf-serve-") as tmp:
        export_packaged(source, Path(tmp) / "export")
        yield str(Path(tmp) / "export")

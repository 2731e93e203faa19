"""Open whatever names a model: nothing (the packaged model), a packaged .npz, a .tflite file,
an export (base or version folder), or a run directory (its export, else its kept checkpoint)."""

from __future__ import annotations

from pathlib import Path

from emotion_tf.errors import ModelDirError
from emotion_tf.predictors import Predictor

PACKAGED_SUFFIX = ".npz"
TFLITE_SUFFIX = ".tflite"


def open_model(spec: str | Path | None = None, trust: bool = False) -> Predictor:
    """The model `spec` names; None means the model packaged with emotion-tf.

    An export is checked before it runs (`emotion_tf.export_checks`); `trust` skips its op
    allow-list.
    """
    if spec is None:
        from emotion_tf.packaged import PACKAGED_MODEL_FILE

        return open_packaged(PACKAGED_MODEL_FILE)
    path = Path(spec)
    if not path.exists():
        raise ModelDirError(f"model path not found: {path}")
    if path.is_file():
        if path.suffix == PACKAGED_SUFFIX:
            return open_packaged(path)
        if path.suffix == TFLITE_SUFFIX:
            from emotion_tf.predictors.tflite_model import TFLitePredictor

            return TFLitePredictor(path)
        raise ModelDirError(
            f"expected a packaged .npz, a .tflite file, an export or a run directory. "
            f"Received: {path}"
        )
    from emotion_tf.export import LoadedExport, resolve_export

    try:
        resolve_export(path)
    except ModelDirError:
        checkpoint = kept_checkpoint(path)
        if checkpoint is None:
            raise
        return open_checkpoint(path, checkpoint)
    return LoadedExport(path, trust=trust)


def open_packaged(path: Path) -> Predictor:
    from emotion_tf.packaged.archive import read_packaged
    from emotion_tf.predictors.keras_model import KerasPredictor

    packaged = read_packaged(path)
    return KerasPredictor(
        packaged.model,
        packaged.class_names,
        packaged.path,
        test_time_flip=packaged.test_time_flip,
        temperature=packaged.temperature,
        metadata=packaged.metadata,
    )


def kept_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a finished run kept (`last.keras` with train.keep=last, else
    `best.keras`), or None when `run_dir` is not a finished run directory."""
    from emotion_tf.run_dir import RunDir

    run = RunDir(Path(run_dir))
    try:
        run.require_finished()
    except ModelDirError:
        return None
    return run.kept_checkpoint(run.load_config())


def open_checkpoint(run_dir: Path, checkpoint: Path) -> Predictor:
    """A run's kept Keras checkpoint, with the run's flip setting and class names."""
    from emotion_tf.predictors.keras_model import KerasPredictor
    from emotion_tf.run_dir import RunDir, load_checkpoint

    run = RunDir(Path(run_dir))
    config = run.load_config()
    metrics = run.load_metrics()
    return KerasPredictor(
        load_checkpoint(checkpoint),
        list(metrics["class_names"]),
        checkpoint,
        test_time_flip=config.model.test_time_flip,
        metadata={"config_hash": config.digest(), "metrics": metrics},
    )

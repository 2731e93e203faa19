"""Fit the packaged model's temperature on labelled folders it is not evaluated on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emotion_tf.calibration import fit_temperature, negative_log_likelihood
from emotion_tf.predictors.outputs import apply_temperature


def calibrate_run(run_dir: Path, data_dirs: list[Path], faces: str = "auto") -> dict[str, Any]:
    """Fit a temperature for `run_dir`'s kept checkpoint on the labelled folders `data_dirs`
    (every photo through the photo pipeline with `faces`); returns what was fitted."""
    import numpy as np

    from emotion_tf.evaluate import predict_labelled
    from emotion_tf.predictors.resolve import kept_checkpoint, open_checkpoint

    checkpoint = kept_checkpoint(Path(run_dir))
    if checkpoint is None:
        from emotion_tf.errors import ModelDirError

        raise ModelDirError(f"not a finished run directory: {run_dir}")
    predictor = open_checkpoint(Path(run_dir), checkpoint)
    found = [predict_labelled(predictor, Path(folder), faces=faces) for folder in data_dirs]
    labels = np.concatenate([np.asarray(f.labels, np.int64) for f in found])
    probabilities = np.concatenate([np.asarray(f.probabilities, np.float32) for f in found])
    temperature = fit_temperature(labels, probabilities)
    return {
        "temperature": temperature,
        "fitted_on": [str(f.folder) for f in found],
        "faces": faces,
        "count": len(labels),
        "skipped": sum(len(f.errors) for f in found),
        "nll_before": negative_log_likelihood(labels, probabilities),
        "nll_after": negative_log_likelihood(labels, apply_temperature(probabilities, temperature)),
    }

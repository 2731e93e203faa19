"""Fit the packaged model's temperature on a labelled folder it is not evaluated on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emotion_tf.calibration import fit_temperature, negative_log_likelihood
from emotion_tf.predictors.outputs import apply_temperature


def calibrate_run(run_dir: Path, data_dir: Path, faces: str = "auto") -> dict[str, Any]:
    """Fit a temperature for `run_dir`'s kept checkpoint on `data_dir` (each image on its
    largest face, or whole when it already looks like a face crop); returns what was fitted."""
    from emotion_tf.evaluate import predict_labelled
    from emotion_tf.predictors.resolve import kept_checkpoint, open_checkpoint

    checkpoint = kept_checkpoint(Path(run_dir))
    if checkpoint is None:
        from emotion_tf.errors import ModelDirError

        raise ModelDirError(f"not a finished run directory: {run_dir}")
    predictor = open_checkpoint(Path(run_dir), checkpoint)
    found = predict_labelled(predictor, Path(data_dir), faces=faces)
    temperature = fit_temperature(found.labels, found.probabilities)
    return {
        "temperature": temperature,
        "fitted_on": str(found.folder),
        "faces": faces,
        "count": len(found.labels),
        "skipped": len(found.errors),
        "nll_before": negative_log_likelihood(found.labels, found.probabilities),
        "nll_after": negative_log_likelihood(
            found.labels, apply_temperature(found.probabilities, temperature)
        ),
    }

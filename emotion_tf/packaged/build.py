"""Pack a finished run's kept checkpoint into the compact packaged-model file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from emotion_tf.errors import ModelDirError

# Packaged files live in git and inside the wheel: refuse to write one larger than this.
MAX_PACKAGED_BYTES = 10_000_000
RUN_METRIC_KEYS = ("accuracy", "balanced_accuracy", "roc_auc", "count", "per_class", "split")
# Where a run was trained, where its data and starting run were, and what it printed do not
# change the recipe: the hash leaves them out, so a run of configs/packaged-average.yaml from
# any copy of step 1's run has the packaged file's recipe hash.
PLACE_KEYS = (
    ("data", "data_dir"),
    ("data", "more_dirs"),
    ("data", "face_cache"),
    ("train", "init_from"),
    ("train", "run_dir"),
    ("train", "export_dir"),
    ("train", "verbose"),
)


def _recipe_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The settings of a config dict that differ from today's defaults, without PLACE_KEYS."""
    from emotion_tf.config import Config, flat_settings

    place = {f"{section}.{key}" for section, key in PLACE_KEYS}
    defaults = flat_settings(Config().to_dict())
    return {
        key: value
        for key, value in flat_settings(values).items()
        if key not in place and (key not in defaults or value != defaults[key])
    }


def recipe_hash(config: Any) -> str:
    """A hash of the config's settings that differ from the defaults, without paths and
    verbosity (PLACE_KEYS): an option added later at its default leaves the hash as it was."""
    import hashlib

    settings = _recipe_settings(config.to_dict())
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def recipe_differences(stored: dict[str, Any], config: Any) -> list[str]:
    """Settings where `config` differs from a packaged file's stored config, as dotted keys
    (nested sections too: "data.augment.flip").

    Paths and verbosity (PLACE_KEYS) do not count. A setting the stored config lacks (an option
    added to the code after the file was packed) must be at its default in `config`.
    """
    ours, theirs = _recipe_settings(config.to_dict()), _recipe_settings(stored)
    return sorted(key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key))


@dataclasses.dataclass
class PackResult:
    path: Path
    size_bytes: int
    checkpoint: Path
    config_hash: str


def pack_run(
    run_dir: Path,
    output: Path,
    temperature: float = 1.0,
    calibration: dict[str, Any] | None = None,
    max_bytes: int = MAX_PACKAGED_BYTES,
) -> PackResult:
    """Write `run_dir`'s kept checkpoint (last.keras with train.keep=last) to `output`.

    The file records the resolved config and its hash, class names, the run's validation
    metrics, the temperature its probabilities are scaled with, and how that was fitted.
    """
    from emotion_tf import __version__
    from emotion_tf.config import load_config
    from emotion_tf.packaged.archive import write_packaged
    from emotion_tf.predictors.resolve import kept_checkpoint, open_checkpoint

    run_dir = Path(run_dir)
    checkpoint = kept_checkpoint(run_dir)
    if checkpoint is None:
        raise ModelDirError(
            f"not a finished run directory: {run_dir} (needs config.yaml, metrics.json and the "
            "checkpoint its train.keep names)"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
    config = load_config(run_dir / "config.yaml")
    run_metrics = json.loads((run_dir / "metrics.json").read_text())
    predictor = open_checkpoint(run_dir, checkpoint)
    metadata = {
        "config": config.to_dict(),
        "config_hash": config.digest(),
        "recipe_hash": recipe_hash(config),
        "class_names": predictor.class_names,
        "checkpoint": checkpoint.name,
        "run_metrics": {k: run_metrics[k] for k in RUN_METRIC_KEYS if k in run_metrics},
        "temperature": float(temperature),
        "calibration": calibration or {},
        "package_version": __version__,
    }
    output = Path(output)
    size = write_packaged(output, predictor.model, metadata)
    if size > max_bytes:
        output.unlink(missing_ok=True)
        raise ModelDirError(
            f"packaged model would take {size:,} bytes, over the {max_bytes:,}-byte limit: "
            "use a smaller model.width or input_size"
        )
    return PackResult(output, size, checkpoint, config.digest())

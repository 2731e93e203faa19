"""The run's validation split, found where the run was trained (for the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emotion_tf.config import Config


def validation_split(config: Config, run_info: dict[str, Any], data_dir: Path | None = None) -> Any:
    """The run's validation split (folders or TFRecords), found where the run was trained."""
    from emotion_tf.data.files import load_splits, scan_split
    from emotion_tf.data.tfrecord import is_tfrecord_dir, load_record_splits

    root = Path(data_dir or run_info.get("data_dir") or config.data.data_dir)
    if is_tfrecord_dir(root):
        return load_record_splits(root)["validation"]
    split, _ = scan_split(load_splits(root)["validation"], config.data.max_pixels)
    return split

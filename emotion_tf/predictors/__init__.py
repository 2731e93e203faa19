"""Model backends with one interface: a SavedModel export, a Keras model, a TFLite file.

Each has `class_names`, `input_size`, `channels`, `path`, `metadata`, and
`predict_images(uint8 [N, H, W, C])` / `predict_bytes([encoded, ...])` returning the export's
outputs (`probabilities`, `label`, `confidence`, `class_index`). `open_model` picks one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Predictor(Protocol):
    class_names: list[str]
    input_size: int
    channels: int
    path: Path
    metadata: dict[str, Any]

    def predict_images(self, images: Any) -> dict[str, Any]: ...

    def predict_bytes(self, blobs: list[bytes]) -> dict[str, Any]: ...

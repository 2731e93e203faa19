"""The output dict every model backend returns, as the SavedModel export's signatures do."""

from __future__ import annotations

from typing import Any

import numpy as np


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): T > 1 softens over-confident probabilities, T = 1 keeps them."""
    probabilities = np.asarray(probabilities, np.float64)
    if temperature == 1.0:
        return probabilities.astype(np.float32)
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def outputs_from_probabilities(probabilities: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """`probabilities`, `label` (bytes), `confidence` and `class_index` for a batch."""
    probabilities = np.asarray(probabilities, np.float32).reshape(-1, len(class_names))
    index = probabilities.argmax(axis=1)
    names = np.array([name.encode() for name in class_names], dtype=object)
    return {
        "probabilities": probabilities,
        "label": names[index] if len(index) else np.zeros((0,), object),
        "confidence": probabilities.max(axis=1) if len(index) else np.zeros((0,), np.float32),
        "class_index": index.astype(np.int64),
    }

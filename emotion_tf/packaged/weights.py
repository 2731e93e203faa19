"""Int8 storage of Keras weights: kernels per output channel, everything small in float32."""

from __future__ import annotations

import numpy as np

# Kernels (rank >= 2) with at least this many values are stored as int8; smaller ones and every
# vector (biases, BatchNorm statistics) stay float32, where int8 would save nothing worth it.
MIN_QUANTIZED_SIZE = 1024


def quantize_kernel(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 codes and float32 scales, one scale per output channel (the last axis)."""
    values = np.asarray(values, np.float32)
    flat = values.reshape(-1, values.shape[-1])
    scales = np.abs(flat).max(axis=0) / 127.0
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.clip(np.round(values / scales), -127, 127).astype(np.int8)
    return codes, scales


def dequantize_kernel(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return codes.astype(np.float32) * scales.astype(np.float32)


def should_quantize(values: np.ndarray) -> bool:
    return values.ndim >= 2 and values.size >= MIN_QUANTIZED_SIZE


def encode_weights(weights: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays to store for `weights` (in model order): `q{i}` + `s{i}`, or `f{i}`."""
    arrays: dict[str, np.ndarray] = {}
    for i, values in enumerate(weights):
        values = np.asarray(values, np.float32)
        if should_quantize(values):
            arrays[f"q{i}"], arrays[f"s{i}"] = quantize_kernel(values)
        else:
            arrays[f"f{i}"] = values
    return arrays


def decode_weights(arrays: dict[str, np.ndarray], count: int) -> list[np.ndarray]:
    """The float32 weights back from `encode_weights`' arrays (KeyError when one is missing)."""
    weights = []
    for i in range(count):
        if f"q{i}" in arrays:
            weights.append(dequantize_kernel(arrays[f"q{i}"], arrays[f"s{i}"]))
        else:
            weights.append(np.asarray(arrays[f"f{i}"], np.float32))
    return weights

"""Helpers for the video tests: a tiny model that tells the generated videos' happy and sad
faces apart, trained in memory for a few seconds, and generated videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotion_tf.video.demo import DETECTABLE_SEEDS, face_pixels

MODEL_SEEDS = DETECTABLE_SEEDS[:5]


def face_crops(seeds: tuple[int, ...], per_face: int, size: int, seed: int = 0):
    """Crops of the demo faces as the tracker cuts them (shifted and scaled a little), resized
    to `size`: uint8 [n, size, size, 3] and labels (0 happy, 1 sad)."""
    import cv2

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for face_seed in seeds:
        for label, expression in enumerate(("happy", "sad")):
            face = face_pixels(face_seed, expression, 160)
            padded = cv2.copyMakeBorder(face, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
            for _ in range(per_face):
                side = int(rng.integers(110, 170))
                x = 40 + 80 - side // 2 + int(rng.integers(-12, 13))
                y = 40 + 80 - side // 2 + int(rng.integers(-12, 13))
                crop = padded[max(0, y) : y + side, max(0, x) : x + side]
                images.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
                labels.append(label)
    return np.stack(images), np.array(labels)


def train_face_model(out_dir: Path, size: int = 32, epochs: int = 8) -> Path:
    """Export of a tiny AlexNet (size px, width 1/16) trained on crops of MODEL_SEEDS' faces."""
    import keras

    from emotion_tf.config import ModelConfig
    from emotion_tf.export import export_model
    from emotion_tf.model.alexnet import build_alexnet

    keras.utils.set_random_seed(0)
    images, labels = face_crops(MODEL_SEEDS, 24, size)
    model = build_alexnet(ModelConfig(input_size=size, channels=3, width=0.0625), 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(
        images.astype("float32"),
        labels.astype("int32"),
        batch_size=16,
        epochs=epochs,
        shuffle=True,
        verbose=0,
    )
    return export_model(model, out_dir, ["happy", "sad"], warmup=False)

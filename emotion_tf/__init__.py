"""emotion-tf: train, export and serve AlexNet happy/sad facial-expression classifiers.

import emotion_tf
model = emotion_tf.load()          # the packaged happy/sad model
model.predict("photo.jpg")         # per face: label, confidence, probabilities, box
"""

from __future__ import annotations

from typing import Any

from emotion_tf import tf_startup

__version__ = "0.1.0"

# Before anything imports TensorFlow: its faster oneDNN kernels on every x86 CPU, and its C++
# start-up log kept quiet (tf_startup; `emotion-tf -v` shows it).
tf_startup.prefer_onednn()
tf_startup.quiet_by_default()


def load(model: Any = None) -> Any:
    """Load a model (None: the packaged one); see `emotion_tf.api.load`. Imported lazily so
    that `import emotion_tf` stays cheap (no TensorFlow until a model is loaded)."""
    from emotion_tf.api import load as load_model

    return load_model(model)

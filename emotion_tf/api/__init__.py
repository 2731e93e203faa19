"""The Python API: `emotion_tf.load()` and the results it gives (see docs/api.md)."""

from emotion_tf.api.model import EmotionModel, load
from emotion_tf.api.results import FacePrediction, ImagePrediction, PhotoPrediction

__all__ = ["EmotionModel", "FacePrediction", "ImagePrediction", "PhotoPrediction", "load"]

"""EXIF orientation: read it from a file's header and apply it to decoded pixels.

TensorFlow's image decoders ignore EXIF, so a phone photo stored sideways with an orientation
tag would train and predict sideways. emotion-tf reads the tag once (in the data scan, and in
`predict`), then turns the decoded pixels upright with `apply_orientation`, a pure TF op, so
the tf.data pipeline, TFRecords and prediction all see the same upright image. A SavedModel
served by TF Serving decodes bytes as they are: clients must send upright images (see
docs/robustness-and-scale.md).
"""

from __future__ import annotations

from typing import Any

ORIENTATION_TAG = 0x0112  # EXIF "Orientation"; 1 means stored upright


def read_orientation(image: Any) -> int:
    """The EXIF orientation (1-8) of an open PIL image; 1 when absent or invalid.

    Reads headers only: PIL would decode a whole PNG to look for EXIF stored after the pixels,
    so for PNG only an EXIF chunk before them counts.
    """
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a malformed EXIF block must not make a readable image unusable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(image: Any, orientation: Any) -> Any:
    """Turn a decoded [H, W, C] image upright for an EXIF orientation (int or scalar tensor)."""
    import tensorflow as tf

    def transverse() -> tf.Tensor:
        return tf.image.rot90(tf.image.transpose(image), 2)

    branches = [
        lambda: image,  # 1: upright
        lambda: tf.image.flip_left_right(image),  # 2: mirrored
        lambda: tf.image.rot90(image, 2),  # 3: upside down
        lambda: tf.image.flip_up_down(image),  # 4: mirrored upside down
        lambda: tf.image.transpose(image),  # 5: mirrored along the main diagonal
        lambda: tf.image.rot90(image, 3),  # 6: needs 90 degrees clockwise
        transverse,  # 7: mirrored along the other diagonal
        lambda: tf.image.rot90(image, 1),  # 8: needs 90 degrees counter-clockwise
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    return tf.switch_case(index, branches)


def upright_png(data: bytes, orientation: int) -> bytes:
    """Encoded image bytes, decoded by TF, turned upright and re-encoded as lossless PNG.

    Decoding with TF (not PIL) keeps the pixels identical to what the training pipeline sees.
    """
    import tensorflow as tf

    image = tf.io.decode_image(data, channels=0, expand_animations=False, dtype=tf.uint8)
    return tf.io.encode_png(apply_orientation(image, orientation)).numpy()

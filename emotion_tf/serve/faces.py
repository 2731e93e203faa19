"""Face detection for `emotion-tf serve`: classify the largest face of each request image.

TF Serving's REST protocol answers one prediction per instance, so a whole photo is reduced to
its largest face; a photo with no face is a 400 naming the instance.
"""

from __future__ import annotations

from emotion_tf.serve.app import ImageHook


def largest_face_hook(
    channels: int,
    size: int,
    mode: str = "auto",
    fallback: str = "none",
    detector: str | None = None,
    align: bool = False,
) -> ImageHook:
    """An image hook that replaces encoded photo bytes by a PNG of their largest face crop."""
    import tensorflow as tf

    from emotion_tf.faces.locate import resolve_detector
    from emotion_tf.faces.photo import decode_photo
    from emotion_tf.predict import face_inputs

    found = resolve_detector(detector)  # built now, not on the first request

    def hook(data: bytes) -> bytes:
        try:
            image = decode_photo(data, channels)
            colour = decode_photo(data, 3) if channels != 3 else None
        except tf.errors.InvalidArgumentError as err:
            raise ValueError("not a decodable jpg/png/bmp/gif image") from err
        regions, inputs = face_inputs(
            image,
            size,
            mode,  # type: ignore[arg-type]
            fallback,  # type: ignore[arg-type]
            detector=found,
            align=align,
            colour=colour,
        )
        if not regions:
            raise ValueError("no face found")
        areas = [region.box.w * region.box.h for region in regions]
        largest = inputs[areas.index(max(areas))]
        return tf.io.encode_png(tf.constant(largest)).numpy()

    return hook

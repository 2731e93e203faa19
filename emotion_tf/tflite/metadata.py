"""Store and read emotion-tf's JSON in a .tflite file's `metadata` table (the flatbuffer
schema's name -> buffer entries), with TensorFlow's own flatbuffer tools: no extra package."""

from __future__ import annotations

import json
from typing import Any

from emotion_tf.errors import ModelDirError

METADATA_NAME = "emotion_tf"


def embed_metadata(model_bytes: bytes, info: dict[str, Any]) -> bytes:
    """`model_bytes` with `info` (JSON) stored under METADATA_NAME."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    buffer = schema.BufferT()
    buffer.data = list(json.dumps(info).encode("utf-8"))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m) != METADATA_NAME] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_tflite_metadata(model_bytes: bytes, source: str = "model") -> dict[str, Any]:
    """The JSON stored by `embed_metadata` (ModelDirError when absent or unreadable)."""
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAsModel(bytearray(model_bytes), 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name().decode() == METADATA_NAME:
                data = model.Buffers(entry.Buffer()).DataAsNumpy()
                return json.loads(bytes(data).decode("utf-8"))
    except Exception as err:  # a malformed flatbuffer raises anything from struct to index errors
        raise ModelDirError(f"not a readable .tflite file: {source} ({err})") from err
    raise ModelDirError(
        f"{source} has no '{METADATA_NAME}' metadata (not exported by emotion-tf export "
        "--format tflite): class names and input size are unknown"
    )


def _name(entry: Any) -> str:
    name = entry.name
    return name.decode() if isinstance(name, bytes) else str(name)

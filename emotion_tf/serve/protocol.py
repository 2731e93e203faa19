"""TF Serving's REST predict protocol: parse request bodies, shape responses.

Pure Python + numpy (no TensorFlow), so it can be tested and reused on its own.

Requests (https://www.tensorflow.org/tfx/serving/api_rest, "Predict API"):
- row form: `{"signature_name": ..., "instances": [v0, v1, ...]}`; each instance is the value of
  the signature's one input, or `{"<input name>": value}`;
- columnar form: `{"signature_name": ..., "inputs": [v0, ...]}` or `{"inputs": {"<input>": [...]}}`.
Binary values are `{"b64": "<base64>"}`. Responses mirror the request form: row form gives
`{"predictions": [...]}` (each a dict of output name -> value when there are several outputs),
columnar gives `{"outputs": {"<output>": [...]}}`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from emotion_tf.data.animation import first_frame, frames
from emotion_tf.pipeline.limits import size_problem

InputKind = Literal["bytes", "images"]

# Magic numbers of the formats tf.io.decode_image accepts; anything else fails inside the graph.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    """What one serving signature takes: its input name and kind, and the image channels."""

    name: str
    input_name: str
    kind: InputKind
    channels: int


@dataclasses.dataclass
class PredictRequest:
    """A parsed predict request: one value per instance, and where each came from."""

    signature: SignatureInfo
    columnar: bool
    values: list[Any]  # bytes (kind "bytes") or uint8 [H, W, C] arrays (kind "images")
    labels: list[str]  # e.g. "instances[2]", used in error messages

    def __len__(self) -> int:
        return len(self.values)

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Requests with equal keys can share one model call."""
        if self.signature.kind == "images":
            return (self.signature.name, *self.values[0].shape)
        return (self.signature.name,)


def _fail(message: str) -> RequestError:
    return RequestError(message, 400)


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 naming what is wrong with it."""
    if not body.strip():
        raise _fail("request body is empty; expected a JSON object with 'instances' or 'inputs'")
    try:
        parsed = json.loads(body)
    except UnicodeDecodeError as err:
        raise _fail(f"request body is not UTF-8 JSON ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise _fail(
            f"invalid JSON in request body: {err.msg} (line {err.lineno} column {err.colno})"
        ) from err
    except RecursionError as err:
        raise _fail("invalid JSON in request body: nested too deeply") from err
    except ValueError as err:  # an integer of more than 4300 digits (int-to-str limit)
        raise _fail(f"invalid JSON in request body: {str(err)[:100]}") from err
    if not isinstance(parsed, dict):
        raise _fail(
            f"request body must be a JSON object with 'instances' or 'inputs', "
            f"got a JSON {type(parsed).__name__}"
        )
    return parsed


def parse_predict_request(
    body: bytes,
    signatures: dict[str, SignatureInfo],
    default_signature: str,
    max_instances: int,
    max_pixels: int,
) -> PredictRequest:
    """Validate a predict body and decode its values (base64, arrays), naming any bad field."""
    request = parse_json_body(body)  # other top-level keys (e.g. "parameters") are ignored
    if "instances" in request and "inputs" in request:
        raise _fail("request has both 'instances' and 'inputs'; send exactly one")
    if "instances" not in request and "inputs" not in request:
        raise _fail("request needs 'instances' (row form) or 'inputs' (columnar form)")
    signature_name = request.get("signature_name", default_signature)
    if not isinstance(signature_name, str):
        raise _fail(
            f"'signature_name' must be a string, got a JSON {type(signature_name).__name__}"
        )
    if signature_name not in signatures:
        raise _fail(
            f"unknown signature_name {signature_name!r}; this model has "
            f"{', '.join(map(repr, sorted(signatures)))}"
        )
    signature = signatures[signature_name]
    columnar = "inputs" in request
    if columnar:
        raw, where = _columnar_values(request["inputs"], signature)
    else:
        raw, where = _row_values(request["instances"], signature)
    if not raw:
        raise _fail(f"'{where}' is empty; send at least one instance")
    if len(raw) > max_instances:
        raise _fail(
            f"too many instances: {len(raw)} in one request (the limit is {max_instances}; "
            "split the request or raise --max-instances)"
        )
    labels = [f"{where}[{i}]" for i in range(len(raw))]
    if signature.kind == "bytes":
        values: list[Any] = [
            _image_bytes(value, label, max_pixels) for value, label in zip(raw, labels)
        ]
    else:
        values = _image_arrays(raw, labels, signature, max_pixels)
    return PredictRequest(signature, columnar, values, labels)


def _row_values(instances: Any, signature: SignatureInfo) -> tuple[list[Any], str]:
    if not isinstance(instances, list):
        raise _fail(f"'instances' must be a JSON list, got a JSON {type(instances).__name__}")
    values = []
    for i, instance in enumerate(instances):
        if isinstance(instance, dict) and not _is_b64(instance):
            _check_input_keys(instance, signature, f"instances[{i}]")
            instance = instance[signature.input_name]
        values.append(instance)
    return values, "instances"


def _columnar_values(inputs: Any, signature: SignatureInfo) -> tuple[list[Any], str]:
    where = "inputs"
    if isinstance(inputs, dict) and not _is_b64(inputs):
        _check_input_keys(inputs, signature, "inputs")
        inputs = inputs[signature.input_name]
        where = f"inputs.{signature.input_name}"
    if not isinstance(inputs, list):
        raise _fail(
            f"'{where}' must be a JSON list (a batch of values), got a JSON {type(inputs).__name__}"
        )
    return inputs, where


def _is_b64(value: dict[str, Any]) -> bool:
    return set(value) == {"b64"}


def _check_input_keys(value: dict[str, Any], signature: SignatureInfo, where: str) -> None:
    if set(value) != {signature.input_name}:
        keys = ", ".join(map(repr, sorted(value))) or "none"
        raise _fail(
            f"{where}: input name(s) {keys} do not match signature {signature.name!r}, "
            f"which takes one input {signature.input_name!r}"
        )


def decode_b64(text: Any, where: str) -> bytes:
    """Standard base64 (missing '=' padding tolerated), or a 400 naming `where`."""
    if not isinstance(text, str):
        raise _fail(f"{where}: 'b64' must be a string of base64, got a JSON {type(text).__name__}")
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise _fail(f"{where}: invalid base64 in 'b64' ({err})") from err


def _image_bytes(value: Any, where: str, max_pixels: int) -> bytes:
    if isinstance(value, dict) and _is_b64(value):
        data = decode_b64(value["b64"], where)
    elif isinstance(value, str):
        # TF Serving passes a plain JSON string through as its UTF-8 bytes; images never are.
        data = value.encode("utf-8", "surrogatepass")
    else:
        raise _fail(f'{where}: expected an encoded image as {{"b64": "<base64>"}}')
    return check_image_bytes(data, where, max_pixels)


def _is_webp(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def check_image_bytes(data: bytes, where: str, max_pixels: int) -> bytes:
    """The bytes to decode (animations cut to their first frame), or a 400 naming the problem.

    Rejects what the model's decoder cannot read, before it can spoil a whole batch, and
    images whose decoding would allocate more than `max_pixels` pixels (by header).
    """
    if not data:
        raise _fail(f"{where}: empty image")
    if not (data.startswith(_IMAGE_MAGIC) or _is_webp(data)):
        raise _fail(
            f"{where}: not a jpg/png/bmp/gif/webp image (binary data must be sent base64-encoded "
            'as {"b64": "..."})'
        )
    from PIL import Image, UnidentifiedImageError

    try:
        Image.MAX_IMAGE_PIXELS = None  # the cap below gives a clearer message than PIL's
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _fail(f"{where}: unreadable image ({type(err).__name__}: {err})") from err
    animation = frames(data)
    pixels = animation.first_frame_pixels if animation else width * height
    if pixels > max_pixels:
        raise _fail(
            f"{where}: image too large: {width}x{height} pixels ({pixels} to decode) exceeds "
            f"the {max_pixels} pixel limit (--max-pixels)"
        )
    problem = size_problem(width, height, max_pixels, "--max-pixels")
    if problem is not None:
        raise _fail(f"{where}: {problem}")
    return first_frame(data) if animation is not None and animation.count > 1 else data


def _image_arrays(
    raw: list[Any], labels: list[str], signature: SignatureInfo, max_pixels: int
) -> list[np.ndarray]:
    arrays = []
    for value, where in zip(raw, labels):
        if isinstance(value, dict):
            raise _fail(
                f"{where}: signature {signature.name!r} takes uint8 pixel arrays "
                f"[height][width][{signature.channels}], not base64; use serving_default for "
                "encoded images"
            )
        try:
            array = np.asarray(value)
        except ValueError as err:
            raise _fail(f"{where}: ragged pixel array ({err})") from err
        if array.ndim != 3 or array.shape[2] != signature.channels or 0 in array.shape:
            raise _fail(
                f"{where}: expected a [height][width][{signature.channels}] pixel array, "
                f"got shape {list(array.shape)}"
            )
        if array.dtype.kind not in "iu":
            raise _fail(f"{where}: pixel values must be integers 0-255, got {array.dtype} values")
        if array.min() < 0 or array.max() > 255:
            raise _fail(f"{where}: pixel values must be 0-255, got {array.min()}..{array.max()}")
        if array.shape[0] * array.shape[1] > max_pixels:
            raise _fail(f"{where}: image too large: {array.shape[1]}x{array.shape[0]} pixels")
        arrays.append(array.astype(np.uint8))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        odd = next(i for i, a in enumerate(arrays) if a.shape != first)
        raise _fail(
            f"all images in one request must have the same shape: {labels[0]} is {list(first)}, "
            f"{labels[odd]} is {list(arrays[odd].shape)}"
        )
    return arrays


def jsonable(value: Any) -> Any:
    """numpy outputs to JSON values like TF Serving writes them (strings decoded, floats short)."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return jsonable(value[()])
        return [jsonable(item) for item in value]
    if isinstance(value, np.floating):
        return float(str(value))  # shortest repr of the float32, not its float64 expansion
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def format_response(
    outputs: dict[str, np.ndarray], columnar: bool, output_names: Sequence[str]
) -> dict[str, Any]:
    """TF Serving's response body for `outputs` (each [N, ...]) in the request's form."""
    names = [n for n in output_names if n in outputs]
    if columnar:
        if len(names) == 1:
            return {"outputs": jsonable(outputs[names[0]])}
        return {"outputs": {name: jsonable(outputs[name]) for name in names}}
    count = len(outputs[names[0]])
    if len(names) == 1:
        return {"predictions": [jsonable(outputs[names[0]][i]) for i in range(count)]}
    return {
        "predictions": [{name: jsonable(outputs[name][i]) for name in names} for i in range(count)]
    }

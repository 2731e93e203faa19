"""The model behind the server: one loaded export version, run on batches of requests."""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from emotion_tf.errors import ModelDirError
from emotion_tf.export import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    IMAGES_INPUT,
    IMAGES_SIGNATURE,
    OUTPUT_NAMES,
    LoadedExport,
    resolve_export,
)
from emotion_tf.serve.protocol import PredictRequest, RequestError, SignatureInfo

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]


def read_signature_defs(version_dir: Path) -> dict[str, Any]:
    """The `serve` meta-graph's SignatureDefs as TF Serving's metadata API writes them."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return {
                name: json_format.MessageToDict(
                    signature,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                )
                for name, signature in sorted(meta_graph.signature_def.items())
            }
    raise ModelDirError(f"SavedModel has no 'serve' meta-graph: {version_dir}")


def _short_tf_error(err: tf.errors.OpError) -> str:
    """TF's message without the graph-node decorations: 'Invalid PNG data, size 6216'."""
    text = re.sub(r"\{\{[^}]*\}\}|\[\[[^\]]*\]\]|\[Op:\w+\]", "", err.message or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else type(err).__name__


class ServedModel:
    """A loaded export version plus what the REST layer needs to know about it."""

    def __init__(self, model_base: str | Path):
        path = resolve_export(model_base)
        if not path.name.isdigit():
            raise ModelDirError(
                f"model version folder must be named by an integer (as TF Serving requires): {path}"
            )
        self.export = LoadedExport(path)
        self.path = path
        self.version = int(path.name)
        channels = self.export.channels
        self.signatures = {
            BYTES_SIGNATURE: SignatureInfo(BYTES_SIGNATURE, BYTES_INPUT, "bytes", channels),
            IMAGES_SIGNATURE: SignatureInfo(IMAGES_SIGNATURE, IMAGES_INPUT, "images", channels),
        }
        self.output_names = OUTPUT_NAMES
        self.signature_defs = read_signature_defs(path)
        log.info(
            "loaded %s (version %d, classes %s, input %dpx)",
            path,
            self.version,
            self.export.class_names,
            self.export.input_size,
        )

    def _call(self, kind: str, values: list[Any]) -> Outputs:
        if kind == "bytes":
            return self.export.predict_bytes(values)
        return self.export.predict_images(np.stack(values))

    def run_batch(self, key: Hashable, requests: Sequence[PredictRequest]) -> list[Any]:
        """Run requests of one batch key in one model call; one result or error per request.

        If the joint call fails (an image that passed the header checks but does not decode),
        each request runs alone, so only the bad one fails, with the instance named.
        """
        kind = requests[0].signature.kind
        values = [value for request in requests for value in request.values]
        try:
            outputs = self._call(kind, values)
        except tf.errors.InvalidArgumentError:
            if len(requests) == 1:
                return [self._find_bad_instance(requests[0])]
            return [self.run_batch(key, [request])[0] for request in requests]
        results: list[Any] = []
        start = 0
        for request in requests:
            stop = start + len(request)
            results.append({name: array[start:stop] for name, array in outputs.items()})
            start = stop
        return results

    def _find_bad_instance(self, request: PredictRequest) -> Exception:
        for value, label in zip(request.values, request.labels):
            try:
                self._call(request.signature.kind, [value])
            except tf.errors.InvalidArgumentError as err:
                detail = _short_tf_error(err)
                return RequestError(f"{label}: image could not be decoded ({detail})")
        return RequestError("the model rejected the request's inputs")

    def warm_up(self) -> None:
        """One call per signature, so the first real request does not pay for tracing."""
        size, channels = self.export.input_size, self.export.channels
        image = np.zeros([1, size, size, channels], np.uint8)
        self.export.predict_images(image)
        self.export.predict_bytes([tf.io.encode_png(image[0]).numpy()])

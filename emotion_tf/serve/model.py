"""The model behind the server: one loaded export version, run on batches of requests."""

from __future__ import annotations

import logging
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
    ONE_VIEW_SIGNATURE,
    OUTPUT_NAMES,
    LoadedExport,
    resolve_export,
)
from emotion_tf.preprocess import decode_error_reason
from emotion_tf.serve.protocol import PredictRequest, RequestError, SignatureInfo

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]


def signature_defs_of(meta_graph: Any) -> dict[str, Any]:
    """The meta-graph's SignatureDefs as TF Serving's metadata API writes them."""
    from google.protobuf import json_format

    return {
        name: json_format.MessageToDict(
            signature,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        for name, signature in sorted(meta_graph.signature_def.items())
    }


class ServedModel:
    """A loaded export version plus what the REST layer needs to know about it."""

    def __init__(self, model_base: str | Path, trust: bool = False):
        path = resolve_export(model_base)
        if not path.name.isdigit():
            raise ModelDirError(
                f"model version folder must be named by an integer (as TF Serving requires): {path}"
            )
        self.export = LoadedExport(path, trust)
        self.path = path
        self.version = int(path.name)
        channels = self.export.channels
        self.signatures = {
            BYTES_SIGNATURE: SignatureInfo(BYTES_SIGNATURE, BYTES_INPUT, "bytes", channels),
            IMAGES_SIGNATURE: SignatureInfo(IMAGES_SIGNATURE, IMAGES_INPUT, "images", channels),
        }
        if self.export.has_one_view:
            self.signatures[ONE_VIEW_SIGNATURE] = SignatureInfo(
                ONE_VIEW_SIGNATURE, IMAGES_INPUT, "images", channels
            )
        self.output_names = OUTPUT_NAMES
        self.signature_defs = signature_defs_of(self.export.meta_graph)
        log.info(
            "loaded %s (version %d, classes %s, input %dpx)",
            path,
            self.version,
            self.export.class_names,
            self.export.input_size,
        )

    def _call(self, signature: SignatureInfo, values: list[Any]) -> Outputs:
        if signature.kind == "bytes":
            return self.export.predict_bytes(values)
        if signature.name == ONE_VIEW_SIGNATURE:
            return self.export.predict_one_view(np.stack(values))
        return self.export.predict_images(np.stack(values))

    def run_batch(self, key: Hashable, requests: Sequence[PredictRequest]) -> list[Any]:
        """Run requests of one batch key in one model call; one result or error per request.

        If the joint call fails (an image that passed the header checks but does not decode),
        each request runs alone, so only the bad one fails, with the instance named.
        """
        signature = requests[0].signature
        values = [value for request in requests for value in request.values]
        try:
            outputs = self._call(signature, values)
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
                self._call(request.signature, [value])
            except tf.errors.InvalidArgumentError as err:
                detail = decode_error_reason(err)
                return RequestError(f"{label}: image could not be decoded ({detail})")
        return RequestError("the model rejected the request's inputs")

    def warm_up(self) -> None:
        """One call per signature, so the first real request does not pay for tracing."""
        size, channels = self.export.input_size, self.export.channels
        image = np.zeros([1, size, size, channels], np.uint8)
        self.export.predict_images(image)
        if self.export.has_one_view:
            self.export.predict_one_view(image)
        self.export.predict_bytes([tf.io.encode_png(image[0]).numpy()])

"""A Starlette app that answers TensorFlow Serving's REST API for one emotion-tf export.

Endpoints (TF Serving's, so one client works against both):
- `GET  /v1/models/<name>[/versions/<n>]`: version status;
- `GET  /v1/models/<name>[/versions/<n>]/metadata`: signature defs;
- `POST /v1/models/<name>[/versions/<n>]:predict`: row (`instances`) or columnar (`inputs`) form;
- `GET  /healthz`: liveness plus batching counters (ours, not TF Serving's).

Errors are `{"error": "..."}` with 400 (bad request), 404 (unknown model/version/path),
413 (body over the limit), 503 (queue full) or 500; no request can stop the server.

Extension point: `create_app(..., image_hook=f)` runs `f(image_bytes) -> image_bytes` on every
encoded image before it is batched (in a worker thread), e.g. to crop the face out of a photo.
A hook raises `ValueError("why")` to reject an image; the client gets a 400 naming the instance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emotion_tf.errors import ConfigError
from emotion_tf.export import BYTES_SIGNATURE
from emotion_tf.serve.batching import DynamicBatcher, QueueFullError
from emotion_tf.serve.protocol import (
    PredictRequest,
    RequestError,
    check_image_bytes,
    format_response,
    parse_predict_request,
)

log = logging.getLogger(__name__)

ImageHook = Callable[[bytes], bytes]

_MODEL_PATH = re.compile(
    r"^(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[A-Za-z_]+)?$"
)


@dataclasses.dataclass
class ServeSettings:
    """Server limits and batching knobs (the `emotion-tf serve` options)."""

    name: str = "emotion"
    max_batch_size: int = 32
    batch_timeout_ms: float = 5.0
    max_queue: int = 256
    max_instances: int = 64
    max_body_bytes: int = 16 * 1024 * 1024
    max_pixels: int = 4096 * 4096

    def validate(self) -> None:
        """Raise ConfigError naming the first setting out of range."""
        checks = {
            "max_batch_size": self.max_batch_size >= 1,
            "batch_timeout_ms": self.batch_timeout_ms >= 0,
            "max_queue": self.max_queue >= self.max_batch_size,
            "max_instances": 1 <= self.max_instances <= self.max_queue,
            "max_body_bytes": self.max_body_bytes >= 1024,
            "max_pixels": self.max_pixels >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"invalid serve setting {key}={getattr(self, key)} (max_queue must be >= "
                    "max_batch_size and >= max_instances; max_body_bytes >= 1024)"
                )
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ConfigError(f"model name must be letters, digits, '_', '.' or '-': {self.name!r}")


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class ServingApp:
    """Routes and handlers around one `ServedModel` (see emotion_tf.serve.model)."""

    def __init__(self, model: Any, settings: ServeSettings, image_hook: ImageHook | None = None):
        settings.validate()
        self.model = model
        self.settings = settings
        self.image_hook = image_hook
        self.batcher = DynamicBatcher(
            model.run_batch,
            max_batch_size=settings.max_batch_size,
            batch_timeout_s=settings.batch_timeout_ms / 1000.0,
            max_queued=settings.max_queue,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.batcher.start()
        try:
            yield
        finally:
            await self.batcher.stop()

    def build(self) -> Starlette:
        async def not_found(request: Request, exc: Exception) -> Response:
            status = getattr(exc, "status_code", 404)
            detail = getattr(exc, "detail", "not found")
            return _error(f"{detail}: {request.method} {request.url.path}", status)

        return Starlette(
            routes=[
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/v1/models/{path:path}", self.models, methods=["GET", "POST"]),
            ],
            exception_handlers={HTTPException: not_found},
            lifespan=self.lifespan,
        )

    # -- handlers -------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        body = {
            "status": "ok" if self.batcher.running else "batcher stopped",
            "model": self.settings.name,
            "version": self.model.version,
            "queued_instances": self.batcher.queued,
            "batching": self.batcher.stats.to_dict(),
        }
        return JSONResponse(body, status_code=200 if self.batcher.running else 503)

    async def models(self, request: Request) -> Response:
        try:
            return await self._models(request)
        except RequestError as err:
            return _error(err.message, err.status)
        except QueueFullError as err:
            return _error(str(err), 503)
        except Exception as err:  # never let one request take the server down
            log.exception("internal error on %s %s", request.method, request.url.path)
            return _error(f"internal error: {type(err).__name__}: {err}", 500)

    async def _models(self, request: Request) -> Response:
        path = request.path_params["path"]
        match = _MODEL_PATH.match(path)
        if not match:
            raise RequestError(f"malformed request: {request.method} /v1/models/{path}", 404)
        self._check_model(match["name"], match["version"], match["label"])
        suffix = match["suffix"]
        if request.method == "GET":
            if suffix is None:
                return JSONResponse(self._status())
            if suffix == "/metadata":
                return JSONResponse(self._metadata())
        elif suffix == ":predict":
            return await self._predict(request)
        elif suffix in (":classify", ":regress"):
            raise RequestError(
                f"{suffix[1:]} is not supported: this model's signatures are predict signatures; "
                "POST to :predict"
            )
        raise RequestError(f"malformed request: {request.method} /v1/models/{path}", 404)

    def _check_model(self, name: str, version: str | None, label: str | None) -> None:
        if name != self.settings.name:
            raise RequestError(
                f"model {name!r} not found; this server serves {self.settings.name!r}", 404
            )
        if label is not None:
            raise RequestError(
                f"version label {label!r} not found: labels are not configured; use "
                f"/versions/{self.model.version} or no version",
                404,
            )
        if version is not None:
            if not version.isdigit():
                raise RequestError(f"version must be an integer, got {version!r}")
            if int(version) != self.model.version:
                raise RequestError(
                    f"version {int(version)} of model {name!r} is not loaded; loaded version: "
                    f"{self.model.version}",
                    404,
                )

    def _status(self) -> dict[str, Any]:
        return {
            "model_version_status": [
                {
                    "version": str(self.model.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def _metadata(self) -> dict[str, Any]:
        return {
            "model_spec": {
                "name": self.settings.name,
                "signature_name": "",
                "version": str(self.model.version),
            },
            "metadata": {"signature_def": {"signature_def": self.model.signature_defs}},
        }

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestError(f"invalid Content-Length header: {declared!r}")
            if int(declared) > limit:
                raise RequestError(_too_large(int(declared), limit), 413)
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise RequestError(_too_large(total, limit), 413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _predict(self, request: Request) -> Response:
        body = await self._read_body(request)
        parsed = parse_predict_request(
            body,
            self.model.signatures,
            BYTES_SIGNATURE,
            self.settings.max_instances,
            self.settings.max_pixels,
        )
        if self.image_hook is not None and parsed.signature.kind == "bytes":
            await run_in_threadpool(self._apply_hook, parsed)
        outputs = await self.batcher.submit(parsed.batch_key, parsed, len(parsed))
        return JSONResponse(format_response(outputs, parsed.columnar, self.model.output_names))

    def _apply_hook(self, parsed: PredictRequest) -> None:
        assert self.image_hook is not None
        for i, (value, label) in enumerate(zip(parsed.values, parsed.labels)):
            try:
                parsed.values[i] = self.image_hook(value)
            except ValueError as err:
                raise RequestError(f"{label}: {err}") from err
            check_image_bytes(parsed.values[i], label, self.settings.max_pixels)


def _too_large(size: int, limit: int) -> str:
    return (
        f"request body too large: {size} bytes exceeds the {limit} byte limit "
        "(--max-body-mb); send fewer or smaller images per request"
    )


def create_app(
    model_base: str,
    settings: ServeSettings | None = None,
    image_hook: ImageHook | None = None,
    warm_up: bool = True,
) -> Starlette:
    """Load the newest version under `model_base` and return the ASGI app serving it."""
    from emotion_tf.serve.model import ServedModel

    model = ServedModel(model_base)
    if warm_up:
        model.warm_up()
    return ServingApp(model, settings or ServeSettings(), image_hook).build()

"""A Starlette app that answers TensorFlow Serving's REST API for one emotion-tf export.

Endpoints (TF Serving's, so one client works against both; routes are case-insensitive):
- `GET  /v1/models/<name>[/versions/<n>]`: version status;
- `GET  /v1/models/<name>[/versions/<n>]/metadata`: signature defs;
- `POST /v1/models/<name>[/versions/<n>]:predict`: row (`instances`) or columnar (`inputs`) form;
- `GET  /monitoring/prometheus/metrics`: Prometheus metrics;
- `GET  /healthz`: liveness plus batching counters (ours, not TF Serving's).
`HEAD` is answered like `GET`. Other requests under `/v1/` get TF Serving's 400
"Malformed request"; other paths 404.

Errors are `{"error": "..."}` with 400 (bad request), 404 (unknown model/version/path), 408
(request body stalled), 413 (body over the limit) or 503 (queue full). Client input never gets
a 5xx: a 500 means a bug, counted in `emotion_tf_internal_errors_total`.

The newest version under the export base is served and the base is polled for new and deleted
versions (`poll_seconds`, see emotion_tf.serve.versions).

With `photos` (a `PhotoReader`: `emotion-tf serve`'s default `--faces auto`), encoded images
sent to the bytes signature go through the photo pipeline and get the answer `emotion-tf predict
--per-photo` gives (emotion_tf.serve.photos); uint8 tensors and `--faces none` are served as
TF Serving serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emotion_tf.errors import ConfigError
from emotion_tf.export import BYTES_SIGNATURE
from emotion_tf.serve.batching import DynamicBatcher, QueueFullError
from emotion_tf.serve.metrics import METRICS_PATH, ServeMetrics
from emotion_tf.serve.photos import ClientLeftError, PhotoReader, photo_response
from emotion_tf.serve.protocol import (
    PredictRequest,
    RequestError,
    format_response,
    parse_predict_request,
)
from emotion_tf.serve.versions import ModelVersions

if TYPE_CHECKING:
    from emotion_tf.serve.model import ServedModel

log = logging.getLogger(__name__)

# TF Serving's routes (http_rest_api_handler.cc): case-insensitive, ASCII digits for versions.
_PREDICT_PATH = re.compile(
    r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r":(?P<verb>classify|regress|predict)",
    re.IGNORECASE | re.ASCII,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/(?P<name>[^/:]+))?(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<metadata>/metadata)?",
    re.IGNORECASE | re.ASCII,
)
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


class _ClientGoneError(Exception):
    """The client closed the connection before its request body arrived."""


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
    poll_seconds: float = 1.0  # 0: never look for new versions
    body_timeout_s: float = 30.0  # longest wait for the next piece of a request body
    trust_model: bool = False  # skip the export's op allow-list (emotion_tf.export_checks)

    def validate(self) -> None:
        """Raise ConfigError naming the first setting out of range."""
        checks = {
            "max_batch_size": self.max_batch_size >= 1,
            "batch_timeout_ms": self.batch_timeout_ms >= 0,
            "max_queue": self.max_queue >= self.max_batch_size,
            "max_instances": 1 <= self.max_instances <= self.max_queue,
            "max_body_bytes": self.max_body_bytes >= 1024,
            "max_pixels": self.max_pixels >= 1,
            "poll_seconds": self.poll_seconds >= 0,
            "body_timeout_s": self.body_timeout_s > 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"invalid serve setting {key}={getattr(self, key)} (max_queue must be >= "
                    "max_batch_size and >= max_instances; max_body_bytes >= 1024)"
                )
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ConfigError(f"model name must be letters, digits, '_', '.' or '-': {self.name!r}")


def _error(message: str, status: int, close: bool = False) -> JSONResponse:
    headers = {"connection": "close"} if close else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class ServingApp:
    """Routes and handlers around the served model (see emotion_tf.serve.model and .versions)."""

    def __init__(
        self,
        model: ServedModel | ModelVersions,
        settings: ServeSettings,
        photos: PhotoReader | None = None,
    ):
        settings.validate()
        self.versions = model if isinstance(model, ModelVersions) else ModelVersions.fixed(model)
        self.settings = settings
        self.photos = photos
        self.batcher = DynamicBatcher(
            _run_batch,
            max_batch_size=settings.max_batch_size,
            batch_timeout_s=settings.batch_timeout_ms / 1000.0,
            max_queued=settings.max_queue,
        )
        self.metrics = ServeMetrics(
            queue_depth=lambda: self.batcher.queued, version=lambda: self.versions.version
        )
        self.batcher.on_batch = self.metrics.batch_size.observe

    @property
    def model(self) -> ServedModel | None:
        """The model served now (None once every version was deleted)."""
        return self.versions.current

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.batcher.start()
        poller = None
        if self.versions.base is not None and self.settings.poll_seconds > 0:
            poller = asyncio.create_task(self._poll_versions(), name="version-poller")
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            await self.batcher.stop()

    async def _poll_versions(self) -> None:
        """Every poll_seconds, load the newest version in a thread; requests go on meanwhile."""
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                outcome = await run_in_threadpool(self.versions.poll)
            except Exception:  # the poller must outlive a broken file system
                log.exception("version poll failed")
                outcome = "failed"
            if outcome is not None:
                self.metrics.reloads.labels(outcome).inc()

    def build(self) -> Starlette:
        async def http_error(request: Request, exc: Exception) -> Response:
            # Only Starlette's own errors arrive here, e.g. 405 for a method we never route.
            return self._unrouted(request)

        return Starlette(
            routes=[Route("/{path:path}", self.dispatch, methods=_ALL_METHODS)],
            exception_handlers={HTTPException: http_error},
            lifespan=self.lifespan,
        )

    # -- dispatch -------------------------------------------------------------------------

    async def dispatch(self, request: Request) -> Response:
        """Route like TF Serving, time and count every answer; no client input gives a 5xx."""
        started = time.perf_counter()
        route = "other"
        self.metrics.in_flight.inc()
        try:
            route, handler = self._route(request)
            response = await handler(request)
        except RequestError as err:
            response = _error(err.message, err.status, close=err.status in (408, 413))
        except QueueFullError as err:
            response = _error(str(err), 503)
        except _ClientGoneError:
            log.debug("client went away during %s %s", request.method, request.url.path)
            response = Response(status_code=499)  # nobody is listening; never sent
        except Exception as err:  # never let one request take the server down
            self.metrics.internal_errors.inc()
            log.exception("internal error on %s %s", request.method, request.url.path)
            response = _error(f"internal error: {type(err).__name__}: {err}", 500)
        finally:
            self.metrics.in_flight.dec()
        self.metrics.observe(route, response.status_code, time.perf_counter() - started)
        return response

    def _route(self, request: Request) -> tuple[str, Callable[[Request], Any]]:
        path = request.url.path
        get = request.method in ("GET", "HEAD")
        if get and path == "/healthz":
            return "health", self.healthz
        if get and path == METRICS_PATH:
            return "metrics", self.prometheus
        if not path.lower().startswith("/v1/"):
            raise RequestError(f"not found: {request.method} {path}", 404)
        if request.method == "POST":
            match = _PREDICT_PATH.fullmatch(path)
            if match:
                return "predict", lambda r: self._predict_route(r, match)
        elif get:
            match = _STATUS_PATH.fullmatch(path)
            if match:
                route = "metadata" if match["metadata"] else "status"
                return route, lambda r: self._status_route(match)
        raise RequestError(f"Malformed request: {request.method} {path}")

    def _unrouted(self, request: Request) -> Response:
        if request.url.path.lower().startswith("/v1/"):
            return _error(f"Malformed request: {request.method} {request.url.path}", 400)
        return _error(f"not found: {request.method} {request.url.path}", 404)

    # -- handlers -------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        running = self.batcher.running and self.model is not None
        body = {
            "status": "ok" if running else "unavailable",
            "model": self.settings.name,
            "version": self.versions.version,
            "queued_instances": self.batcher.queued,
            "batching": self.batcher.stats.to_dict(),
        }
        return JSONResponse(body, status_code=200 if running else 503)

    async def prometheus(self, request: Request) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    async def _status_route(self, match: re.Match[str]) -> Response:
        if not match["name"]:
            raise RequestError("Missing model name in request.")
        model = self._check_model(match["name"], match["version"], match["label"])
        if match["metadata"]:
            return JSONResponse(self._metadata(model))
        return JSONResponse(self._status(model))

    async def _predict_route(self, request: Request, match: re.Match[str]) -> Response:
        model = self._check_model(match["name"], match["version"], match["label"])
        verb = match["verb"].lower()
        if verb != "predict":
            raise RequestError(
                f"{verb} is not supported: this model's signatures are predict signatures; "
                "POST to :predict"
            )
        return await self._predict(request, model)

    def _check_model(self, name: str, version: str | None, label: str | None) -> ServedModel:
        if name != self.settings.name:
            raise RequestError(
                f"model {name!r} not found; this server serves {self.settings.name!r}", 404
            )
        model = self.model
        if model is None:
            raise RequestError(f"no version of model {name!r} is available", 404)
        if label is not None:
            raise RequestError(
                f"version label {label!r} not found: labels are not configured; use "
                f"/versions/{model.version} or no version",
                404,
            )
        if version is not None:
            if len(version) > 18:  # TF Serving parses versions as int64
                raise RequestError(f"version must be a 64-bit integer, got {version[:40]}...")
            if int(version) != model.version:
                raise RequestError(
                    f"version {int(version)} of model {name!r} is not loaded; loaded version: "
                    f"{model.version}",
                    404,
                )
        return model

    async def _read_photos(
        self, request: Request, model: ServedModel, parsed: PredictRequest
    ) -> list[Any]:
        """The photo pipeline's answers in a worker thread, stopped if the client leaves."""
        assert self.photos is not None
        gone = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, gone))
        try:
            return await run_in_threadpool(self.photos.read, model.export, parsed, gone)
        except ClientLeftError as err:
            raise _ClientGoneError from err
        finally:
            if not gone.is_set():
                watcher.cancel()
                gone.set()

    def _status(self, model: ServedModel) -> dict[str, Any]:
        return {
            "model_version_status": [
                {
                    "version": str(model.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def _metadata(self, model: ServedModel) -> dict[str, Any]:
        return {
            "model_spec": {
                "name": self.settings.name,
                "signature_name": "",
                "version": str(model.version),
            },
            "metadata": {"signature_def": {"signature_def": model.signature_defs}},
        }

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()) or len(declared) > 18:
                raise RequestError(f"invalid Content-Length header: {declared[:40]!r}")
            if int(declared) > limit:
                raise RequestError(_too_large(int(declared), limit), 413)
        chunks, total = [], 0
        stream = request.stream()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(
                        anext(stream, None), self.settings.body_timeout_s
                    )
                except asyncio.TimeoutError as err:
                    raise RequestError(
                        f"request body stalled: nothing received for "
                        f"{self.settings.body_timeout_s:g} s",
                        408,
                    ) from err
                if chunk is None:
                    break
                total += len(chunk)
                if total > limit:
                    raise RequestError(_too_large(total, limit), 413)
                chunks.append(chunk)
        except ClientDisconnect as err:
            raise _ClientGoneError from err
        return b"".join(chunks)

    async def _predict(self, request: Request, model: ServedModel) -> Response:
        body = await self._read_body(request)
        parsed = parse_predict_request(
            body,
            model.signatures,
            BYTES_SIGNATURE,
            self.settings.max_instances,
            self.settings.max_pixels,
        )
        if self.photos is not None and parsed.signature.kind == "bytes":
            answers = await self._read_photos(request, model, parsed)
            names = list(model.export.class_names)
            return JSONResponse(photo_response(answers, names, parsed.columnar))
        # The key holds the model object: a batch runs on the version it was parsed for.
        outputs = await self.batcher.submit((model, *parsed.batch_key), parsed, len(parsed))
        return JSONResponse(format_response(outputs, parsed.columnar, model.output_names))


async def _watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Set `gone` when the client closes its connection (polled every 50 ms)."""
    while not gone.is_set():
        message = await request.receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
        await asyncio.sleep(0.05)


def _run_batch(key: tuple[Any, ...], requests: Sequence[PredictRequest]) -> list[Any]:
    model, *batch_key = key
    return model.run_batch(tuple(batch_key), requests)


def _too_large(size: int, limit: int) -> str:
    return (
        f"request body too large: {size} bytes exceeds the {limit} byte limit "
        "(--max-body-mb); send fewer or smaller images per request"
    )


def load_versions(model_base: str, settings: ServeSettings, warm_up: bool = True) -> ModelVersions:
    """Load (and warm up) the newest version under `model_base`, ready to follow the base."""
    from emotion_tf.serve.model import ServedModel

    def load(path: Path) -> ServedModel:
        model = ServedModel(path, trust=settings.trust_model)
        if warm_up:
            model.warm_up()
        return model

    return ModelVersions(model_base, load)


def create_app(
    model_base: str,
    settings: ServeSettings | None = None,
    photos: PhotoReader | None = None,
    warm_up: bool = True,
) -> Starlette:
    """Load the newest version under `model_base` and return the ASGI app serving it."""
    settings = settings or ServeSettings()
    versions = load_versions(model_base, settings, warm_up)
    return ServingApp(versions, settings, photos).build()

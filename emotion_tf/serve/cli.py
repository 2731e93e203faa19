"""The `emotion-tf serve` command."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from emotion_tf.cli_base import command, model_option, trust_model_option
from emotion_tf.errors import EmotionTFError
from emotion_tf.faces.cli import detector_options, face_options, photo_options, photo_rule_option
from emotion_tf.pipeline.limits import DEFAULT_MAX_REQUEST_S

if TYPE_CHECKING:
    from emotion_tf.pipeline.options import PhotoOptions
    from emotion_tf.serve.app import ServeSettings
    from emotion_tf.serve.connections import ConnectionLimits

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


SERVE_MODEL_HELP = (
    "An export base (integer version folders; the newest is served), one version folder, a run "
    "directory, or a packaged .npz. Default: the happy/sad model packaged with emotion-tf."
)


# The server's limits and timeouts: (option, default, type, help), each shown with its default.
LIMIT_OPTIONS: tuple[tuple[str, Any, click.ParamType, str], ...] = (
    ("--max-batch-size", 32, click.IntRange(1), "Most instances joined into one model call."),
    (
        "--batch-timeout-ms",
        5.0,
        click.FloatRange(0),
        "Longest a request waits for others to share its model call.",
    ),
    (
        "--max-queue",
        256,
        click.IntRange(1),
        "Most instances waiting for the model; past it requests get 503.",
    ),
    ("--max-instances", 64, click.IntRange(1), "Most instances in one request (more: 400)."),
    ("--max-body-mb", 16.0, click.FloatRange(0.001), "Largest request body in MiB (more: 413)."),
    ("--max-pixels", 4096 * 4096, click.IntRange(1), "Largest image (width x height) accepted."),
    (
        "--max-request-seconds",
        DEFAULT_MAX_REQUEST_S,
        click.FloatRange(0.1),
        "Longest one request may keep the photo pipeline busy (checked between photos); past "
        "it the request gets 413.",
    ),
    (
        "--poll-seconds",
        1.0,
        click.FloatRange(0),
        "How often to look for new and deleted versions under MODEL_BASE (0: never); like "
        "TF Serving's --file_system_poll_wait_seconds.",
    ),
    (
        "--body-timeout",
        30.0,
        click.FloatRange(0.1),
        "Seconds a request body may stall before the request gets 408.",
    ),
    (
        "--max-connections",
        1000,
        click.IntRange(1),
        "Most open client connections (lowered to fit the file descriptor limit); beyond it "
        "the oldest idle connection is closed, or the new one gets 503 if none is idle.",
    ),
    (
        "--header-timeout",
        10.0,
        click.FloatRange(0.1),
        "Seconds a connection may take to send a request's headers before it is closed.",
    ),
    (
        "--keep-alive",
        5.0,
        click.FloatRange(0.1),
        "Seconds an idle kept-alive connection stays open.",
    ),
)


def limit_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add every option of LIMIT_OPTIONS (in the order listed)."""
    for flag, default, kind, help_text in reversed(LIMIT_OPTIONS):
        func = click.option(flag, default=default, show_default=True, type=kind, help=help_text)(
            func
        )
    return func


@command("serve")
@functools.partial(model_option, help=SERVE_MODEL_HELP)
@click.option("--name", default="emotion", show_default=True, help="Model name in the URLs.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8501,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on (TF Serving's REST port is 8501).",
)
@limit_options
@trust_model_option
@click.option("--access-log", is_flag=True, help="Log every request (costs throughput).")
@face_options
@detector_options
@photo_rule_option
def serve(
    model: str | None,
    name: str,
    host: str,
    port: int,
    max_batch_size: int,
    batch_timeout_ms: float,
    max_queue: int,
    max_instances: int,
    max_body_mb: float,
    max_pixels: int,
    max_request_seconds: float,
    poll_seconds: float,
    body_timeout: float,
    max_connections: int,
    header_timeout: float,
    keep_alive: float,
    trust_model: bool,
    access_log: bool,
    faces: str,
    fallback: str,
    face_margin: float | None,
    detector: str | None,
    align: bool,
    photo_rule: str,
    context: float,
) -> None:
    """Serve a model with TensorFlow Serving's REST API: the packaged model, or the newest
    export under --model. Photos sent to the bytes signature get the answer `emotion-tf
    predict --per-photo` gives them, with the same options (--faces none: each image is read
    whole through the export, as TF Serving reads it). Example request:

    \b
      curl http://127.0.0.1:8501/v1/models/emotion
    """
    from emotion_tf.serve.app import ServeSettings
    from emotion_tf.serve.connections import ConnectionLimits

    settings = ServeSettings(
        name=name,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
        max_queue=max(max_queue, max_batch_size, max_instances),
        max_instances=max_instances,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_pixels=max_pixels,
        poll_seconds=poll_seconds,
        body_timeout_s=body_timeout,
        trust_model=trust_model,
    )
    settings.validate()
    limits = ConnectionLimits(max_connections, header_timeout, keep_alive)
    from emotion_tf.packaged.saved_model import servable_model_base

    with servable_model_base(model) as model_base:
        run_server(
            model_base,
            settings,
            host,
            port,
            access_log,
            photo_options(faces, fallback, face_margin, detector, align, photo_rule, context),
            limits,
            max_request_seconds,
        )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_server(
    model_base: str,
    settings: ServeSettings,
    host: str,
    port: int,
    access_log: bool = False,
    photos: PhotoOptions | None = None,
    limits: ConnectionLimits | None = None,
    max_request_s: float = DEFAULT_MAX_REQUEST_S,
) -> None:
    """Bind the port, load the model, then serve until interrupted (Ctrl-C or SIGTERM stops
    it gracefully, and the caller's temporary files are removed). `photos`: the photo
    pipeline's options for encoded images (None or faces "none": TF Serving's behaviour).

    The port is bound first, so a port in use fails at once rather than after the model loads.
    """
    import uvicorn

    from emotion_tf.serve.app import ServingApp, load_versions
    from emotion_tf.serve.connections import (
        ConnectionGuard,
        ConnectionLimits,
        bind_listener,
        fitting_connection_cap,
        guarded_protocol,
    )

    if host not in _LOOPBACK:
        log.warning(
            "binding to %s: the server has no authentication; put it behind a proxy you trust",
            host,
        )
    guard = ConnectionGuard(limits or ConnectionLimits())
    try:
        sock = bind_listener(host, port, guard)  # before loading: a taken port fails at once
    except (OSError, UnicodeError) as err:
        reason = (
            "address already in use" if getattr(err, "errno", None) == errno.EADDRINUSE else err
        )
        raise EmotionTFError(f"cannot listen on {host}:{port}: {reason}") from err
    try:
        from emotion_tf.serve.photos import PhotoReader

        reader = None
        if photos is not None and photos.faces != "none":
            reader = PhotoReader(photos, max_request_s)
            reader.warm_up()  # the detector is built now, not on the first request
        serving = ServingApp(load_versions(model_base, settings), settings, reader)
        # After loading: the model's own open files count against the descriptor limit.
        guard.limits = dataclasses.replace(
            guard.limits, max_connections=fitting_connection_cap(guard.limits.max_connections)
        )
        guard.on_count = serving.metrics.connections.set
        log.info(
            "serving %r on http://%s:%d/v1/models/%s",
            settings.name,
            host,
            port,
            settings.name,
        )
        config = uvicorn.Config(
            serving.build(),
            http=guarded_protocol(guard),
            timeout_keep_alive=guard.limits.keep_alive_s,
            log_level="info",
            access_log=access_log,
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        # uvicorn shuts down gracefully on Ctrl-C or SIGTERM, then raises the signal again: as
        # a KeyboardInterrupt for both, so the caller's `finally` blocks run (temporary exports).
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                server.run(sockets=[sock])
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        sock.close()
    if not server.started:
        raise EmotionTFError(f"could not start the server on {host}:{port} (see the log above)")

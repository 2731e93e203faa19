"""The `emotion-tf serve` command."""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import TYPE_CHECKING

import click

from emotion_tf.cli_base import command, model_option
from emotion_tf.errors import EmotionTFError

if TYPE_CHECKING:
    from emotion_tf.serve.app import ServeSettings

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


SERVE_MODEL_HELP = (
    "An export base (integer version folders; the newest is served), one version folder, a run "
    "directory, or a packaged .npz. Default: the happy/sad model packaged with emotion-tf."
)


@command("serve")
@functools.partial(model_option, help=SERVE_MODEL_HELP)
@click.option("--name", default="emotion", show_default=True, help="Model name in the URLs.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--max-batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Most instances joined into one model call.",
)
@click.option(
    "--batch-timeout-ms",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Longest a request waits for others to share its model call.",
)
@click.option(
    "--max-queue",
    default=256,
    show_default=True,
    type=click.IntRange(1),
    help="Most instances waiting for the model; past it requests get 503.",
)
@click.option(
    "--max-instances",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="Most instances in one request (more: 400).",
)
@click.option(
    "--max-body-mb",
    default=16.0,
    show_default=True,
    type=click.FloatRange(0.001),
    help="Largest request body in MiB (more: 413).",
)
@click.option(
    "--max-pixels",
    default=4096 * 4096,
    show_default=True,
    type=click.IntRange(1),
    help="Largest image (width x height) accepted.",
)
@click.option("--access-log", is_flag=True, help="Log every request (costs throughput).")
@click.option(
    "--faces",
    type=click.Choice(["none", "auto", "detect"]),
    default="none",
    show_default=True,
    help="none: images are face crops (TF Serving's behaviour). auto/detect: find faces in "
    "each photo and classify the largest (auto keeps images that already look like crops).",
)
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
    access_log: bool,
    faces: str,
) -> None:
    """Serve a model with TensorFlow Serving's REST API: the packaged model, or the newest
    export under --model. Example request:

    \b
      curl http://127.0.0.1:8501/v1/models/emotion
    """
    from emotion_tf.serve.app import ServeSettings

    settings = ServeSettings(
        name=name,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
        max_queue=max(max_queue, max_batch_size, max_instances),
        max_instances=max_instances,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_pixels=max_pixels,
    )
    settings.validate()
    from emotion_tf.packaged.saved_model import servable_model_base

    with servable_model_base(model) as model_base:
        run_server(model_base, settings, host, port, access_log, faces)


def run_server(
    model_base: str,
    settings: ServeSettings,
    host: str,
    port: int,
    access_log: bool = False,
    faces: str = "none",
) -> None:
    """Load the model, then serve until interrupted (Ctrl-C stops it gracefully)."""
    import uvicorn

    from emotion_tf.serve.app import create_app

    if host not in _LOOPBACK:
        log.warning(
            "binding to %s: the server has no authentication; put it behind a proxy you trust",
            host,
        )
    hook = None
    if faces != "none":
        from emotion_tf.export import read_metadata, resolve_export
        from emotion_tf.serve.faces import largest_face_hook

        meta = read_metadata(resolve_export(model_base))
        hook = largest_face_hook(int(meta["channels"]), int(meta["input_size"]), faces)
    app = create_app(model_base, settings, image_hook=hook)
    log.info(
        "serving %r on http://%s:%d/v1/models/%s",
        settings.name,
        host,
        port,
        settings.name,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on Ctrl-C, then re-raises the signal: a clean stop.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise EmotionTFError(f"could not start the server on {host}:{port} (see the log above)")

"""`serve` against hostile and careless clients, and TF Serving's routing, polling and metrics.

Every case goes over a real loopback socket. No client input may give a 5xx; the catch-all
handler counts what reaches it, and the fuzz test fails if anything does.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import random
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from emotion_tf.export import export_model
from emotion_tf.serve.app import ServeSettings, ServingApp, load_versions
from emotion_tf.serve.connections import (
    ConnectionGuard,
    ConnectionLimits,
    bind_listener,
    guarded_protocol,
)
from emotion_tf.serve.model import ServedModel
from tests.test_animation import hostile_gif
from tests.test_serve import free_port, running_server

SETTINGS = ServeSettings(
    max_batch_size=8,
    batch_timeout_ms=5.0,
    max_queue=64,
    max_instances=8,
    max_body_bytes=256 * 1024,
    body_timeout_s=2.0,
)


@pytest.fixture(scope="module")
def export_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emotion_tf.config import ModelConfig
    from emotion_tf.model.alexnet import build_alexnet

    base = tmp_path_factory.mktemp("hardening") / "export"
    model = build_alexnet(ModelConfig(input_size=32, width=0.0625), 2)
    export_model(model, base, ["happy", "sad"], warmup=False)
    return base


@pytest.fixture(scope="module")
def served_model(export_base: Path) -> ServedModel:
    return ServedModel(export_base)


@pytest.fixture(scope="module")
def app(served_model: ServedModel) -> ServingApp:
    return ServingApp(served_model, SETTINGS)


@pytest.fixture(scope="module")
def url(app: ServingApp) -> Iterator[str]:
    with running_server(app.build()) as base:
        yield base


def png(color: tuple[int, int, int] = (200, 30, 30), size: int = 40) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG")
    return out.getvalue()


def b64(blob: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(blob).decode("ascii")}


def raw_http(url: str, request: bytes, read: bool = True) -> bytes:
    """Send `request` as is on a fresh connection; the answer's bytes (b"" if none)."""
    host, port = url.removeprefix("http://").split(":")
    chunks = []
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(request)
            if not read:
                return b""
            # A server that answers without reading the request (503 at the connection cap)
            # may have reset the connection already; its answer is still in our buffer.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionError:  # the server may close before reading everything we sent
            pass
    return b"".join(chunks)


def internal_errors(app: ServingApp) -> float:
    return app.metrics.internal_errors._value.get()


# -- no 5xx from client input ----------------------------------------------------------------


def hostile_bodies() -> list[Any]:
    digits = "9" * 5000
    good = b64(png())
    cases: list[Any] = [
        f'{{"instances": [{digits}]}}'.encode(),
        f'{{"signature_name": {digits}, "instances": [1]}}'.encode(),
        f'{{"signature_name": {"9" * 4000}, "instances": [1]}}'.encode(),
        f'{{"inputs": {{"image_bytes": [{digits}]}}}}'.encode(),
        f'{{"signature_name": "serving_images", "instances": [[[[{"9" * 4000}]]]]}}'.encode(),
        b'{"signature_name": "serving_images", "instances": [[[[1e999, -1e999, 0]]]]}',
        b'{"signature_name": "serving_images", "instances": [[[[NaN, Infinity, 0]]]]}',
        b'{"instances": [{"b64": "' + b"A" * 10 + b'"}]}',
        b'{"instances": [{"b64": null}], "signature_name": null}',
        {"instances": [good], "parameters": {"confidence": 0.5}},  # ignored, as TF Serving does
        {"instances": [{"image_bytes": good, "extra": 1}]},
        {"inputs": {"image_bytes": good}},
        {"instances": [b64(hostile_gif(60, 1024))]},
    ]
    rng = random.Random(14)
    atoms: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x", "serving_images", [], {}, good]
    keys = ["instances", "inputs", "signature_name", "b64", "image_bytes", "images", "x"]

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return rng.choice(atoms)
        if roll < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 3))}

    cases += [{rng.choice(keys[:3]): value(0), rng.choice(keys): value(0)} for _ in range(150)]
    return cases


def test_fuzzed_requests_never_reach_the_catch_all(app: ServingApp, url: str) -> None:
    statuses = []
    for body in hostile_bodies():
        data = body if isinstance(body, bytes) else json.dumps(body)
        answer = requests.post(url + "/v1/models/emotion:predict", data=data, timeout=60)
        statuses.append(answer.status_code)
        assert answer.status_code < 500, (str(body)[:200], answer.text[:300])
        assert "error" in answer.json() or answer.status_code == 200
    assert statuses[9] == 200 and statuses[-151] == 200  # "parameters" ignored; GIF: 1st frame
    for path in (
        "/v1/models/emotion/versions/%C2%B2",  # a superscript two: not an integer
        "/v1/models/emotion/versions/%D9%A1",  # Arabic-Indic one: not version 1
        "/v1/models/emotion/versions/" + "9" * 5000,
        "/v1/models/emotion/versions/%ff%fe",
        "/v1/models/%00",
        "/v1/models/emotion/labels/%C2%B2/metadata",
    ):
        answer = requests.get(url + path, timeout=30)
        assert answer.status_code in (400, 404), (path, answer.text)
    raw_requests = [
        b"POST /v1/models/emotion:predict HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + b"9" * 5000
        + b"\r\n\r\n",
        b"POST /v1/models/emotion:predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /v1/models/emotion HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 100_000 + b"\r\n\r\n",
        b"BREW /v1/models/emotion HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100),  # a TLS hello
    ]
    for request in raw_requests:
        answer = raw_http(url, request)
        assert not answer.startswith(b"HTTP/1.1 5"), (request[:80], answer[:300])
    assert internal_errors(app) == 0
    assert requests.get(url + "/healthz", timeout=30).status_code == 200


def test_unicode_digits_are_not_versions(url: str) -> None:
    assert requests.get(url + "/v1/models/emotion/versions/1", timeout=30).status_code == 200
    for digit in ("%C2%B2", "%D9%A1", "%EF%BC%91"):  # superscript 2, Arabic-Indic 1, fullwidth 1
        answer = requests.get(url + f"/v1/models/emotion/versions/{digit}", timeout=30)
        assert answer.status_code == 400 and "Malformed request" in answer.json()["error"]


def test_client_hanging_up_mid_body_is_quiet(
    app: ServingApp, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("uvicorn.error").addHandler(caplog.handler)  # it does not propagate
    head = b"POST /v1/models/emotion:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    for _ in range(5):
        raw_http(url, head + b'{"instances": [', read=False)
    # The server has seen the hang-ups once it has answered later requests on other sockets.
    for _ in range(3):
        assert requests.get(url + "/healthz", timeout=30).status_code == 200
    deadline = time.monotonic() + 30
    while app.metrics.requests.labels("predict", "499")._value.get() < 5:
        assert time.monotonic() < deadline, "hang-ups were not noticed"
        time.sleep(0.05)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert internal_errors(app) == 0


def test_stalled_body_gets_408(url: str) -> None:
    head = b"POST /v1/models/emotion:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head + b'{"instances"')
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its 408
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"stalled" in answer


def test_truncated_image_error_names_the_reason(url: str) -> None:
    jpeg = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(jpeg, format="JPEG")
    truncated = jpeg.getvalue()[: len(jpeg.getvalue()) // 2]
    answer = requests.post(
        url + "/v1/models/emotion:predict", json={"instances": [b64(truncated)]}, timeout=60
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error.startswith("instances[0]: image could not be decoded")
    assert "Graph execution" not in error and "node" not in error.lower(), error


# -- TF Serving's routing --------------------------------------------------------------------


def test_routes_follow_tf_serving(url: str) -> None:
    body = {"instances": [b64(png())]}
    answer = requests.post(url + "/V1/Models/emotion:PREDICT", json=body, timeout=60)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
    assert requests.get(url + "/v1/MODELS/emotion/Metadata", timeout=30).status_code == 200
    for method, path in (
        ("PUT", "/v1/models/emotion"),
        ("DELETE", "/v1/models/emotion"),
        ("POST", "/v1/models/emotion"),
        ("GET", "/v1/models/emotion:predict"),
        ("POST", "/v1/models/emotion:explode"),
        ("GET", "/v1/whatever"),
        ("PATCH", "/v1/models/emotion:predict"),
    ):
        answer = requests.request(method, url + path, timeout=30)
        assert answer.status_code == 400, (method, path, answer.text)
        assert answer.json()["error"] == f"Malformed request: {method} {path}"
    answer = requests.get(url + "/v1/models", timeout=30, allow_redirects=False)
    assert answer.status_code == 400 and "Missing model name" in answer.json()["error"]
    assert requests.get(url + "/nothing/here", timeout=30).status_code == 404
    for path in ("/v1/models/emotion", "/v1/models/emotion/metadata", "/healthz"):
        head = requests.head(url + path, timeout=30)
        assert head.status_code == 200 and head.content == b"", path
        assert int(head.headers["content-length"]) == len(requests.get(url + path).content)


def test_prometheus_metrics(app: ServingApp, url: str) -> None:
    body = {"instances": [b64(png()), b64(png((0, 0, 200)))]}
    assert requests.post(url + "/v1/models/emotion:predict", json=body, timeout=60).ok
    requests.post(url + "/v1/models/emotion:predict", data=b"[", timeout=60)
    answer = requests.get(url + "/monitoring/prometheus/metrics", timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    for line in (
        'emotion_tf_requests_total{code="200",route="predict"}',
        'emotion_tf_requests_total{code="400",route="predict"}',
        'emotion_tf_request_latency_seconds_bucket{le="+Inf",route="predict"}',
        'emotion_tf_batch_size_bucket{le="2.0"}',
        "emotion_tf_queue_depth 0.0",
        "emotion_tf_model_version 1.0",
        "emotion_tf_internal_errors_total 0.0",
    ):
        assert line in text, line


# -- versions and the port -------------------------------------------------------------------


def test_new_and_deleted_versions_are_followed_without_failed_requests(
    export_base: Path, tmp_path: Path
) -> None:
    base = tmp_path / "export"
    shutil.copytree(export_base, base)
    settings = ServeSettings(**{**SETTINGS.__dict__, "poll_seconds": 0.1})
    app = ServingApp(load_versions(str(base), settings, warm_up=False), settings)
    body = {"instances": [b64(png())]}
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            for _ in range(100_000):  # bounded; stopped by `stop` long before
                if stop.is_set():
                    return
                answer = session.post(url + "/v1/models/emotion:predict", json=body, timeout=60)
                if answer.status_code != 200:
                    failures.append(answer.text)

    def wait_for_version(version: int) -> None:
        deadline = time.monotonic() + 120
        while requests.get(url + "/v1/models/emotion", timeout=30).json()["model_version_status"][
            0
        ]["version"] != str(version):
            assert time.monotonic() < deadline, f"version {version} was never served"
            time.sleep(0.05)

    with running_server(app.build()) as url:
        clients = [threading.Thread(target=client) for _ in range(3)]
        for thread in clients:
            thread.start()
        try:
            staging = tmp_path / "staging"
            shutil.copytree(base / "1", staging)
            staging.rename(base / "7")  # how exports appear: renamed into place
            wait_for_version(7)
            answer = requests.get(url + "/v1/models/emotion/versions/7/metadata", timeout=30)
            assert answer.json()["model_spec"]["version"] == "7"
            shutil.rmtree(base / "7")
            wait_for_version(1)
            shutil.rmtree(base / "1")
            deadline = time.monotonic() + 120
            while requests.get(url + "/v1/models/emotion", timeout=30).status_code != 404:
                assert time.monotonic() < deadline, "model never unloaded"
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=120)
        failures = [f for f in failures if "no version" not in f]  # after the last deletion
        assert failures == []
        assert app.metrics.reloads.labels("loaded")._value.get() == 2
        assert app.metrics.reloads.labels("unloaded")._value.get() == 1


def test_taken_port_fails_before_loading_the_model(export_base: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "emotion_tf.cli",
                "serve",
                "--model",
                str(export_base),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 2, result.stderr
    assert "address already in use" in result.stderr
    assert "loaded" not in result.stderr  # ServedModel logs "loaded <path>" once loaded
    assert free_port() > 0


# -- connections -----------------------------------------------------------------------------


@contextlib.contextmanager
def guarded_server(app: ServingApp, limits: ConnectionLimits) -> Iterator[str]:
    """Like `running_server`, with the connection guard `emotion-tf serve` uses."""
    import uvicorn

    guard = ConnectionGuard(limits, on_count=app.metrics.connections.set)
    sock = bind_listener("127.0.0.1", 0, guard)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app.build(), log_level="warning", http=guarded_protocol(guard))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (blocks until it does, or the socket times out)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_idle_and_slow_header_connections_are_closed(served_model: ServedModel) -> None:
    settings = ServeSettings(**{**SETTINGS.__dict__, "body_timeout_s": 60.0})
    app = ServingApp(served_model, settings)
    with guarded_server(app, ConnectionLimits(header_timeout_s=0.5)) as url:
        host, port = url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)), timeout=60)
        slow.sendall(b"GET /v1/models/emo")  # headers never finished
        assert closed_by_server(slow)
        slow.close()
    app = ServingApp(served_model, settings)
    with guarded_server(app, ConnectionLimits(max_connections=3, header_timeout_s=600)) as url:
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=60) for _ in range(3)]
        wait_until(lambda: app.metrics.connections._value.get() == 3, "idle sockets not seen")
        # A fourth connection evicts the oldest idle one instead of waiting behind them.
        assert requests.get(url + "/v1/models/emotion", timeout=60).status_code == 200
        assert closed_by_server(idle[0])
        # Busy connections are never evicted: beyond the cap, a new connection gets 503.
        busy = []
        head = (
            b"POST /v1/models/emotion:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"
        )
        for _ in range(3):
            sock = socket.create_connection((host, int(port)), timeout=60)
            sock.sendall(head)
            busy.append(sock)
        wait_until(lambda: app.metrics.in_flight._value.get() == 3, "requests not in flight")
        answer = raw_http(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503") and b"too many open connections" in answer
        for sock in [*idle, *busy]:
            sock.close()


SERVE_UNDER_LOW_FD_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from emotion_tf.cli import main
sys.argv = ["emotion-tf", "serve", "--model", sys.argv[1], "--port", sys.argv[2],
            "--header-timeout", "600"]
main()
"""


def test_reachable_with_300_idle_sockets_under_256_descriptors(export_base: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE_UNDER_LOW_FD_LIMIT, str(export_base), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    idle: list[socket.socket] = []
    try:

        def healthy() -> bool:
            assert server.poll() is None, server.communicate()[1][-3000:]
            with contextlib.suppress(requests.ConnectionError):
                return requests.get(url + "/healthz", timeout=30).status_code == 200
            return False

        deadline = time.monotonic() + 300
        while not healthy():
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=60))
        body = {"instances": [b64(png())]}
        for _ in range(3):
            answer = requests.post(url + "/v1/models/emotion:predict", json=body, timeout=60)
            assert answer.status_code == 200, answer.text
    finally:
        for sock in idle:
            sock.close()
        server.terminate()
        try:
            _, stderr = server.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
            pytest.fail(f"server did not stop on SIGTERM: {stderr[-2000:]}")
    assert "at most" in stderr and "file descriptor limit 256" in stderr


def test_at_the_cap_an_idle_connection_is_evicted_only_for_a_waiting_one() -> None:
    """asyncio calls accept until it would block; that last call, with nobody waiting, must
    not close an idle connection (under load, connections arriving one per loop turn lost
    their oldest neighbour this way)."""

    class IdleProtocol:
        def __init__(self) -> None:
            self.closed = False
            self.transport = self

        def idle(self) -> bool:
            return True

        def close(self) -> None:
            self.closed = True

    guard = ConnectionGuard(ConnectionLimits(max_connections=1))
    listener = bind_listener("127.0.0.1", 0, guard)
    listener.listen(8)
    listener.setblocking(False)
    idle = IdleProtocol()
    guard.live[idle] = 0.0
    guard.changed(+1)
    try:
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody is waiting
        assert not idle.closed and idle in guard.live
        client = socket.create_connection(listener.getsockname()[:2], timeout=10)
        try:
            deadline = time.monotonic() + 10  # a hang guard: the connection is queued at once
            while not select.select([listener], [], [], 0.05)[0]:
                assert time.monotonic() < deadline
            with pytest.raises(BlockingIOError):  # makes room, then asyncio accepts next turn
                listener.accept()
            assert idle.closed and idle not in guard.live
        finally:
            client.close()
    finally:
        listener.close()

"""Benchmark: `emotion-tf serve` under a bounded loopback load test, and under hostile clients.

Starts `emotion-tf serve` as a subprocess on a free 127.0.0.1 port, then, for each concurrency
level, sends a bounded number of predict requests (or stops at a time limit) and reports
latency percentiles, requests and images per second, the non-2xx count (target 0: every
request is valid), the mean batch size the server formed, and the server's CPU seconds. Then:
- a burst of malformed requests (bad JSON, 5,000-digit integers, Unicode version paths, bodies
  over the limit, an animated GIF of many large frames, a truncated JPEG);
- a mixed load of good and hostile requests (`--mixed-clients`, `--mixed-seconds`) during which
  a new version is renamed into the model base: it must be served within `--poll-seconds` plus
  its load time, with no failed good request.
The server's resident memory (RSS) is sampled throughout: idle, peak under load, peak under the
malformed burst, peak under the mixed load (target: within 1.5x of idle). Nothing leaves the
loopback interface; the server serves a copy of the model base, so the benchmark can add
versions to it.

    python -m benchmarks.serve                                   # untrained 64 px model
    python -m benchmarks.serve --model runs/default/export --requests 500 --concurrency 1,8,32
    python -m benchmarks.serve --smoke                           # seconds: proves it runs

The client threads share the machine with the server: on a 2-core box the figures are a
lower bound for a server with the machine to itself.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.images import WorkDir, image_source, make_jpegs
from benchmarks.recipe import default_config
from benchmarks.report import Figure, Report, base_parser, log
from benchmarks.timing import percentile

HOST = "127.0.0.1"  # loopback only, by design


def parse_args() -> Any:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", help="export base to serve (default: export a fresh model)")
    parser.add_argument("--input-size", type=int, default=64, help="fresh model's input size")
    parser.add_argument("--width", type=float, default=0.25, help="fresh model's width factor")
    parser.add_argument("--requests", type=int, default=300, help="requests per level")
    parser.add_argument(
        "--concurrency", default="1,4,16", help="comma-separated client counts, one level each"
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per level, at most")
    parser.add_argument("--images-per-request", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=96, help="JPEG side in pixels")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=5.0)
    parser.add_argument("--warmup-requests", type=int, default=10, help="per level, not counted")
    parser.add_argument("--burst-requests", type=int, default=400, help="malformed burst size")
    parser.add_argument("--mixed-clients", type=int, default=32)
    parser.add_argument("--mixed-seconds", type=float, default=30.0)
    parser.add_argument("--poll-seconds", type=float, default=1.0)
    parser.add_argument(
        "--faces",
        default="auto",
        choices=["auto", "detect", "none"],
        help="serve's --faces (default auto: the photo pipeline, as predict reads photos)",
    )
    parser.add_argument(
        "--photos",
        help="a folder of real photos to send (one per request), e.g. "
        "../shared/data/web-happy-sad/validation; default: synthetic JPEGs",
    )
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.concurrency, args.time_limit = 20, "1,4", 20.0
        args.input_size, args.width, args.warmup_requests = 32, 0.0625, 3
        args.burst_requests, args.mixed_clients, args.mixed_seconds = 40, 4, 6.0
    return args


def export_fresh_model(root: Path, input_size: int, width: float) -> Path:
    """An untrained AlexNet export: serving speed does not depend on the weights' values."""
    from emotion_tf.export import export_model
    from emotion_tf.model.alexnet import build_alexnet

    config = default_config(f"model.input_size={input_size}", f"model.width={width}")
    model = build_alexnet(config.model, 2)
    base = root / "export"
    export_model(model, base, ["happy", "sad"], metadata={"note": "python -m benchmarks.serve"})
    return base


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """`emotion-tf serve` in a subprocess, stopped with Ctrl-C (SIGINT) at the end."""

    def __init__(self, model: Path, args: Any):
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "emotion_tf.cli",
            "serve",
            "-m",
            str(model),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--max-batch-size",
            str(args.max_batch_size),
            "--batch-timeout-ms",
            str(args.batch_timeout_ms),
            "--max-queue",
            str(max(256, 4 * args.max_batch_size)),
            "--poll-seconds",
            str(args.poll_seconds),
            "--faces",
            args.faces,
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.log_path = Path(args.work_dir_path) / "server.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become healthy in time")

    def get(self, path: str) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def rss_mb(self) -> float:
        """Resident memory of the server process now (Linux /proc), in MiB."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError):
            pass
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def request_bodies(paths: list[Path], per_request: int, count: int) -> list[bytes]:
    blobs = [base64.b64encode(p.read_bytes()).decode("ascii") for p in paths]
    bodies = []
    for index in range(count):
        instances = [
            {"b64": blobs[(index * per_request + j) % len(blobs)]} for j in range(per_request)
        ]
        bodies.append(json.dumps({"instances": instances}).encode())
    return bodies


def run_level(
    port: int, bodies: list[bytes], clients: int, total: int, time_limit: float
) -> dict[str, Any]:
    """`clients` threads send `total` requests (or until `time_limit`); latencies and statuses."""
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    answers: dict[int, set[bytes]] = {}  # body index -> the distinct 200 bodies it got
    deadline = time.monotonic() + time_limit
    path = "/v1/models/emotion:predict"
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        nonlocal issued
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if issued >= total:
                        return
                    index = issued
                    issued += 1
                started = time.perf_counter()
                try:
                    connection.request("POST", path, bodies[index % len(bodies)], headers)
                    response = connection.getresponse()
                    text = response.read()
                    status = response.status
                    if status == 200:
                        with lock:
                            answers.setdefault(index % len(bodies), set()).add(text)
                except (OSError, http.client.HTTPException) as err:
                    connection.close()
                    connection = http.client.HTTPConnection(HOST, port, timeout=60)
                    status = 0  # counted as non-2xx
                    with lock:
                        errors.append(f"{type(err).__name__}: {err}")
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    wall0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall0
    return {
        "latencies": latencies,
        "statuses": statuses,
        "errors": errors[:10],
        "wall": wall,
        "completed": len(latencies),
        "timed_out": len(latencies) < total,
        "most_distinct_answers": max((len(v) for v in answers.values()), default=0),
    }


class PeakRss:
    """Samples the server's RSS in a thread while in a `with` block; `peak` is the largest."""

    def __init__(self, server: Server, interval: float = 0.05):
        self.server, self.interval = server, interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = self.server.rss_mb()
            if rss == rss:
                self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def hostile_gif(frames: int = 100, size: int = 2048) -> bytes:
    """A small file of `frames` frames of size x size: one frame's image block repeated."""
    import io
    import struct

    from PIL import Image

    frame = Image.new("P", (size, size), 0)
    frame.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    out = io.BytesIO()
    frame.save(out, format="GIF")
    data = out.getvalue()
    (packed,) = struct.unpack_from("<B", data, 10)
    head_end = 13 + (3 << ((packed & 7) + 1))
    return data[:head_end] + data[head_end:-1] * frames + b"\x3b"


def hostile_requests(good_jpeg: bytes) -> list[tuple[str, str, bytes]]:
    """(method, path, body) of requests a server must answer with a 4xx, never a 5xx."""
    predict = "/v1/models/emotion:predict"

    def b64(blob: bytes) -> str:
        return base64.b64encode(blob).decode("ascii")

    digits = "9" * 5000
    return [
        ("POST", predict, b'{"instances": ['),
        ("POST", predict, f'{{"instances": [{digits}]}}'.encode()),
        ("POST", predict, f'{{"signature_name": {digits}, "instances": [1]}}'.encode()),
        ("POST", predict, json.dumps({"instances": [{"b64": b64(hostile_gif())}]}).encode()),
        ("POST", predict, json.dumps({"instances": [{"b64": b64(good_jpeg[:200])}]}).encode()),
        ("POST", predict, json.dumps({"instances": [{"b64": "A" * (17 << 20)}]}).encode()),
        ("POST", "/v1/models/emotion:explode", b"{}"),
        ("GET", "/v1/models/emotion/versions/%C2%B2", b""),
        ("GET", "/v1/models/emotion/versions/%D9%A1", b""),
        ("GET", "/v1/models/other", b""),
    ]


def run_mixed(
    port: int,
    good: list[bytes],
    hostile: list[tuple[str, str, bytes]],
    clients: int,
    seconds: float,
    on_halfway: Any = None,
) -> dict[str, Any]:
    """`clients` threads alternate good and hostile requests for `seconds` (bounded)."""
    lock = threading.Lock()
    counts = {"good": 0, "good_failed": 0, "hostile": 0, "5xx": 0, "transport_errors": 0}
    failures: list[str] = []
    deadline = time.monotonic() + seconds

    def one(connection: Any, method: str, path: str, body: bytes) -> int:
        headers = {"Content-Type": "application/json"}
        connection.request(method, path, body if method == "POST" else None, headers)
        response = connection.getresponse()
        response.read()
        if response.getheader("connection", "").lower() == "close":
            connection.close()
        return response.status

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=120)
        for step in range(1_000_000):  # bounded; the deadline ends it long before
            if time.monotonic() >= deadline:
                break
            is_good = step % 2 == 0
            if is_good:
                method, path, body = "POST", "/v1/models/emotion:predict", good[step % len(good)]
            else:
                method, path, body = hostile[(index + step) % len(hostile)]
            try:
                status = one(connection, method, path, body)
            except (OSError, http.client.HTTPException) as err:
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=120)
                status = 0
                with lock:
                    counts["transport_errors"] += is_good
                    if is_good:
                        failures.append(f"{type(err).__name__}: {err}")
            with lock:
                counts["good" if is_good else "hostile"] += 1
                counts["5xx"] += status >= 500
                if is_good and status != 200:
                    counts["good_failed"] += 1
                    if status:
                        failures.append(f"status {status}")
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    if on_halfway is not None:
        time.sleep(seconds / 2)
        on_halfway()
    for thread in threads:
        thread.join()
    return {**counts, "failures": failures[:10]}


def main() -> int:
    args = parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    report = Report("serve", args)
    with WorkDir(args.work_dir, "emotion-serve-bench-") as work:
        args.work_dir_path = str(work)
        source = (
            Path(args.model)
            if args.model
            else export_fresh_model(work, args.input_size, args.width)
        )
        # Serve a copy: the mixed phase adds a version to the base it serves.
        from emotion_tf.export import resolve_export

        version_dir = resolve_export(source)
        model = work / "served"
        shutil.copytree(version_dir, model / "1")
        images = make_jpegs(work / "images", 32, args.image_size, 3, seed=0)
        bodies = request_bodies(images, args.images_per_request, 64)
        if args.photos:
            photos = sorted(p for p in Path(args.photos).rglob("*") if p.is_file())
            bodies = request_bodies(photos, 1, len(photos))
        report.details.update(
            {
                "model": str(model),
                "images": args.photos or f"{image_source()}, {args.image_size}px JPEG",
                "faces": args.faces,
                "images_per_request": args.images_per_request,
                "body_bytes_mean": sum(map(len, bodies)) / len(bodies),
            }
        )
        log(f"starting emotion-tf serve on {model}")
        server = Server(model, args)
        try:
            server.wait_ready()
            time.sleep(1.0)
            report.details["rss_idle_mb"] = round(server.rss_mb(), 1)
            _, metadata = server.get("/v1/models/emotion/metadata")
            report.details["model_spec"] = metadata["model_spec"]
            report.details["levels"] = {}
            peak_load = PeakRss(server).__enter__()
            for clients in levels:
                run_level(server.port, bodies, clients, args.warmup_requests, args.time_limit)
                stats0, cpu0 = server.get("/healthz")[1]["batching"], server.cpu_seconds()
                log(f"concurrency {clients}: {args.requests} requests, limit {args.time_limit:g}s")
                result = run_level(server.port, bodies, clients, args.requests, args.time_limit)
                stats1, cpu1 = server.get("/healthz")[1]["batching"], server.cpu_seconds()
                add_level_figures(report, clients, result, stats0, stats1, cpu1 - cpu0, args)
            peak_load.__exit__()
            report.details["rss_peak_load_mb"] = round(peak_load.peak, 1)
            hostile_phases(report, server, model, images, bodies, args)
        finally:
            code = server.stop()
        report.details["server_exit_code"] = code
        if code != 0:
            log(f"server exited with {code}; log: {server.log_path.read_text()[-1500:]}")
    report.finish()
    return 0 if all(f.status != "FAIL" for f in report.figures) else 1


def hostile_phases(
    report: Report, server: Server, base: Path, images: list[Path], bodies: list[bytes], args: Any
) -> None:
    """Malformed burst, then the mixed load with a new version renamed into `base` halfway."""
    idle = report.details["rss_idle_mb"]
    hostile = hostile_requests(images[0].read_bytes())
    log(f"malformed burst: {args.burst_requests} requests from {args.mixed_clients} clients")
    with PeakRss(server) as burst_peak:
        burst = _burst(server.port, hostile, args.burst_requests, args.mixed_clients)
    report.add(Figure("serve_malformed_5xx", float(burst["5xx"]), "responses", "<=", 0))
    report.add(
        Figure(
            "serve_rss_peak_malformed_ratio",
            burst_peak.peak / idle,
            "x idle",
            "<=",
            1.5,
            note=f"idle {idle:.0f} MiB, peak {burst_peak.peak:.0f} MiB",
        )
    )
    switch: dict[str, float] = {}

    def add_version() -> None:
        staging = base.parent / ".staging-2"
        shutil.copytree(base / "1", staging)
        staging.rename(base / "2")  # appears whole, as `emotion-tf export` writes versions
        switch["added"] = time.monotonic()
        deadline = switch["added"] + args.mixed_seconds + 120
        while time.monotonic() < deadline:
            status = server.get("/v1/models/emotion")[1]["model_version_status"][0]
            if status["version"] == "2":
                switch["served"] = time.monotonic()
                return
            time.sleep(0.05)

    log(f"mixed load: {args.mixed_clients} clients for {args.mixed_seconds:g}s, new version")
    with PeakRss(server) as mixed_peak:
        mixed = run_mixed(
            server.port, bodies, hostile, args.mixed_clients, args.mixed_seconds, add_version
        )
    seconds = switch.get("served", float("nan")) - switch.get("added", float("nan"))
    report.add(Figure("serve_mixed_5xx", float(mixed["5xx"]), "responses", "<=", 0))
    report.add(
        Figure(
            "serve_mixed_good_not_200",
            float(mixed["good_failed"]),
            "requests",
            "<=",
            0,
            note=f"{mixed['good']} good, {mixed['hostile']} hostile requests",
        )
    )
    report.add(
        Figure(
            "serve_rss_peak_mixed_ratio",
            mixed_peak.peak / idle,
            "x idle",
            "<=",
            1.5,
            note=f"idle {idle:.0f} MiB, peak {mixed_peak.peak:.0f} MiB",
        )
    )
    report.add(
        Figure(
            "serve_new_version_served_after",
            seconds,
            "s",
            "<=",
            args.poll_seconds + args.mixed_seconds,
            note="renamed into the base during the mixed load",
        )
    )
    report.add(
        Figure(
            "serve_rss_peak_load_ratio",
            report.details["rss_peak_load_mb"] / idle,
            "x idle",
            note=f"peak {report.details['rss_peak_load_mb']:.0f} MiB",
        )
    )
    report.details["malformed_burst"] = burst
    report.details["mixed"] = mixed


def _burst(port: int, hostile: list[tuple[str, str, bytes]], total: int, clients: int) -> dict:
    """`total` hostile requests from `clients` threads, as fast as they go."""
    per_client = max(1, total // clients)
    counts = {"5xx": 0, "sent": 0, "statuses": {}}
    lock = threading.Lock()

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=120)
        for step in range(per_client):
            method, path, body = hostile[(index + step) % len(hostile)]
            try:
                connection.request(method, path, body if method == "POST" else None)
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=120)
                status = 0
            with lock:
                counts["sent"] += 1
                counts["5xx"] += status >= 500
                counts["statuses"][status] = counts["statuses"].get(status, 0) + 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def add_level_figures(
    report: Report,
    clients: int,
    result: dict[str, Any],
    stats0: dict[str, Any],
    stats1: dict[str, Any],
    server_cpu: float,
    args: Any,
) -> None:
    latencies_ms = [x * 1000 for x in result["latencies"]]
    completed, wall = result["completed"], result["wall"]
    non_2xx = sum(n for status, n in result["statuses"].items() if not 200 <= status < 300)
    batches = stats1["batches"] - stats0["batches"]
    instances = stats1["instances"] - stats0["instances"]
    prefix = f"serve_c{clients}"
    note = f"{completed} requests in {wall:.1f}s" + (
        " (time limit hit)" if result["timed_out"] else ""
    )
    report.add(Figure(f"{prefix}_latency_p50", percentile(latencies_ms, 50), "ms", note=note))
    report.add(Figure(f"{prefix}_latency_p99", percentile(latencies_ms, 99), "ms"))
    report.add(Figure(f"{prefix}_requests_per_s", completed / wall if wall else 0.0, "req/s"))
    report.add(
        Figure(
            f"{prefix}_images_per_s",
            completed * args.images_per_request / wall if wall else 0.0,
            "img/s",
        )
    )
    report.add(Figure(f"{prefix}_non_2xx", float(non_2xx), "responses", "<=", 0))
    fivexx = sum(n for status, n in result["statuses"].items() if status >= 500 or status == 0)
    report.add(Figure(f"{prefix}_5xx", float(fivexx), "responses", "<=", 0))
    report.add(
        Figure(
            f"{prefix}_distinct_answers_per_input",
            float(result["most_distinct_answers"]),
            "answers",
            "<=",
            1,
            note="the most different response bodies one input got (same input, same answer)",
        )
    )
    report.add(
        Figure(
            f"{prefix}_mean_batch_size",
            instances / batches if batches else float("nan"),
            "images",
            note=f"{batches} model calls",
        )
    )
    report.add(
        Figure(
            f"{prefix}_server_cpu_per_request",
            1000 * server_cpu / completed if completed else float("nan"),
            "ms CPU",
        )
    )
    report.details["levels"][clients] = {
        "completed": completed,
        "wall_seconds": round(wall, 3),
        "statuses": result["statuses"],
        "errors": result["errors"],
        "batches": batches,
        "server_cpu_seconds": round(server_cpu, 2),
        "latency_ms": {q: percentile(latencies_ms, q) for q in (50, 90, 99)},
    }


if __name__ == "__main__":
    sys.exit(main())

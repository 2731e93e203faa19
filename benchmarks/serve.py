"""Benchmark: `emotion-tf serve` under a bounded loopback load test.

Starts `emotion-tf serve` as a subprocess on a free 127.0.0.1 port, then, for each concurrency
level, sends a fixed number of TF Serving REST predict requests (`{"instances": [{"b64": ...}]}`
with real JPEG faces from ../shared, or synthetic faces without it) from that many client
threads, each on its own keep-alive connection, and stops at the request count or the time
limit, whichever comes first. Reports per level: p50 and p99 latency, requests/s, images/s,
the non-2xx count (target 0: every request is valid), the mean batch size the server formed,
and the server's CPU seconds. Nothing leaves the loopback interface.

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
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.concurrency, args.time_limit = 20, "1,4", 20.0
        args.input_size, args.width, args.warmup_requests = 32, 0.0625, 3
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
                    response.read()
                    status = response.status
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
    }


def main() -> int:
    args = parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    report = Report("serve", args)
    with WorkDir(args.work_dir, "emotion-serve-bench-") as work:
        args.work_dir_path = str(work)
        model = (
            Path(args.model)
            if args.model
            else export_fresh_model(work, args.input_size, args.width)
        )
        images = make_jpegs(work / "images", 32, args.image_size, 3, seed=0)
        bodies = request_bodies(images, args.images_per_request, 64)
        report.details.update(
            {
                "model": str(model),
                "images": f"{image_source()}, {args.image_size}px JPEG",
                "images_per_request": args.images_per_request,
                "body_bytes_mean": sum(map(len, bodies)) / len(bodies),
            }
        )
        log(f"starting emotion-tf serve on {model}")
        server = Server(model, args)
        try:
            server.wait_ready()
            _, metadata = server.get("/v1/models/emotion/metadata")
            report.details["model_spec"] = metadata["model_spec"]
            report.details["levels"] = {}
            for clients in levels:
                run_level(server.port, bodies, clients, args.warmup_requests, args.time_limit)
                stats0, cpu0 = server.get("/healthz")[1]["batching"], server.cpu_seconds()
                log(f"concurrency {clients}: {args.requests} requests, limit {args.time_limit:g}s")
                result = run_level(server.port, bodies, clients, args.requests, args.time_limit)
                stats1, cpu1 = server.get("/healthz")[1]["batching"], server.cpu_seconds()
                add_level_figures(report, clients, result, stats0, stats1, cpu1 - cpu0, args)
        finally:
            code = server.stop()
        report.details["server_exit_code"] = code
        if code != 0:
            log(f"server exited with {code}; log: {server.log_path.read_text()[-1500:]}")
    report.finish()
    return 0 if all(f.status != "FAIL" for f in report.figures) else 1


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

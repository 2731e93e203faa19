"""Two `emotion-tf train` worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy.

Checks: both workers finish, the chief's export works, the non-chief leaves nothing behind,
and losses and exported predictions match a single-worker run with the same global batch.
Dropout is off here: each replica draws its own masks, so with dropout the runs would differ
by design, not by a bug.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from emotion_tf.export import LoadedExport
from tests.conftest import tiny_overrides

pytestmark = pytest.mark.slow

TIMEOUT = 600  # seconds for the whole two-worker run; the workers are killed after that
EPOCHS = 2


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def train_command(data_dir: Path, run_dir: Path, strategy: str) -> list[str]:
    overrides = tiny_overrides(
        run_dir,
        data_dir,
        **{
            "train.strategy": strategy,
            "train.epochs": EPOCHS,
            "train.learning_rate": 0.003,
            "model.dropout": 0.0,
        },
    )
    args = [x for item in overrides for x in ("--set", item)]
    return [sys.executable, "-m", "emotion_tf.cli", "train", *args]


def run_all(commands: list[tuple[list[str], dict[str, str]]]) -> list[tuple[int, str, float]]:
    """Start every command at once and wait for all of them: (returncode, output, seconds).

    All are killed when one fails or when TIMEOUT passes, so a stuck worker cannot hang CI.
    Output goes to files, not pipes, so a chatty process never blocks on a full pipe.
    """
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in commands]
        processes = [
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
            )
            for (command, env), log in zip(commands, logs)
        ]
        finished: dict[int, float] = {}
        try:
            while len(finished) < len(processes) and time.monotonic() - started < TIMEOUT:
                for i, process in enumerate(processes):
                    if i not in finished and process.poll() is not None:
                        finished[i] = time.monotonic() - started
                if any(processes[i].returncode != 0 for i in finished):
                    break
                time.sleep(0.2)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        results = []
        for i, (process, log) in enumerate(zip(processes, logs)):
            log.seek(0)
            output = log.read().decode(errors="replace")
            returncode = process.returncode if i in finished else -9  # -9: killed by the test
            results.append((returncode, output, finished.get(i, -1.0)))
    return results


@pytest.fixture(scope="module")
def cluster_runs(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("multi_worker")
    run_dir = root / "cluster"  # one run dir for both workers, as on a shared file system
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    commands = []
    for index in range(2):
        tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        commands.append(
            (
                train_command(tiny_data_dir, run_dir, "multi_worker"),
                {"TF_CONFIG": json.dumps(tf_config)},
            )
        )
    single_dir = root / "single"
    commands.append((train_command(tiny_data_dir, single_dir, "default"), {}))
    results = run_all(commands)
    for returncode, output, seconds in results:
        assert returncode == 0, (returncode, seconds, output[-4000:])
    return {"run_dir": run_dir, "single": single_dir, "results": results}


def test_both_workers_finish_and_only_the_chief_writes(cluster_runs) -> None:
    run_dir = cluster_runs["run_dir"]
    chief_log, worker_log = cluster_runs["results"][0][1], cluster_runs["results"][1][1]
    for name, (_, _, seconds) in zip(("chief", "worker 1", "single"), cluster_runs["results"]):
        print(f"{name} finished after {seconds:.0f}s (wall clock; all three ran at once)")
    assert "CollectiveAllReduceStrategy with 2 replica(s) as worker-0" in chief_log
    assert "as worker-1" in worker_log
    assert "export: " in chief_log and "export: " not in worker_log
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["strategy"] == "CollectiveAllReduceStrategy" and info["replicas"] == 2
    assert info["task"] == "worker-0"
    assert not list(run_dir.glob(".worker-*"))  # the non-chief's temp dir is gone
    assert not (run_dir / "backup").exists()
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))


def test_losses_match_a_single_worker_run(cluster_runs) -> None:
    cluster = json.loads((cluster_runs["run_dir"] / "history.json").read_text())
    single = json.loads((cluster_runs["single"] / "history.json").read_text())
    assert abs(single[-1]["loss"] - single[0]["loss"]) > 1e-3  # the model did train
    figures = []
    for a, b in zip(cluster, single):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (a["epoch"], key)
        figures.append((a["epoch"], a["loss"], b["loss"], a["val_loss"], b["val_loss"]))
    print("epoch, loss 2 workers, loss 1 worker, val_loss 2 workers, val_loss 1 worker")
    for row in figures:
        print(*row)


def test_chief_export_works_and_matches(cluster_runs) -> None:
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    cluster = LoadedExport(cluster_runs["run_dir"])
    single = LoadedExport(cluster_runs["single"])
    assert cluster.version == 1 and cluster.class_names == ["happy", "sad"]
    np.testing.assert_allclose(
        cluster.predict_images(images)["probabilities"],
        single.predict_images(images)["probabilities"],
        atol=1e-4,
    )

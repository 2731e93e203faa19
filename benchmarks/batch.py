"""Benchmark: photos per second of `emotion-tf batch` (Apache Beam, DirectRunner) against
`emotion-tf predict` on the same web photos, side by side in one run.

Each command runs as a user runs it (a subprocess, its start-up included) over the same files:
`predict --per-photo --format jsonl`, then `batch --per-photo` with `--direct_num_workers` 1
and 2 (`--direct_running_mode=multi_processing`: one process per worker, each loading the model
once). Figures: photos/s of each, Beam (2 workers) over predict (target >= 0.8), and the scaling
from 1 to 2 workers. Both write every row, so the work compared is the same.

    python -m benchmarks.batch                       # ../shared/data web photos (1,302)
    python -m benchmarks.batch --photos DIR ...      # other folders
    python -m benchmarks.batch --smoke               # a few photos: proves it runs
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import REPO_ROOT, Figure, Report, base_parser, log

SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_PHOTOS = [SHARED / "web-happy-sad", SHARED / "web-happy-sad-more"]


def parse_args(argv: list[str] | None) -> Any:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", help="folders of photos (default: the web photos)")
    parser.add_argument("--workers", default="1,2", help="direct_num_workers values to run")
    return parser.parse_args(argv)


def _run(command: list[str]) -> float:
    log(" ".join(command[:6]) + (" ..." if len(command) > 6 else ""))
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: some unreadable files, still a finished run
        raise SystemExit(f"{command[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report("batch", args)
    folders = [Path(p) for p in args.photos] if args.photos else DEFAULT_PHOTOS
    files = sorted(str(p) for f in folders for p in f.rglob("*") if p.is_file())
    if args.smoke:
        files = files[:6]
    cli = [sys.executable, "-m", "emotion_tf.cli"]
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        listing = Path(work) / "inputs"
        listing.mkdir()
        for index, path in enumerate(files):  # one folder of links: the same files for both
            (listing / f"{index:05d}{Path(path).suffix}").symlink_to(Path(path).resolve())
        report.details["photos"] = len(files)
        predict_s = _run([*cli, "predict", "--per-photo", "--format", "jsonl", str(listing)])
        report.add(Figure("batch.predict_photos_per_s", len(files) / predict_s, "photo/s"))
        rates: dict[int, float] = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            out = Path(work) / f"beam{workers}"
            wall = _run(
                [
                    *cli,
                    "batch",
                    str(listing),
                    "--output",
                    str(out),
                    "--per-photo",
                    "--runner=DirectRunner",
                    f"--direct_num_workers={workers}",
                    "--direct_running_mode=multi_processing",
                ]
            )
            rows = sum(1 for p in out.glob("rows-*") for line in p.read_text().splitlines() if line)
            dead = sum(1 for p in out.glob("dead_letters-*") for _ in p.read_text().splitlines())
            report.details[f"beam_{workers}_rows_dead"] = [rows, dead]
            rates[workers] = len(files) / wall
            report.add(Figure(f"batch.beam_w{workers}_photos_per_s", rates[workers], "photo/s"))
        best = rates.get(2, max(rates.values()))
        ratio = best / (len(files) / predict_s)
        report.add(Figure("batch.beam_vs_predict", ratio, "ratio", ">=", 0.8, "2 workers"))
        if 1 in rates and 2 in rates:
            report.add(Figure("batch.beam_scaling_w2_over_w1", rates[2] / rates[1], "ratio"))
    report.details["files"] = json.dumps(len(files))
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())

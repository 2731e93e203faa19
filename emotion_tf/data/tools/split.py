"""Split a folder of class folders into train/validation(/test), stratified and reproducible."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

from emotion_tf.data.files import discover_classes, list_images
from emotion_tf.errors import DataError
from emotion_tf.io_utils import staged_output

MANIFEST = "split.json"


@dataclasses.dataclass
class SplitResult:
    """Where each split went and how many images of each class it holds."""

    out_dir: Path
    counts: dict[str, dict[str, int]]  # split -> class -> images
    linked: bool

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "counts": self.counts, "linked": self.linked}


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digests(paths: list[str], workers: int = 4) -> list[str]:
    """SHA-256 of each file, in order (threads: hashing releases the GIL)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(file_digest, paths))


def split_counts(total: int, validation: float, test: float) -> tuple[int, int]:
    """(validation, test) image counts for a class of `total` images.

    Rounded to the nearest image, but a non-zero fraction gets at least one image while train
    keeps at least one.
    """
    n_test = round(total * test)
    n_val = round(total * validation)
    if test > 0 and n_test == 0 and total >= 3:
        n_test = 1
    if validation > 0 and n_val == 0 and total - n_test >= 2:
        n_val = 1
    return n_val, n_test


def assign_groups(
    groups: list[list[str]], validation: float, test: float, rng: random.Random
) -> dict[str, list[str]]:
    """Deal shuffled groups of identical files to test, then validation, then train.

    Byte-identical copies stay together, so a split never leaks into another. A group goes to
    test or validation only while it fits in that split's share.
    """
    order = list(groups)
    rng.shuffle(order)
    total = sum(len(g) for g in order)
    n_val, n_test = split_counts(total, validation, test)
    result: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for group in order:
        for split, target in (("test", n_test), ("validation", n_val), ("train", total)):
            if len(result[split]) + len(group) <= target or split == "train":
                result[split].extend(group)
                break
    return result


def split_dataset(
    src: Path,
    out: Path,
    validation: float = 0.33,
    test: float = 0.0,
    seed: int = 1337,
    link: bool = False,
    overwrite: bool = False,
) -> SplitResult:
    """Write `out/train|validation[|test]/<class>/...` from `src/<class>/...`.

    Each class is split on its own (stratified), in an order fixed by `seed`. Files are copied,
    or symlinked with `link`. Paths inside a class folder are kept, so names never collide.
    """
    src, out = Path(src), Path(out)
    if not 0.0 < validation < 1.0:
        raise DataError(f"--validation must be in (0, 1). Received: validation={validation}")
    if not 0.0 <= test < 1.0 or validation + test >= 1.0:
        raise DataError(
            f"--test must be in [0, 1) and validation + test < 1. "
            f"Received: validation={validation}, test={test}"
        )
    src_resolved, out_resolved = src.resolve(), out.resolve()
    if out_resolved == src_resolved or src_resolved in out_resolved.parents:
        raise DataError(f"output {out} must not be inside the source folder {src}")
    classes = discover_classes(src)
    splits = ["train", "validation"] + (["test"] if test > 0 else [])
    plan: dict[str, dict[str, list[str]]] = {split: {} for split in splits}
    for name in classes:
        images, _ = list_images(src / name)
        if not images:
            raise DataError(f"class folder has no images: {src / name}")
        by_digest: dict[str, list[str]] = {}
        for path, digest in zip(images, digests(images)):
            by_digest.setdefault(digest, []).append(path)
        groups = sorted(by_digest.values())
        assigned = assign_groups(groups, validation, test, random.Random(f"{seed}/{name}"))
        for split in splits:
            plan[split][name] = sorted(assigned[split])
        if not plan["train"][name]:
            raise DataError(f"class folder {src / name} has too few images to split")

    counts = {s: {c: len(plan[s][c]) for c in classes} for s in splits}
    with staged_output(out, overwrite) as staging:
        for split in splits:
            for name in classes:
                (staging / split / name).mkdir(parents=True)
                for path in plan[split][name]:
                    relative = os.path.relpath(path, src / name)
                    target = staging / split / name / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if link:
                        os.symlink(os.path.abspath(path), target)
                    else:
                        shutil.copy2(path, target)
        manifest = {
            "source": str(src_resolved),
            "seed": seed,
            "validation": validation,
            "test": test,
            "linked": link,
            "counts": counts,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return SplitResult(out, counts, link)

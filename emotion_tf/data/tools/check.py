"""Scan a data set for what silently spoils training: leakage, label conflicts, bad files.

`check_dataset` reads every image once and reports counts and class imbalance, files that do
not decode, byte-identical duplicates (within a split, across splits = leakage, across
classes = label conflicts), extensions that do not match the content, and image sizes and
modes. `train` runs `scan_duplicates` on its splits and warns before it starts.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import io
import os
import stat
from pathlib import Path
from typing import Any

from emotion_tf.data.files import (
    LabelledFiles,
    check_image,
    discover_classes,
    list_images,
)
from emotion_tf.data.tools.split import digests
from emotion_tf.errors import DataError

KNOWN_SPLITS = ("train", "validation", "test")
WHOLE = "."  # split name used when DATA_DIR is itself a folder of class folders
EXTENSIONS_OF_FORMAT = {
    "JPEG": (".jpg", ".jpeg"),
    "MPO": (".jpg", ".jpeg"),  # multi-picture JPEG from cameras; decodes as JPEG
    "PNG": (".png",),
    "BMP": (".bmp",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
}


@dataclasses.dataclass
class FileEntry:
    """One image file and where it sits in the data set."""

    split: str
    class_name: str
    path: str


@dataclasses.dataclass
class DuplicateGroup:
    """Byte-identical files (same SHA-256)."""

    sha256: str
    files: list[FileEntry]

    @property
    def splits(self) -> list[str]:
        return sorted({f.split for f in self.files})

    @property
    def classes(self) -> list[str]:
        return sorted({f.class_name for f in self.files})

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "files": [dataclasses.asdict(f) for f in self.files]}


@dataclasses.dataclass
class Duplicates:
    """Duplicate groups sorted by what they spoil."""

    within_split: list[DuplicateGroup] = dataclasses.field(default_factory=list)
    leakage: list[DuplicateGroup] = dataclasses.field(default_factory=list)  # across splits
    label_conflicts: list[DuplicateGroup] = dataclasses.field(default_factory=list)  # classes

    def warnings(self) -> list[str]:
        """One line per problem that makes validation figures wrong, for `train` to log."""
        lines = []
        if self.leakage:
            files = sum(len(g.files) for g in self.leakage)
            lines.append(
                f"leakage: {len(self.leakage)} image(s) appear byte-identical in more than one "
                f"split ({files} files, e.g. {_example(self.leakage[0])}); validation scores "
                "will be optimistic"
            )
        if self.label_conflicts:
            files = sum(len(g.files) for g in self.label_conflicts)
            lines.append(
                f"label conflicts: {len(self.label_conflicts)} image(s) appear byte-identical "
                f"under different classes ({files} files, e.g. {_example(self.label_conflicts[0])})"
            )
        return lines


def _example(group: DuplicateGroup) -> str:
    return " == ".join(f"{f.split}/{f.class_name}/{os.path.basename(f.path)}" for f in group.files)


def group_duplicates(entries: list[FileEntry], hashes: list[str]) -> Duplicates:
    """Sort groups of files with equal hashes into within-split, leakage and label conflicts.

    A group can be both leakage and a label conflict; it is listed under each.
    """
    by_hash: dict[str, list[FileEntry]] = collections.defaultdict(list)
    for entry, digest in zip(entries, hashes):
        by_hash[digest].append(entry)
    result = Duplicates()
    for digest, files in sorted(by_hash.items(), key=lambda item: item[1][0].path):
        if len(files) < 2:
            continue
        group = DuplicateGroup(digest, files)
        if len(group.classes) > 1:
            result.label_conflicts.append(group)
        if len(group.splits) > 1:
            result.leakage.append(group)
        if len(group.classes) == 1 and len(group.splits) == 1:
            result.within_split.append(group)
    return result


def entries_of(splits: dict[str, LabelledFiles]) -> list[FileEntry]:
    return [
        FileEntry(split, files.class_names[label], path)
        for split, files in splits.items()
        for path, label in zip(files.paths, files.labels)
    ]


def scan_duplicates(splits: dict[str, LabelledFiles], workers: int = 4) -> Duplicates:
    """Hash every file of `splits` and group the byte-identical ones (what `train` runs)."""
    entries = entries_of(splits)
    hashes = digests([e.path for e in entries], workers)
    return group_duplicates(entries, hashes)


@dataclasses.dataclass
class FileFacts:
    """What one read of a file tells: its hash, format, size and mode, or why it is bad."""

    sha256: str | None = None
    image_format: str | None = None
    width: int = 0
    height: int = 0
    mode: str | None = None
    problem: str | None = None


def inspect_file(path: str, max_pixels: int) -> FileFacts:
    """Hash `path`, read its header with PIL, and decode it as training would."""
    from PIL import Image

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO named .jpg would block open()
            return FileFacts(problem="not a regular file")
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return FileFacts(problem=f"cannot read: {err.strerror or err}")
    facts = FileFacts(sha256=hashlib.sha256(data).hexdigest())
    try:
        with Image.open(io.BytesIO(data)) as probe:
            facts.image_format = probe.format
            facts.width, facts.height = probe.size
            facts.mode = probe.mode
    except Exception:  # PIL raises many error types; the decode check gives the reason
        pass
    facts.problem = check_image(path, max_pixels)
    return facts


def extension_mismatch(path: str, image_format: str | None) -> str | None:
    """Why `path`'s extension does not fit its content, or None."""
    if image_format is None:
        return None
    extension = os.path.splitext(path)[1].lower()
    if extension in EXTENSIONS_OF_FORMAT.get(image_format, ()):
        return None
    return f"{image_format} content in a {extension or 'extension-less'} file"


def find_splits(data_dir: Path) -> dict[str, Path]:
    """train/validation/test sub-folders of `data_dir`, or `data_dir` itself as one split."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data dir not found: {data_dir}")
    found = {name: data_dir / name for name in KNOWN_SPLITS if (data_dir / name).is_dir()}
    return found or {WHOLE: data_dir}


def _list_all(folder: Path) -> LabelledFiles:
    """Like `files.list_split`, but an empty class folder counts as 0 instead of an error."""
    names = discover_classes(folder)
    paths: list[str] = []
    labels: list[int] = []
    ignored: list[str] = []
    for index, name in enumerate(names):
        images, others = list_images(folder / name)
        paths.extend(images)
        labels.extend([index] * len(images))
        ignored.extend(others)
    return LabelledFiles(names, paths, labels, ignored)


def check_dataset(data_dir: Path, max_pixels: int = 50_000_000, workers: int = 4) -> dict:
    """The full report on `data_dir` as a JSON-ready dict (see `format_report`)."""
    data_dir = Path(data_dir)
    splits = {split: _list_all(folder) for split, folder in find_splits(data_dir).items()}
    entries = entries_of(splits)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        facts = list(pool.map(lambda e: inspect_file(e.path, max_pixels), entries))

    undecodable = [
        {"path": e.path, "reason": f.problem} for e, f in zip(entries, facts) if f.problem
    ]
    mismatched = []
    for entry, fact in zip(entries, facts):
        reason = extension_mismatch(entry.path, fact.image_format)
        if reason:
            mismatched.append({"path": entry.path, "reason": reason})
    hashed = [(e, f.sha256) for e, f in zip(entries, facts) if f.sha256 is not None]
    duplicates = group_duplicates([e for e, _ in hashed], [h for _, h in hashed])
    readable = [f for f in facts if f.image_format is not None]
    sizes = collections.Counter(f"{f.width}x{f.height}" for f in readable)
    modes = collections.Counter(f.mode for f in readable)
    formats = collections.Counter(f.image_format for f in readable)

    counts = {split: files.counts() for split, files in splits.items()}
    class_sets = {split: files.class_names for split, files in splits.items()}
    report = {
        "data_dir": str(data_dir),
        "total_files": len(entries),
        "counts": counts,
        "imbalance": {split: imbalance(c) for split, c in counts.items()},
        "class_mismatch": len({tuple(c) for c in class_sets.values()}) > 1,
        "classes": class_sets,
        "undecodable": undecodable,
        "extension_mismatch": mismatched,
        "duplicates_within_split": [g.to_dict() for g in duplicates.within_split],
        "leakage": [g.to_dict() for g in duplicates.leakage],
        "label_conflicts": [g.to_dict() for g in duplicates.label_conflicts],
        "sizes": dict(sizes.most_common()),
        "modes": dict(modes.most_common()),
        "formats": dict(formats.most_common()),
        "empty_classes": [
            f"{split}/{name}" for split, c in counts.items() for name, n in c.items() if n == 0
        ],
        "non_images": [p for files in splits.values() for p in files.ignored],
    }
    report["problems"] = problem_count(report)
    return report


def imbalance(counts: dict[str, int]) -> dict[str, Any]:
    """Majority class, its share (the accuracy of always guessing it) and max/min ratio."""
    total = sum(counts.values())
    if not total:
        return {"majority": None, "majority_share": 0.0, "ratio": None}
    majority = max(counts, key=lambda name: counts[name])
    smallest = min(counts.values())
    return {
        "majority": majority,
        "majority_share": round(counts[majority] / total, 4),
        "ratio": round(counts[majority] / smallest, 3) if smallest else None,
    }


def problem_count(report: dict) -> int:
    """Files or groups that need attention (imbalance and duplicates within a split excluded)."""
    return (
        len(report["undecodable"])
        + len(report["extension_mismatch"])
        + len(report["leakage"])
        + len(report["label_conflicts"])
        + int(report["class_mismatch"])
        + len(report["empty_classes"])
    )


def _group_line(group: dict, root: str) -> str:
    return "  " + " == ".join(os.path.relpath(f["path"], root) for f in group["files"])


def format_report(report: dict, show: int = 10) -> str:
    """A readable summary of `check_dataset` output, listing up to `show` examples each."""
    root = report["data_dir"]
    classes = sorted({c for counts in report["counts"].values() for c in counts})
    width = max([len(c) for c in classes] + [7]) + 2
    lines = [f"data check: {root} ({report['total_files']} image files)", ""]
    header = f"{'split':<12}" + "".join(f"{c:>{width}}" for c in classes)
    lines.append(header + f"{'total':>9}  majority (share, ratio)")
    for split, counts in report["counts"].items():
        total = sum(counts.values())
        info = report["imbalance"][split]
        ratio = "-" if info["ratio"] is None else f"{info['ratio']:.2f}"
        lines.append(
            f"{split:<12}"
            + "".join(f"{counts.get(c, '-'):>{width}}" for c in classes)
            + f"{total:>9}  {info['majority']} ({info['majority_share']:.1%}, {ratio}:1)"
        )
    if report["class_mismatch"]:
        lines.append("WARNING: the splits have different class folders")
    for name in report["empty_classes"]:
        lines.append(f"WARNING: class folder {name} has no images")

    def section(title: str, items: list, render) -> None:
        lines.append("")
        lines.append(f"{title}: {len(items)}")
        lines.extend(render(item) for item in items[:show])
        if len(items) > show:
            lines.append(f"  ... and {len(items) - show} more (--format json lists all)")

    def file_line(item: dict) -> str:
        return f"  {os.path.relpath(item['path'], root)}: {item['reason']}"

    section("undecodable files", report["undecodable"], file_line)
    section("extension does not match content", report["extension_mismatch"], file_line)
    section(
        "duplicate groups within a split",
        report["duplicates_within_split"],
        lambda g: _group_line(g, root),
    )
    section(
        "leakage (identical files in several splits)",
        report["leakage"],
        lambda g: _group_line(g, root),
    )
    section(
        "label conflicts (identical files in several classes)",
        report["label_conflicts"],
        lambda g: _group_line(g, root),
    )
    lines.append("")
    for key, title in (("sizes", "image sizes"), ("modes", "modes"), ("formats", "formats")):
        items = list(report[key].items())
        shown = ", ".join(f"{k} ({v})" for k, v in items[:show])
        more = f", ... {len(items) - show} more" if len(items) > show else ""
        lines.append(f"{title + ':':<13}{shown or '-'}{more}")
    if report["non_images"]:
        lines.append(f"non-image files ignored: {len(report['non_images'])}")
    lines.append("")
    lines.append(
        "no problems found" if not report["problems"] else f"{report['problems']} problem(s) found"
    )
    return "\n".join(lines)

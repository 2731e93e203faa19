"""Reaction summaries per group of photos: a group key from each path, one `RunSummary` per
group, written as JSON, CSV and a small HTML page with a bar chart.

Group specs (`--summary-by`): `folder` (the photo's folder name), `prefix:P` (the first folder
after the path prefix P, e.g. `prefix:gs://bucket/campaigns/`), `regex:R` (R's first group, or
its whole match, searched in the path). A path the spec does not match is grouped under
`(other)`, so no photo is left out of the totals.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from emotion_tf.errors import ConfigError
from emotion_tf.pipeline.run import PhotoAnswer
from emotion_tf.pipeline.summary import RunSummary

OTHER = "(other)"
GroupKey = Callable[[str], str]


def group_key(spec: str) -> GroupKey:
    """The function that names a path's group under `spec` (see the module docstring)."""
    kind, _, value = spec.partition(":")
    if kind == "folder" and not value:
        return _folder
    if kind == "prefix" and value:

        def after_prefix(path: str) -> str:
            if not path.startswith(value):
                return OTHER
            rest = path[len(value) :].lstrip("/")
            return rest.split("/", 1)[0] if "/" in rest else OTHER

        return after_prefix
    if kind == "regex" and value:
        try:
            pattern = re.compile(value)
        except re.error as err:
            raise ConfigError(
                f"--summary-by regex does not compile ({err}). Received: {value!r}"
            ) from err

        def by_regex(path: str) -> str:
            found = pattern.search(path)
            if found is None:
                return OTHER
            return found.group(1) if pattern.groups else found.group(0)

        return by_regex
    raise ConfigError(
        f"--summary-by must be 'folder', 'prefix:PATH' or 'regex:PATTERN'. Received: {spec!r}"
    )


def _folder(path: str) -> str:
    """The name of the folder holding `path` (local or gs://, s3:// URLs)."""
    parts = re.split(r"[\\/]", path)
    return parts[-2] if len(parts) > 1 and parts[-2] else OTHER


def summarize_groups(
    answers: Iterable[PhotoAnswer], key: GroupKey, class_names: list[str]
) -> dict[str, RunSummary]:
    """One summary per group, groups sorted by name."""
    groups: dict[str, RunSummary] = {}
    for answer in answers:
        groups.setdefault(key(answer.name), RunSummary(class_names)).add(answer)
    return dict(sorted(groups.items()))


def groups_json(groups: dict[str, RunSummary]) -> str:
    return json.dumps({name: summary.to_dict() for name, summary in groups.items()}, indent=2)


def groups_csv(groups: dict[str, RunSummary], class_names: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["group", "photos", "faces", "answered", "no_face", "unreadable"]
    for name in class_names:
        header += [f"{name}_share", f"{name}_ci95_low", f"{name}_ci95_high"]
    writer.writerow([*header, "mean_confidence"])
    for group, summary in groups.items():
        data = summary.to_dict()
        row: list[Any] = [group, data["photos"], data["faces"], data["answered"]]
        row += [data["no_face"], data["unreadable"]]
        for name in class_names:
            share = data["labels"][name]
            row += [f"{share['share']:.4f}", f"{share['ci95'][0]:.4f}", f"{share['ci95'][1]:.4f}"]
        mean = data["mean_confidence"]
        writer.writerow([*row, "" if mean is None else f"{mean:.4f}"])
    return buffer.getvalue()


COLOURS = ("#2b8a3e", "#1c7ed6", "#868e96")  # first class, second class, no face


def groups_html(groups: dict[str, RunSummary], class_names: list[str], title: str) -> str:
    """A self-contained page: per group one stacked bar (each class's share and no face) with
    the counts and 95% intervals beside it."""
    rows = []
    for group, summary in groups.items():
        data = summary.to_dict()
        read = max(1, data["photos"] - data["unreadable"])
        parts = [(name, data["labels"][name]["count"] / read) for name in class_names]
        parts.append(("no face", data["no_face"] / read))
        x, rects = 0.0, []
        for (name, share), colour in zip(parts, COLOURS):
            width = 400 * share
            rects.append(
                f'<rect x="{x:.1f}" y="0" width="{width:.1f}" height="18" fill="{colour}">'
                f"<title>{html.escape(name)} {share:.1%}</title></rect>"
            )
            x += width
        intervals = ", ".join(
            f"{html.escape(n)} {data['labels'][n]['share']:.0%} "
            f"({data['labels'][n]['ci95'][0]:.0%}-{data['labels'][n]['ci95'][1]:.0%})"
            for n in class_names
        )
        rows.append(
            f"<tr><td>{html.escape(group)}</td><td>{data['photos']}</td><td>{data['faces']}</td>"
            f'<td><svg width="400" height="18">{"".join(rects)}</svg></td>'
            f"<td>{intervals}; unreadable {data['unreadable']}</td></tr>"
        )
    legend = " ".join(
        f'<span style="color:{c}">&#9632; {html.escape(n)}</span>'
        for n, c in zip([*class_names, "no face"], COLOURS)
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td{padding:4px 8px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{legend}</p>"
        "<table><tr><th>group</th><th>photos</th><th>faces</th><th>shares</th>"
        "<th>share (95% interval)</th></tr>" + "".join(rows) + "</table></body></html>"
    )


def group_files(
    groups: dict[str, RunSummary], class_names: list[str], title: str
) -> dict[str, str]:
    """The summary files by name: groups.json, groups.csv, groups.html."""
    return {
        "groups.json": groups_json(groups),
        "groups.csv": groups_csv(groups, class_names),
        "groups.html": groups_html(groups, class_names, title),
    }

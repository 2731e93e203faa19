"""A self-contained report.html: images embedded as base64, no scripts, no external files."""

from __future__ import annotations

import base64
import html
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .muted { color: #666; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td.name, th.name { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.warning { background: #fff4e0; border-left: 4px solid #e69f00; padding: 0.5em 1em; }
"""


def fmt(value: Any) -> str:
    """How a metric is written in the report (4 decimals for floats); tests parse it back."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _png_tag(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img id="{html.escape(name)}" alt="{html.escape(alt)}" '
        f'src="data:image/png;base64,{data}">'
    )


def render(
    title: str,
    metrics: dict[str, Any],
    images: list[tuple[str, str, bytes]],
    config_yaml: str,
    run_info: dict[str, Any],
    notes: list[str],
) -> str:
    """The report page; `images` are (id, heading, png bytes)."""
    esc = html.escape
    headline = [
        ("count", "validation images"),
        ("accuracy", "accuracy"),
        ("balanced_accuracy", "balanced accuracy"),
        ("roc_auc", "ROC AUC"),
        ("best_epoch_val_accuracy", "best epoch val accuracy"),
        ("train_seconds", "training seconds"),
        ("skipped_files", "skipped files"),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    versions = ", ".join(
        f"{k.replace('_version', '')} {run_info[k]}"
        for k in ("package_version", "tensorflow_version", "keras_version")
        if k in run_info
    )
    if versions:
        parts.append(f'<p class="muted">emotion-tf report &middot; {esc(versions)}</p>')
    for note in notes:
        parts.append(f'<p class="warning">{esc(note)}</p>')

    parts.append("<h2>Metrics</h2><table>")
    for key, label in headline:
        if key in metrics:
            parts.append(
                f'<tr><th class="name">{esc(label)}</th>'
                f'<td data-metric="{esc(key)}">{esc(fmt(metrics[key]))}</td></tr>'
            )
    parts.append("</table>")

    names = metrics.get("class_names", [])
    per_class = metrics.get("per_class", {})
    if per_class:
        parts.append(
            '<table><tr><th class="name">class</th><th>precision</th><th>recall</th>'
            "<th>f1</th><th>support</th></tr>"
        )
        for name in names:
            row = per_class.get(name, {})
            cells = "".join(
                f'<td data-metric="per_class.{esc(name)}.{key}">{esc(fmt(row.get(key)))}</td>'
                for key in ("precision", "recall", "f1", "support")
            )
            parts.append(f'<tr><td class="name">{esc(name)}</td>{cells}</tr>')
        parts.append("</table>")
    matrix = metrics.get("confusion_matrix")
    if matrix:
        parts.append('<table><tr><th class="name">true \\ predicted</th>')
        parts.append("".join(f"<th>{esc(n)}</th>" for n in names) + "</tr>")
        for i, (name, row) in enumerate(zip(names, matrix)):
            cells = "".join(
                f'<td data-metric="confusion_matrix.{i}.{j}">{value}</td>'
                for j, value in enumerate(row)
            )
            parts.append(f'<tr><th class="name">{esc(name)}</th>{cells}</tr>')
        parts.append("</table>")

    for name, heading, png in images:
        parts.append(f"<h2>{esc(heading)}</h2>")
        parts.append(_png_tag(name, png, heading))

    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{esc(config_yaml)}</pre>")
    if run_info:
        parts.append("<h2>Run</h2><table>")
        for key in ("strategy", "replicas", "config_hash", "data_dir", "file_list_hash"):
            if key in run_info:
                parts.append(
                    f'<tr><th class="name">{esc(key)}</th>'
                    f'<td class="name">{esc(str(run_info[key]))}</td></tr>'
                )
        for split, counts in (run_info.get("counts") or {}).items():
            text = ", ".join(f"{k}: {v}" for k, v in counts.items())
            parts.append(
                f'<tr><th class="name">{esc(split)} images</th>'
                f'<td class="name">{esc(text)}</td></tr>'
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

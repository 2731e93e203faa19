"""A video's report: timeline.png (P(happy) per person over time, with the label changes),
summary.json and a self-contained report.html."""

from __future__ import annotations

import html
import json
from pathlib import Path

from emotion_tf.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text
from emotion_tf.video.summary import VideoSummary, format_summary

TIMELINE_PNG = "timeline.png"
SUMMARY_JSON = "summary.json"
HTML_FILE = "report.html"
PERSON_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def focus_class(class_names: list[str]) -> str:
    """The class whose probability the timeline shows: "happy" when there is one."""
    return "happy" if "happy" in class_names else class_names[0]


def timeline_png(summary: VideoSummary, width_in: float = 9.0) -> bytes:
    """P(focus class) per person over time: smoothed (line), per frame (dots), changes
    (vertical dotted lines), gaps in the video (grey bands)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    focus = focus_class(summary.class_names)
    column = summary.class_names.index(focus)
    figure = Figure(figsize=(width_in, 3.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for start, end in summary.gaps:
        axes.axvspan(start, end, color="#dddddd", linewidth=0)
    for i, person in enumerate(summary.people):
        colour = PERSON_COLOURS[i % len(PERSON_COLOURS)]
        series = person.series
        axes.plot(
            series.times,
            [p[column] for p in series.raw],
            ".",
            color=colour,
            alpha=0.3,
            markersize=3,
        )
        axes.plot(
            series.times,
            [p[column] for p in series.smoothed],
            "-",
            color=colour,
            linewidth=1.8,
            label=f"person {person.person}",
        )
        for change in person.changes:
            axes.axvline(change.time_s, color=colour, linestyle=":", linewidth=1.2)
            axes.annotate(
                f"{change.after}",
                (change.time_s, 1.02),
                xycoords=("data", "axes fraction"),
                ha="center",
                fontsize=8,
                color=colour,
            )
    axes.axhline(0.5, color="#999999", linewidth=0.8)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlim(0, max(summary.duration_s, 1e-3))
    axes.set_xlabel("time (s)")
    axes.set_ylabel(f"P({focus})")
    axes.grid(alpha=0.3)
    if summary.people:
        axes.legend(loc="lower left", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def write_video_report(out_dir: Path, summary: VideoSummary, stem: str | None = None) -> list[Path]:
    """Write `<stem>timeline.png`, `<stem>summary.json` and `<stem>report.html` into `out_dir`
    (stem: "" for one video, "<name>." to keep several videos apart); returns the paths."""
    from emotion_tf.report.html import STYLE, _png_tag

    out_dir = Path(out_dir)
    prefix = "" if not stem else f"{stem}."
    png = timeline_png(summary)
    paths = [out_dir / f"{prefix}{TIMELINE_PNG}", out_dir / f"{prefix}{SUMMARY_JSON}"]
    atomic_write_bytes(paths[0], png)
    atomic_write_json(paths[1], summary.to_dict())
    esc = html.escape
    title = f"emotion-tf video: {Path(summary.source).name}"
    rows = []
    for person in summary.people:
        shares = "".join(f"<td>{100 * person.share[n]:.0f}%</td>" for n in summary.class_names)
        changes = ", ".join(f"{c.after} at {c.time_s:.2f} s" for c in person.changes) or "-"
        rows.append(
            f'<tr><td class="name">person {person.person}</td>'
            f"<td>{person.seconds_visible:.2f}</td><td>{person.first_s:.2f}</td>"
            f"<td>{person.last_s:.2f}</td>{shares}<td>{person.mean_confidence:.3f}</td>"
            f'<td class="name">{esc(changes)}</td></tr>'
        )
    header = "".join(f"<th>{esc(n)}</th>" for n in summary.class_names)
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{esc(title)}</h1>",
            f"<pre>{esc(format_summary(summary))}</pre>",
            *[f'<p class="warning">{esc(w)}</p>' for w in summary.warnings],
            "<h2>People</h2><table>",
            '<tr><th class="name">person</th><th>seconds seen</th><th>first (s)</th>'
            f"<th>last (s)</th>{header}<th>mean confidence</th>"
            '<th class="name">label changes</th></tr>',
            *rows,
            "</table>",
            f"<h2>P({esc(focus_class(summary.class_names))}) over time</h2>",
            _png_tag("timeline", png, "timeline"),
            "<h2>Summary (JSON)</h2>",
            f"<pre>{esc(json.dumps(summary.to_dict(), indent=2))}</pre>",
            "</body></html>",
        ]
    )
    paths.append(out_dir / f"{prefix}{HTML_FILE}")
    atomic_write_text(paths[2], page + "\n")
    return paths

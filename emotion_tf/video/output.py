"""Write video rows as they come: a table for people, or JSON, JSON Lines or CSV for programs.

Every write is flushed, so a reader of a pipe or a file sees each frame's rows at once.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TextIO

from emotion_tf.video.analyze import VideoRow

FORMATS: tuple[str, ...] = ("table", "json", "jsonl", "csv")
COLUMNS = ("path", "time_s", "frame", "person", "x", "y", "w", "h", "label", "confidence")


class RowWriter:
    """Streams `VideoRow`s to `stream` in `fmt`; call `close()` to finish (JSON's `]`)."""

    def __init__(self, stream: TextIO, fmt: str, class_names: list[str], path_width: int = 4):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}. Received: {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.class_names = list(class_names)
        self.path_width = max(4, path_width)
        self.count = 0
        self._header()

    def _header(self) -> None:
        names = self.class_names
        if self.fmt == "csv":
            self._emit(self._csv([*COLUMNS, *names, *(f"raw_{n}" for n in names), "error"]))
        elif self.fmt == "json":
            self.stream.write("[")
        elif self.fmt == "table":
            self._emit(
                f"{'path':<{self.path_width}}  {'time_s':>8}  {'frame':>6}  {'person':>6}  "
                f"{'box [x, y, w, h]':<22}{'label':<8}{'conf':>7}  "
                + "  ".join(f"{n:>7}" for n in names)
            )

    def write(self, rows: list[VideoRow]) -> None:
        if not rows:
            return
        for row in rows:
            if self.fmt == "json":
                separator = "," if self.count else ""
                text = json.dumps(row.to_dict())
                self.stream.write(f"{separator}\n  {text}")
            elif self.fmt == "jsonl":
                self.stream.write(json.dumps(row.to_dict()) + "\n")
            elif self.fmt == "csv":
                self.stream.write(self._csv(self._csv_cells(row)) + "\n")
            else:
                self.stream.write(self._table_line(row) + "\n")
            self.count += 1
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self._emit("\n]" if self.count else "]")
        self.stream.flush()

    def _emit(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    @staticmethod
    def _csv(cells: list[object]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(cells)
        return buffer.getvalue()

    def _csv_cells(self, row: VideoRow) -> list[object]:
        box = row.box or ["", "", "", ""]
        probs, raw = row.probabilities or {}, row.raw_probabilities or {}
        return [
            row.path,
            "" if row.time_s is None else f"{row.time_s:.3f}",
            "" if row.frame is None else row.frame,
            "" if row.person is None else row.person,
            *box,
            row.label or "",
            "" if row.confidence is None else f"{row.confidence:.6f}",
            *[f"{probs[n]:.6f}" if n in probs else "" for n in self.class_names],
            *[f"{raw[n]:.6f}" if n in raw else "" for n in self.class_names],
            row.error or "",
        ]

    def _table_line(self, row: VideoRow) -> str:
        if row.error:
            return f"{row.path:<{self.path_width}}  ERROR: {row.error}"
        box = "[" + ", ".join(str(v) for v in row.box or []) + "]"
        probs = "  ".join(f"{(row.probabilities or {})[n]:>7.3f}" for n in self.class_names)
        return (
            f"{row.path:<{self.path_width}}  {row.time_s:>8.3f}  {row.frame:>6}  "
            f"{row.person:>6}  {box:<22}{row.label:<8}{row.confidence:>7.3f}  {probs}"
        )

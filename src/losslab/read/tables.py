"""Tables as losslab writes them: aligned Markdown (text left, numbers right) and CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["cell", "markdown_table", "mean_ci", "write_csv"]


def cell(key: str, value: Any) -> str:
    """A value as a Markdown table shows it: ``-`` for nothing, 4 decimals for a float, the lr
    in ``%g``, seconds to 3 significant digits, ``|`` escaped."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value.replace("|", "\\|")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if key in ("lr", "label_noise"):
        return f"{value:g}"
    if key == "sec_per_epoch":
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def mean_ci(stats: Mapping[str, Any], digits: int = 4) -> str:
    """``0.9602 ± 0.0011 (sd 0.0009, n=5)``: mean ± the 95% CI's half-width; n = 1: no interval."""
    if stats.get("mean") is None:
        return "-"
    if stats.get("ci_high") is None:
        return f"{stats['mean']:.{digits}f} (n={stats['n']})"
    half = (stats["ci_high"] - stats["ci_low"]) / 2
    return f"{stats['mean']:.{digits}f} ± {half:.{digits}f} (sd {stats['std']:.{digits}f}, n={stats['n']})"


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], text: Sequence[bool]
) -> str:
    """An aligned Markdown table: ``text`` columns left, the others (numbers) right."""
    cells = [list(header), *map(list, rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        padded = [
            c.ljust(w) if t else c.rjust(w) for c, w, t in zip(row, widths, text, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 2) if t else "-" * (w + 1) + ":" for w, t in zip(widths, text, strict=True)
    )
    return "\n".join([line(cells[0]), rule + "|", *(line(r) for r in cells[1:])])


def write_csv(rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str], file: Path) -> None:
    """One row per mapping, the ``fieldnames`` columns; None as an empty cell, floats as
    ``repr`` (the shortest text that reads back to the same value)."""
    with Path(file).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in fieldnames})

"""The figures of the report and the studies, drawn on bare :class:`matplotlib.figure.Figure`
objects (Agg, no pyplot), so they work on machines without a display. Every function saves its
figure and returns it (tests read the axes, lines and legends back).

One look throughout (:mod:`losslab.read.style`): each loss has one colour in every figure; on
epoch curves train is dotted, val dashed and test solid; a number at the last epoch is a solid
line with dots, one at the early-stopped epoch a dashed line with open squares; panels come in a
fixed order that the figure states; a band is the min-max over seeds (never an interval that
leaves the metric's range), and a seed that is not drawn is named on its panel.
"""

from __future__ import annotations

import itertools
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslab.names import SPLITS, tag
from losslab.read.style import SPLIT_STYLES, WHEN_STYLES, loss_color, loss_order, metric_range

__all__ = [
    "MIN_BIN_IMAGES",
    "CurvePanel",
    "Series",
    "ValuePanel",
    "mean_curves",
    "plot_curves",
    "plot_noise",
    "plot_reliability",
    "pooled_bins",
]

Curve = list[tuple[int, float]]
Band = list[tuple[int, float, float]]
LOSS_LINE = "0.45"  # gray: the loss curves, on the right axis
MIN_BIN_IMAGES = 100  # a reliability bin with fewer images (standard error > 0.05) is not drawn
_NAMED_SPLITS = {"train": "train (dotted)", "val": "val (dashed)", "test": "test (solid)"}


def mean_curves(curves: Sequence[Mapping[str, Curve]]) -> tuple[dict[str, Curve], dict[str, Band]]:
    """Per tag, the mean over runs at every epoch all of them reached, and the band from the
    lowest to the highest run there (none for one run): with a few seeds a t-interval says
    little and leaves the metric's range, the min-max says what the seeds did."""
    means, bands = {}, {}
    for name in curves[0]:
        per_run = [dict(c.get(name, [])) for c in curves]
        epochs = sorted(set.intersection(*(set(p) for p in per_run)))
        at = [(e, [p[e] for p in per_run]) for e in epochs]
        at = [(e, v) for e, v in at if all(math.isfinite(x) for x in v)]
        means[name] = [(e, sum(v) / len(v)) for e, v in at]
        bands[name] = [(e, min(v), max(v)) for e, v in at] if len(curves) > 1 else []
    return means, bands


@dataclass
class CurvePanel:
    """One panel of :func:`plot_curves`: a run, or the seeds of a group (mean and min-max band).

    ``loss`` colours the accuracy lines and is the panel's column; ``row`` (everything else
    that sets the panel apart, ``data.batch_size=100``) its row; ``note`` is written on the
    panel (the seeds it lacks and why)."""

    title: str
    loss: str | None
    curves: Mapping[str, Curve]
    bands: Mapping[str, Band] | None = None
    row: str = ""
    note: str = ""
    sort_key: tuple = ()


def _splits_drawn(panels: Sequence[CurvePanel]) -> list[str]:
    return [
        s for s in SPLITS if any(p.curves.get(tag(k, s)) for p in panels for k in ("acc", "loss"))
    ]


def _curve_panel(ax: Any, panel: CurvePanel) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title("\n".join(textwrap.wrap(re.sub(r",(?=\S)", ", ", panel.title), 48)), fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)  # a train accuracy of 1 stays visible
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax = ax.twinx()
    loss_ax.set_ylabel("loss (gray)", color=LOSS_LINE)
    color = loss_color(panel.loss) if panel.loss else "black"
    drawn, highest = False, 0.0
    for kind, axis, line_color, width in (("acc", ax, color, 1.6), ("loss", loss_ax, LOSS_LINE, 1)):
        for split, style in SPLIT_STYLES.items():
            points = [(e, v) for e, v in panel.curves.get(tag(kind, split), []) if math.isfinite(v)]
            if not points:
                continue
            drawn = True
            epochs, values = zip(*points, strict=True)
            marker = "." if len(points) <= 30 else None  # dots hide the dashes of long curves
            axis.plot(epochs, values, style, color=line_color, lw=width, marker=marker, ms=3)
            band = (panel.bands or {}).get(tag(kind, split)) or []
            low, high = metric_range(tag(kind, split))
            if band:
                axis.fill_between(
                    [b[0] for b in band],
                    [max(b[1], low) if low is not None else b[1] for b in band],
                    [min(b[2], high) if high is not None else b[2] for b in band],
                    color=line_color,
                    alpha=0.18 if kind == "acc" else 0.1,
                    lw=0,
                )
            if kind == "loss":
                highest = max([highest, *values, *(b[2] for b in band)])
    if highest > 0:
        loss_ax.set_ylim(bottom=min(0.0, loss_ax.get_ylim()[0]), top=highest * 1.05)
    if not drawn:
        ax.text(0.5, 0.5, "no epoch curves", ha="center", va="center", transform=ax.transAxes)
    if panel.note:
        ax.text(
            0.02,
            0.03,
            "\n".join(textwrap.wrap(panel.note, 56)),
            transform=ax.transAxes,
            fontsize=7,
            color="#b00020",
            va="bottom",
        )


def _grid(panels: Sequence[CurvePanel]) -> tuple[list[list[CurvePanel | None]], str]:
    """Rows (``row``, in sort order) x columns (the losses in :func:`loss_order`) when there
    are several losses and every panel has its own cell; else the panels in that order (row, then loss), three a row."""
    cells = {(p.row, p.loss): p for p in panels}
    losses = loss_order(p.loss for p in panels if p.loss)
    if len(cells) == len(panels) and all(p.loss for p in panels) and len(losses) > 1:
        rows = sorted({p.row for p in panels}, key=lambda r: next(
            p.sort_key for p in panels if p.row == r
        ))  # fmt: skip
        layout = [[cells.get((row, loss)) for loss in losses] for row in rows]
        return layout, f"columns: {', '.join(losses)}" + (
            f"; rows: {', '.join(r for r in rows)}" if len(rows) > 1 and len(rows) <= 6 else ""
        )
    panels = sorted(panels, key=lambda p: (p.sort_key, losses.index(p.loss) if p.loss else -1))
    ncols = min(len(panels), 3)
    layout: list[list[CurvePanel | None]] = [
        list(panels[i : i + ncols]) for i in range(0, len(panels), ncols)
    ]
    layout[-1] += [None] * (ncols - len(layout[-1]))
    return layout, ""


def plot_curves(panels: Sequence[CurvePanel], heading: str, file: Path) -> Any:
    """Train / val / test accuracy (left axis, in the loss's colour) and loss (right axis, gray)
    per epoch, one panel per item of ``panels``; a grid of rows x losses when the panels form
    one. The legend states the line styles of the splits drawn and the colours of the losses."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    layout, order = _grid(panels)
    nrows, ncols = len(layout), len(layout[0])
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax_row, item_row in zip(axes, layout, strict=True):
        for ax, item in zip(ax_row, item_row, strict=True):
            if item is None:
                ax.set_visible(False)
            else:
                _curve_panel(ax, item)
    handles = [Line2D([], [], color="black", ls=SPLIT_STYLES[s]) for s in _splits_drawn(panels)]
    labels = [_NAMED_SPLITS[s] for s in _splits_drawn(panels)]
    losses = loss_order(p.loss for p in panels if p.loss)
    handles += [Patch(color=loss_color(loss)) for loss in losses]
    labels += [f"{loss} accuracy" for loss in losses]
    handles.append(Line2D([], [], color=LOSS_LINE))
    labels.append("loss")
    if any(p.bands and any(p.bands.values()) for p in panels):
        handles.append(Patch(color="gray", alpha=0.3))
        labels.append("band: min-max over the seeds")
    fig.legend(
        handles,
        labels,
        loc="outside upper center",
        ncols=min(len(labels), 8),
        fontsize=8,
        title=heading + (f" ({order})" if order else ""),
        title_fontsize=10,
    )
    fig.savefig(file, dpi=100)
    return fig


def pooled_bins(
    reliabilities: Sequence[Mapping[str, Any] | None], split: str = "test"
) -> dict | None:
    """The reliability bins of several runs' ``reliability.json`` pooled: per non-empty bin,
    the images in it, their mean confidence and their accuracy over every run. A run without
    the file (None) adds nothing; None when no run has it."""
    count: list[float] | None = None
    for reliability in reliabilities:
        if reliability is None:
            continue
        bins = reliability["bins"][split]
        if count is None:
            size = len(bins["count"])
            count, confidence, correct = [0.0] * size, [0.0] * size, [0.0] * size
        for i, k in enumerate(bins["count"]):
            count[i] += k
            confidence[i] += k * bins["confidence"][i]
            correct[i] += k * bins["accuracy"][i]
    if count is None:
        return None
    kept = [i for i, k in enumerate(count) if k > 0]
    return {
        "count": [count[i] for i in kept],
        "confidence": [confidence[i] / count[i] for i in kept],
        "accuracy": [correct[i] / count[i] for i in kept],
    }


def plot_reliability(
    panels: Mapping[Any, Mapping[str, Mapping | None]], title: str, file: Path, label: str
) -> Any:
    """Reliability diagrams, one panel per key of ``panels`` (``{value: {loss: pooled
    bins}}``, in sorted order, ``label``: what the value is): accuracy against mean confidence
    per bin, each marker's area in proportion to the images in its bin; bins of fewer than
    :data:`MIN_BIN_IMAGES` images are left out. The diagonal is calibrated."""
    from matplotlib.figure import Figure

    keys = sorted(panels)
    fig = Figure(figsize=(4.2 * len(keys), 4.6), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    largest = max(
        (max(p["count"]) for lines in panels.values() for p in lines.values() if p), default=1
    )
    for ax, key in zip(axes, keys, strict=True):
        ax.plot([0, 1], [0, 1], ":", color="gray", label="calibrated")
        lines = panels[key]
        for loss in loss_order(lines):
            pooled = lines[loss]
            if not pooled:
                continue
            kept = [i for i, k in enumerate(pooled["count"]) if k >= MIN_BIN_IMAGES]
            xs = [pooled["confidence"][i] for i in kept]
            ys = [pooled["accuracy"][i] for i in kept]
            color = loss_color(loss)
            ax.plot(xs, ys, "-", color=color, lw=1.2, label=loss)
            ax.scatter(
                xs,
                ys,
                s=[4 + 200 * pooled["count"][i] / largest for i in kept],
                color=color,
                alpha=0.7,
                zorder=3,
                clip_on=False,  # the largest bin sits at confidence ~1, on the frame
            )
        ax.set(title=f"{label} {key:g}" if isinstance(key, int | float) else f"{label} {key}")
        ax.set(xlabel="confidence (max softmax)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")  # a bin there would be far overconfident
    fig.suptitle(
        f"{title}\nmarker area: images in the bin; bins of fewer than {MIN_BIN_IMAGES} images "
        f"left out",
        fontsize=10,
    )
    fig.savefig(file, dpi=100)
    return fig


@dataclass
class Series:
    """One loss's line in a :class:`ValuePanel`: per compared value, one number per seed;
    ``when``: ``last`` (last epoch) or ``early`` (early-stopped)."""

    loss: str
    when: str
    points: Mapping[float, Sequence[float]]


@dataclass
class ValuePanel:
    """A panel of :func:`plot_noise`: a metric (its tag gives the y range) against the
    compared value, one :class:`Series` per loss and moment."""

    title: str
    metric: str
    ylabel: str
    series: list[Series] = field(default_factory=list)


def plot_noise(panels: Sequence[ValuePanel], xlabel: str, file: Path, note: str = "") -> Any:
    """The mean over seeds (line) and every seed (small dots) of each series against the
    compared value, one panel per item of ``panels`` in the given order; the series of one value
    are spread a little sideways so that none hides another. ``note``: a line under the title
    (what the panels' arms are)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.4 * len(panels), 4.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        xs = sorted({x for s in panel.series for x in s.points})
        step = min((b - a for a, b in itertools.pairwise(xs)), default=1.0)
        losses = loss_order(s.loss for s in panel.series)
        order = sorted(
            panel.series, key=lambda s: (losses.index(s.loss), list(WHEN_STYLES).index(s.when))
        )
        seen = []
        for i, series in enumerate(order):
            shift = (i - (len(order) - 1) / 2) * step * 0.06
            style = WHEN_STYLES[series.when]
            color = loss_color(series.loss)
            points = sorted(series.points.items())
            x = [v + shift for v, _ in points]
            means = [sum(s) / len(s) for _, s in points]
            seen += [y for _, s in points for y in s]
            ax.plot(
                x,
                means,
                ls=style["linestyle"],
                marker=style["marker"],
                markerfacecolor=style["markerfacecolor"] or color,
                color=color,
                ms=6,
                lw=1.6,
                label=f"{series.loss}, {style['label']}",
            )
            ax.plot(
                [v + shift for v, s in points for _ in s],
                [y for _, s in points for y in s],
                ".",
                color=color,
                ms=3,
                alpha=0.5,
            )
        low, high = metric_range(panel.metric)
        if seen:
            pad = 0.05 * ((max(seen) - min(seen)) or 1.0)
            bottom, top = min(seen) - pad, max(seen) + pad
            ax.set_ylim(
                max(bottom, low) if low is not None else bottom,
                min(top, high) if high is not None else top,
            )
        ax.set_xticks(xs)
        ax.set(title=panel.title, xlabel=xlabel, ylabel=panel.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    heading = "mean over seeds (line) and each seed (dots)"
    fig.suptitle(heading + ("\n" + textwrap.fill(note, 200) if note else ""), fontsize=10)
    fig.savefig(file, dpi=100)
    return fig

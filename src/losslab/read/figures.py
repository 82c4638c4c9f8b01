"""The figures of the report and the studies, drawn on bare :class:`matplotlib.figure.Figure`
objects (Agg, no pyplot), so they work on machines without a display."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from losslab.read.stats import summarize

__all__ = ["mean_curves", "plot_curves", "plot_noise", "plot_reliability"]

Curve = list[tuple[int, float]]
SPLIT_COLORS = {"train": "tab:blue", "val": "tab:green", "test": "tab:orange"}


def mean_curves(
    curves: Sequence[Mapping[str, Curve]],
) -> tuple[dict[str, Curve], dict[str, list[tuple[int, float, float]]]]:
    """Per tag, the mean over runs at every epoch all of them reached, and its 95% band."""
    means, bands = {}, {}
    for tag in curves[0]:
        per_run = [dict(c.get(tag, [])) for c in curves]
        epochs = sorted(set.intersection(*(set(p) for p in per_run)))
        stats = [(e, summarize([p[e] for p in per_run])) for e in epochs]
        means[tag] = [(e, s["mean"]) for e, s in stats if s["mean"] is not None]
        bands[tag] = [(e, s["ci_low"], s["ci_high"]) for e, s in stats if s["ci_low"] is not None]
    return means, bands


def _panel(ax: Any, title: str, curves: Mapping[str, Curve], bands: Mapping | None) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title("\n".join(textwrap.wrap(title.replace(",", ", "), 48)), fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (solid)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax = ax.twinx()
    loss_ax.set_ylabel("loss (dashed)")
    for kind, axis, style in (("acc", ax, "-"), ("loss", loss_ax, "--")):
        for split, color in SPLIT_COLORS.items():
            points = curves.get(f"{kind}/{split}")
            if not points:
                continue
            epochs = [p[0] for p in points]
            values = [p[1] if math.isfinite(p[1]) else math.nan for p in points]
            marker = "." if len(points) <= 30 else None  # dots hide the dashes of long curves
            axis.plot(epochs, values, style, color=color, marker=marker, label=f"{split} {kind}")
            band = (bands or {}).get(f"{kind}/{split}")
            if band:
                axis.fill_between(
                    [b[0] for b in band],
                    [b[1] for b in band],
                    [b[2] for b in band],
                    color=color,
                    alpha=0.2,
                    lw=0,
                )
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = loss_ax.get_legend_handles_labels()
    if handles or more_handles:
        ax.legend(handles + more_handles, labels + more_labels, fontsize=7, loc="center right")
    else:
        ax.text(0.5, 0.5, "no epoch curves", ha="center", va="center", transform=ax.transAxes)


def plot_curves(
    panels: Sequence[tuple[str, Mapping, Mapping | None, Mapping[str, Any]]],
    heading: str,
    file: Path,
) -> None:
    """One panel per item ``(title, curves, bands, row)``: a grid of batch size (rows) x loss
    (columns) when every item has a distinct pair, else three panels a row."""
    from matplotlib.figure import Figure

    cells = {(p[3]["batch_size"], p[3]["loss"]): p for p in panels}
    if len(cells) == len(panels) and not any(None in key for key in cells):
        batch_sizes = sorted({bs for bs, _ in cells})
        losses = sorted({loss for _, loss in cells})
        layout = [[cells.get((bs, loss)) for loss in losses] for bs in batch_sizes]
        heading += " (rows: batch size, columns: loss)"
    else:
        ncols = min(len(panels), 3)
        layout = [list(panels[i : i + ncols]) for i in range(0, len(panels), ncols)]
        layout[-1] += [None] * (ncols - len(layout[-1]))
    nrows, ncols = len(layout), len(layout[0])
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax_row, item_row in zip(axes, layout, strict=True):
        for ax, item in zip(ax_row, item_row, strict=True):
            if item is None:
                ax.set_visible(False)
            else:
                _panel(ax, item[0], item[1], item[2])
    if len(panels) > 1:
        fig.suptitle(heading)
    fig.savefig(file, dpi=100)


def pooled_bins(
    reliabilities: Sequence[Mapping[str, Any] | None], split: str = "test"
) -> dict | None:
    """The reliability bins of several runs' ``reliability.json`` pooled: per non-empty bin,
    the mean confidence and the accuracy over every sample of every run. A run without the
    file (None) adds nothing; None when no run has it."""
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
        "confidence": [confidence[i] / count[i] for i in kept],
        "accuracy": [correct[i] / count[i] for i in kept],
    }


def plot_reliability(
    panels: Mapping[Any, Mapping[str, Mapping | None]], title: str, file: Path
) -> None:
    """Reliability diagrams, one panel per key of ``panels`` (``{batch size: {loss: pooled
    bins}}``): accuracy against mean confidence per bin; the diagonal is calibrated."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, lines) in zip(axes, panels.items(), strict=True):
        ax.plot([0, 1], [0, 1], ":", color="gray", label="calibrated")
        for loss, pooled in lines.items():
            if pooled:
                ax.plot(pooled["confidence"], pooled["accuracy"], "o-", ms=3, label=loss)
        ax.set(
            title=f"batch size {key}", xlabel="confidence (max softmax)", xlim=(0, 1), ylim=(0, 1)
        )
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.savefig(file, dpi=100)


def plot_noise(
    lines: Mapping[str, Mapping[str, Sequence[tuple[float, Mapping[str, Any]]]]], file: Path
) -> None:
    """Test accuracy against the label-noise rate, one line per loss, with 95% error bars:
    ``lines[when][loss] = [(p, summarize(...)), ...]``, ``when`` in ("last epoch",
    "early-stopped"), drawn solid and dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    colors = {}
    for when, style in zip(lines, ("-", "--"), strict=False):
        for loss, points in lines[when].items():
            xs = [p for p, _ in points]
            ys = [s["mean"] for _, s in points]
            errors = [
                (s["ci_high"] - s["ci_low"]) / 2 if s["ci_high"] is not None else 0.0
                for _, s in points
            ]
            color = colors.setdefault(loss, f"C{len(colors)}")
            ax.errorbar(
                xs,
                ys,
                yerr=errors,
                fmt=f"o{style}",
                color=color,
                capsize=3,
                ms=4,
                label=f"{loss}, {when}",
            )
    ax.set(xlabel="label noise p (fraction of training labels flipped)", ylabel="test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Test accuracy under symmetric label noise (mean, 95% CI over seeds)", fontsize=10)
    fig.savefig(file, dpi=100)

"""One look for every figure losslab draws: a colour per loss (the same in every figure), a line
style per split and per moment (last epoch / early-stopped), the order losses are shown in, and
the range each metric lives in (axes and bands never leave it). Torch- and matplotlib-free."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

__all__ = [
    "LOSS_COLORS",
    "SPLIT_STYLES",
    "WHEN_STYLES",
    "loss_color",
    "loss_order",
    "metric_range",
]

# matplotlib's tab10, one fixed colour per loss the project ships; a loss of your own gets one of
# the spare colours, chosen by its name (the same in every figure and on every machine)
LOSS_COLORS = {"cee": "#1f77b4", "sse": "#ff7f0e", "sse_logits": "#2ca02c", "mae": "#d62728"}
SPARE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")

# curves per epoch: one line style per split
SPLIT_STYLES = {"train": ":", "val": "--", "test": "-"}
# a number at the last epoch or at the epoch the validation split picks (early stopping)
WHEN_STYLES = {
    "last": {"linestyle": "-", "marker": "o", "markerfacecolor": None, "label": "last epoch"},
    "early": {
        "linestyle": "--",
        "marker": "s",
        "markerfacecolor": "white",
        "label": "early-stopped",
    },
}


def loss_color(loss: str) -> str:
    """The colour of ``loss`` in every figure: ``#1f77b4`` (blue) for ``cee``, ``#ff7f0e``
    (orange) for ``sse``, ``#2ca02c`` (green) for ``sse_logits``, ``#d62728`` (red) for ``mae``;
    any other name one of six spare colours by a hash of the name (stable across runs)."""
    if loss in LOSS_COLORS:
        return LOSS_COLORS[loss]
    return SPARE_COLORS[zlib.crc32(str(loss).encode()) % len(SPARE_COLORS)]


def loss_order(losses: Iterable[str]) -> list[str]:
    """The distinct ``losses`` in the order figures show them: the shipped ones as in
    :data:`LOSS_COLORS` (cee, sse, sse_logits, mae), then the others alphabetically."""
    known = list(LOSS_COLORS)
    return sorted(
        set(losses), key=lambda x: (0, known.index(x), "") if x in known else (1, 0, str(x))
    )


def metric_range(tag: str) -> tuple[float | None, float | None]:
    """The values a metric can take, by its kind (the part before ``/``): accuracies,
    memorization and calibration error in [0, 1], the Brier score in [0, 2], the gap in
    [-1, 1], the NLL from 0 up (None: no bound); a loss is unbounded (one of your own may go
    below 0)."""
    kind = tag.split("/")[0]
    if kind in ("acc", "memo", "ece"):
        return 0.0, 1.0
    if kind == "brier":
        return 0.0, 2.0
    if kind == "gap":
        return -1.0, 1.0
    if kind == "nll":
        return 0.0, None
    return None, None

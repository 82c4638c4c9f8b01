"""TensorBoard views of a study that a person can read: one stage per ``tensorboard`` (its HPARAMS
table then has that stage's columns and metrics), one compared value per view (at most
:data:`MOST_RUNS` runs, the most TensorBoard's custom scalars tick by default), every view opened
with smoothing 0, the runs coloured by loss and the tags the study compares. A view is a URL of
TensorBoard's time series dashboard, whose query parameters (``smoothing``, ``runFilter``,
``runColorGroup``, ``tagFilter``) TensorBoard reads when the page opens.

TensorBoard picks the group colours itself: they are not the figures' colours."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

from losslab.names import TRUE_ACC, tag
from losslab.study.catalogue import ARMS, Catalogue

__all__ = ["MOST_RUNS", "URL", "view", "views", "views_text"]

MOST_RUNS = 40
URL = "http://localhost:6006/"  # where `tensorboard --logdir ...` serves by default


def _value(value: Any) -> str:
    """A compared value as the run folders spell it (``0.4``, ``100``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def view(run_filter: str, tags: list[str]) -> str:
    """The URL of the time series dashboard showing the runs whose name ``run_filter`` finds."""
    query = {
        "smoothing": "0",
        "runColorGroup": r"regex:loss=(\w+)",
        "runFilter": run_filter,
        "tagFilter": "^(" + "|".join(re.escape(t) for t in tags) + ")$",
    }
    return URL + "?" + urllib.parse.urlencode(query, safe="(),/:$=") + "#timeseries"


def views(study_dir: Path, catalogue: Catalogue) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per final stage (``final``, ``fixed``): its ``tensorboard`` command and, per compared
    value (and loss, when one value holds more than :data:`MOST_RUNS` runs), a label and the
    view's URL."""
    tags = [tag("acc", split) for split in ("train", "val", "test")]
    curves = [m.curve for arm in catalogue.arms for m in catalogue.arm_metrics(arm)]
    if catalogue.clean is not None:
        tags.append(TRUE_ACC)
    tags += [c for c in dict.fromkeys(curves) if c not in tags]
    key = re.escape(catalogue.key)
    out = []
    for arm in catalogue.arms:
        stage = ARMS[arm].stage
        folder = Path(study_dir) / stage
        names = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
        pages = []
        for value in catalogue.values:
            at = rf"{key}={re.escape(_value(value))}(,|$)"
            runs = [n for n in names if re.search(rf"(^|,){at}", n)]
            if not runs:
                continue
            if len(runs) <= MOST_RUNS:
                pages.append((f"{catalogue.label} {_value(value)}", view(rf"(^|,){at}", tags)))
                continue
            for loss in catalogue.losses:
                both = rf"^loss={re.escape(loss)},(.*,)?{at}"
                pages.append((f"{catalogue.label} {_value(value)}, {loss}", view(both, tags)))
        if pages:
            out.append((f"tensorboard --logdir {folder}", pages))
    return out


def views_text(study_dir: Path, catalogue: Catalogue) -> str:
    """:func:`views` as lines for the console and ``verdict.md``."""
    lines = []
    for command, pages in views(study_dir, catalogue):
        lines.append(f"  {command}")
        lines += [f"    {label}: {url}" for label, url in pages]
    if not lines:
        return ""
    return (
        "TensorBoard, one stage and one value at a time (smoothing 0, a colour per loss that "
        "TensorBoard picks):\n" + "\n".join(lines)
    )

"""``losslab-report PATH``: one table and one figure for a run or a whole sweep.

Reads what ``losslab-train`` wrote, never the training code: every folder under ``PATH`` that
holds ``tensorboard/events.out.tfevents.*`` is a run (``PATH`` may be a single run,
``logs/<task>/runs/<time>``, or a sweep, ``logs/<task>/multiruns/<time>``). Writes into ``PATH``
(or ``--out DIR``):

- ``summary.md`` and ``summary.csv``: one row per run (loss, batch size, lr, epochs, final and
  best test accuracy and its epoch, final train accuracy, final gap, final test loss, seconds
  per epoch, status), best test accuracy first, the best run marked ``*``, diverged and
  incomplete runs last. The CSV holds the numbers at full precision (a float32 from the event
  file written as the shortest decimal that reads back to the same value).
- ``curves.png``: train vs test accuracy (solid, left axis) and loss (dashed, right axis) per
  epoch; a grid with one row per batch size and one column per loss when the runs form one,
  otherwise one panel per run.

and prints the Markdown table. Example::

    losslab-report logs/train/multiruns/2025-01-01_12-00-00_000000
    losslab-report logs/train/runs/2025-01-01_12-00-00_000000 --out /tmp/report

Where the values come from: the epoch curves (``acc/test``, ``loss/test``, ``acc/train``,
``gap/acc``, x = epoch, 0 = untrained) and the HPARAMS session info (loss, batch_size, lr,
status) that ``losslab-train`` writes at the end of a run. A run without that session info
stopped before the end (crashed, killed, or still running): its status is ``incomplete`` and
its loss, batch size and lr come from ``.hydra/hydra.yaml`` / ``.hydra/config.yaml``. A run
whose HPARAMS status says so, or whose test accuracy or any loss is NaN or infinite, is
``diverged``.

Reader: tensorboard's own ``EventAccumulator`` rather than ``tbparse``. ``tensorboard`` is
already a dependency (it is the viewer), so this adds no package; it is the reader the
TensorBoard server itself uses, so the report sees exactly what the dashboard shows; and a
few runs of a few dozen points need no DataFrame.

Figure: drawn on a bare :class:`matplotlib.figure.Figure`, which saves through the Agg
backend without pyplot, so importing this module never changes a notebook's backend and
works on machines without a display.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

# tensorboard's reader logs an INFO line per event file read ("No path found after ...")
logging.getLogger("tensorboard").setLevel(logging.WARNING)

__all__ = ["COLUMNS", "find_runs", "main", "report"]

EVENT_FILES = "events.out.tfevents.*"
EXPECTED = f"<run>/tensorboard/{EVENT_FILES} files, as losslab-train writes them"

# CSV header (the row dicts' keys) -> Markdown header.
COLUMNS = {
    "best": "best",
    "run": "run",
    "loss": "loss",
    "batch_size": "batch size",
    "lr": "lr",
    "epochs": "epochs",
    "final_test_acc": "test acc",
    "best_test_acc": "best test acc",
    "best_epoch": "best epoch",
    "final_train_acc": "train acc",
    "final_gap": "gap",
    "final_test_loss": "test loss",
    "sec_per_epoch": "s/epoch",
    "status": "status",
}
_LEFT = {"best", "run", "loss", "status"}  # text columns; the rest are right-aligned numbers
_STATUS_ORDER = {"ok": 0, "diverged": 1, "incomplete": 2}
_SPLIT_COLORS = {"train": "tab:blue", "val": "tab:green", "test": "tab:orange"}


@dataclass
class _Run:
    """What one run folder holds: its epoch curves ``tag -> [(epoch, value, wall_time)]``
    and its summary row."""

    name: str
    curves: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict)


def find_runs(path: Path) -> list[Path]:
    """Every run folder under ``path`` (``path`` itself included): one whose ``tensorboard/``
    holds event files. ``path`` may also be a run's ``tensorboard/`` folder."""
    events = path.rglob(EVENT_FILES) if path.is_dir() else []
    return sorted({e.parent.parent for e in events if e.parent.name == "tensorboard"})


def _run_name(run_dir: Path, root: Path) -> str:
    """The run's folder relative to ``root`` (a sweep job's override dirname), or its own name
    when ``root`` is the run itself."""
    try:
        rel = run_dir.relative_to(root)
    except ValueError:  # root is the run's tensorboard/ folder
        return run_dir.name
    return run_dir.name if rel == Path() else rel.as_posix()


def _read_events(tb_dir: Path) -> tuple[dict[str, list[tuple[int, float, float]]], dict | None]:
    """Scalar curves (one point per step, the last written wins) and the HPARAMS values."""
    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})  # 0 = keep every point
    events.Reload()
    curves = {}
    for tag in events.Tags()["scalars"]:
        by_step = {e.step: (e.step, float(e.value), e.wall_time) for e in events.Scalars(tag)}
        curves[tag] = [by_step[s] for s in sorted(by_step)]
    try:
        content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
        info = hparams_metadata.parse_session_start_info_plugin_data(
            content[hparams_metadata.SESSION_START_INFO_TAG]
        )
    except KeyError:  # no HPARAMS yet: written at the end of the run
        return curves, None
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
    return curves, hparams


def _hydra_params(run_dir: Path) -> dict[str, Any]:
    """loss, batch_size, lr as Hydra saved them at the start of the run (empty if missing)."""
    params: dict[str, Any] = {}
    hydra_file, config_file = run_dir / ".hydra/hydra.yaml", run_dir / ".hydra/config.yaml"
    if hydra_file.is_file():
        hydra_cfg = yaml.safe_load(hydra_file.read_text()) or {}
        choices = hydra_cfg.get("hydra", {}).get("runtime", {}).get("choices", {})
        params["loss"] = choices.get("loss")
    if config_file.is_file():
        cfg = yaml.safe_load(config_file.read_text()) or {}
        params["batch_size"] = cfg.get("data", {}).get("batch_size")
        params["lr"] = cfg.get("optimizer", {}).get("lr")
    return params


def _read_run(run_dir: Path, root: Path) -> _Run:
    curves, hparams = _read_events(run_dir / "tensorboard")
    params = hparams if hparams is not None else _hydra_params(run_dir)
    run = _Run(_run_name(run_dir, root), curves)

    def last(tag: str) -> float | None:
        return curves[tag][-1][1] if curves.get(tag) else None

    test_acc = curves.get("acc/test", [])
    finite = [(value, -epoch) for epoch, value, _ in test_acc if math.isfinite(value)]
    best_acc, minus_epoch = max(finite) if finite else (None, None)  # first epoch on a tie
    epochs = test_acc[-1][0] if test_acc else None
    seconds = None
    if len(test_acc) > 1:
        (first_epoch, _, first_time), (last_epoch, _, last_time) = test_acc[0], test_acc[-1]
        seconds = (last_time - first_time) / (last_epoch - first_epoch)

    watched = [t for t in curves if t == "acc/test" or t.startswith(("loss/", "batch/loss"))]
    non_finite = any(not math.isfinite(v) for t in watched for _, v, _ in curves[t])
    if non_finite or (hparams or {}).get("status") == "diverged":
        status = "diverged"
    elif hparams is None:
        status = "incomplete"
    else:
        status = str(hparams.get("status", "ok"))

    batch_size, lr = params.get("batch_size"), params.get("lr")
    run.row = {
        "best": "",
        "run": run.name,
        "loss": params.get("loss"),
        "batch_size": int(batch_size) if batch_size is not None else None,
        "lr": float(lr) if lr is not None else None,
        "epochs": epochs,
        "final_test_acc": last("acc/test"),
        "best_test_acc": best_acc,
        "best_epoch": -minus_epoch if minus_epoch is not None else None,
        "final_train_acc": last("acc/train"),
        "final_gap": last("gap/acc"),
        "final_test_loss": last("loss/test"),
        "sec_per_epoch": seconds,
        "status": status,
    }
    return run


def _sort_key(row: dict[str, Any]) -> tuple:
    acc = row["final_test_acc"]
    ranked = row["status"] == "ok" and acc is not None and math.isfinite(acc)
    order = _STATUS_ORDER.get(row["status"], 1) if not ranked else 0
    return (order, -acc if ranked else 0.0, row["run"])


# -- output ---------------------------------------------------------------------------------


def _cell(key: str, value: Any) -> str:
    """A value as the Markdown table shows it."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value.replace("|", "\\|")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if key == "lr":
        return f"{value:g}"
    if key == "sec_per_epoch":
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned Markdown table (text left, numbers right)."""
    cells = [list(COLUMNS.values())] + [[_cell(k, r[k]) for k in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    left = [k in _LEFT for k in COLUMNS]

    def line(row: list[str]) -> str:
        padded = [
            c.ljust(w) if lft else c.rjust(w) for c, w, lft in zip(row, widths, left, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 2) if lft else "-" * (w + 1) + ":" for w, lft in zip(widths, left, strict=True)
    )
    return "\n".join([line(cells[0]), rule + "|", *(line(r) for r in cells[1:])])


def _write_csv(rows: list[dict[str, Any]], file: Path) -> None:
    with file.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:  # floats as repr(): the shortest text that reads back to the same value
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _write_markdown(rows: list[dict[str, Any]], table: str, path: Path, file: Path) -> None:
    text = f"""# losslab report: {path}

{len(rows)} run(s), sorted by final test accuracy; `*` marks the best run; diverged and
incomplete runs come last. Accuracies and losses are measured on the full train and test sets
after each epoch; gap = train accuracy - test accuracy; best epoch = where the test accuracy
peaked; s/epoch = wall-clock seconds per epoch, evaluation included.

{table}

![train vs test accuracy and loss per epoch](curves.png)
"""
    file.write_text(text)


def _grid(runs: list[_Run]) -> tuple[list, list, dict] | None:
    """Batch sizes (rows), losses (columns) and ``(batch_size, loss) -> run`` when every run
    has a distinct pair, else None."""
    cells = {(r.row["batch_size"], r.row["loss"]): r for r in runs}
    if len(cells) != len(runs) or any(None in pair for pair in cells):
        return None
    rows = sorted({bs for bs, _ in cells})
    columns = sorted({loss for _, loss in cells})
    return rows, columns, cells


def _panel(ax: Any, run: _Run) -> None:
    title = "\n".join(textwrap.wrap(run.name.replace(",", ", "), 48))
    if run.row["status"] != "ok":
        title += f"  [{run.row['status']}]"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (solid)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax = ax.twinx()
    loss_ax.set_ylabel("loss (dashed)")
    for kind, axis, style in (("acc", ax, "-"), ("loss", loss_ax, "--")):
        for split, color in _SPLIT_COLORS.items():
            points = run.curves.get(f"{kind}/{split}")
            if points:
                epochs = [p[0] for p in points]
                values = [p[1] if math.isfinite(p[1]) else math.nan for p in points]
                marker = "." if len(points) <= 30 else None  # dots hide the dashes of long curves
                axis.plot(
                    epochs, values, style, color=color, marker=marker, label=f"{split} {kind}"
                )
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = loss_ax.get_legend_handles_labels()
    if handles or more_handles:
        ax.legend(handles + more_handles, labels + more_labels, fontsize=7, loc="center right")
    else:
        ax.text(0.5, 0.5, "no epoch curves", ha="center", va="center", transform=ax.transAxes)


def _plot_curves(runs: list[_Run], file: Path) -> None:
    """Write the curves figure: rows = batch size, columns = loss, or one panel per run."""
    grid = _grid(runs)
    if grid is not None:
        batch_sizes, losses, cells = grid
        layout = [[cells.get((bs, loss)) for loss in losses] for bs in batch_sizes]
        heading = "rows: batch size, columns: loss"
    else:
        ncols = min(len(runs), 3)
        layout = [runs[i : i + ncols] for i in range(0, len(runs), ncols)]
        layout[-1] += [None] * (ncols - len(layout[-1]))
        heading = "one panel per run"
    nrows, ncols = len(layout), len(layout[0])
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax_row, run_row in zip(axes, layout, strict=True):
        for ax, run in zip(ax_row, run_row, strict=True):
            if run is None:
                ax.set_visible(False)
            else:
                _panel(ax, run)
    if len(runs) > 1:
        fig.suptitle(f"train vs test accuracy and loss per epoch ({heading})")
    fig.savefig(file, dpi=100)


def report(path: Path, out_dir: Path | None = None) -> list[dict[str, Any]]:
    """Summarise every run under ``path``; write ``summary.md``, ``summary.csv`` and
    ``curves.png`` into ``out_dir`` (default ``path``); print the table; return the rows.

    Rows are dicts keyed by :data:`COLUMNS`, sorted best first (``row["best"] == "*"`` for the
    best ``ok`` run). Missing values are ``None``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no event files under ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such folder; expected a run or sweep folder holding {EXPECTED}"
        )
    run_dirs = find_runs(path)
    if not run_dirs:
        raise ValueError(
            f"{path}: no TensorBoard event files found; expected {EXPECTED} "
            f"(a run folder logs/<task>/runs/<time> or a sweep folder logs/<task>/multiruns/<time>)"
        )
    runs = sorted((_read_run(d, path) for d in run_dirs), key=lambda r: _sort_key(r.row))
    rows = [r.row for r in runs]
    if rows[0]["status"] == "ok" and rows[0]["final_test_acc"] is not None:
        rows[0]["best"] = "*"

    out_dir = Path(out_dir) if out_dir is not None else path
    out_dir.mkdir(parents=True, exist_ok=True)
    table = _markdown_table(rows)
    _write_csv(rows, out_dir / "summary.csv")
    _write_markdown(rows, table, path, out_dir / "summary.md")
    _plot_curves(runs, out_dir / "curves.png")
    print(f"{table}\n\nlosslab-report: summary.md, summary.csv, curves.png in {out_dir}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """``losslab-report PATH [--out DIR]``; returns the exit status (2 when nothing to report)."""
    parser = argparse.ArgumentParser(
        prog="losslab-report",
        description="Summary table (Markdown + CSV) and curves figure of losslab runs.",
    )
    parser.add_argument(
        "path",
        type=Path,
        help="a run folder (logs/<task>/runs/<time>) or a sweep (logs/<task>/multiruns/<time>)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for summary.md, summary.csv and curves.png (default: PATH)",
    )
    args = parser.parse_args(argv)
    try:
        report(args.path, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"losslab-report: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

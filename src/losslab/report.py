"""``losslab-report PATH``: tables and a figure for a run, a sweep, or a study stage.

Reads what ``losslab-train`` wrote, never the training code. A run is a folder holding event
files (``events.out.tfevents.*``), ``.hydra/config.yaml`` or ``error.txt``; ``PATH`` may be a
run (``logs/<task>/runs/<time>``) or any folder above runs (a sweep,
``logs/<task>/multiruns/<time>``). Writes into ``PATH`` (or ``--out DIR``):

- ``summary.md`` / ``summary.csv``: one row per run: loss, batch size, lr, seed, epochs, the
  final validation and test accuracy, the best epoch and its accuracy, train accuracy, gap,
  test NLL, ECE and Brier score, test loss, seconds per epoch, status and, for a failed job,
  the first line of its error.
- **Selection is made on validation.** When the runs hold a validation split
  (``data.val_size > 0``) the rows are ranked, the best run is marked ``*`` and the best epoch
  is found by validation accuracy; test is only reported. Without one the ranking is by test
  accuracy, and the report says plainly that this is not a fair selection.
- ``groups.md`` / ``groups.csv`` when some runs differ only in ``seed``: one row per group,
  every metric as mean, standard deviation, n and a 95% confidence interval (Student's t,
  ``scipy.stats.t``); with n = 1 no interval is shown.
- ``curves.png``: train / val / test accuracy (solid) and loss (dashed) per epoch, one panel
  per run, or per group (mean, with a 95% band) when seeds repeat; a grid of batch size x loss
  when the runs or groups form one.

Statuses: ``ok``; ``diverged`` (the run said so, or a loss or the test accuracy is not finite);
``failed`` (a sweep job that raised: ``error.txt``); ``incomplete`` (stopped before writing its
HPARAMS: crashed, killed or still running).

Reader: TensorBoard's own ``EventAccumulator``, the reader the dashboard itself uses, so the
report sees exactly what TensorBoard shows. The figure is drawn on a bare
:class:`matplotlib.figure.Figure` (Agg, no pyplot), so it works on machines without a display.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

# tensorboard's reader logs an INFO line per event file read ("No path found after ...")
logging.getLogger("tensorboard").setLevel(logging.WARNING)

__all__ = ["COLUMNS", "GROUP_METRICS", "find_runs", "main", "report", "run_status", "summarize"]

EVENT_FILES = "events.out.tfevents.*"
ERROR_FILE = "error.txt"
EXPECTED = f"run folders holding {EVENT_FILES} files, as losslab-train writes them"

# CSV header (the row dicts' keys) -> Markdown header.
COLUMNS = {
    "best": "best",
    "run": "run",
    "loss": "loss",
    "batch_size": "batch size",
    "lr": "lr",
    "seed": "seed",
    "epochs": "epochs",
    "val_acc": "val acc",
    "test_acc": "test acc",
    "best_epoch": "best epoch",
    "best_acc": "best acc",
    "train_acc": "train acc",
    "gap": "gap",
    "test_nll": "test NLL",
    "test_ece": "test ECE",
    "test_brier": "test Brier",
    "test_loss": "test loss",
    "sec_per_epoch": "s/epoch",
    "status": "status",
    "error": "error",
}
# row key -> the epoch-curve tag whose last value it is
FINAL = {
    "val_acc": "acc/val",
    "test_acc": "acc/test",
    "train_acc": "acc/train",
    "gap": "gap/acc",
    "test_nll": "nll/test",
    "test_ece": "ece/test",
    "test_brier": "brier/test",
    "test_loss": "loss/test",
}
# metrics aggregated over the seeds of a group (comparable across losses, test_loss excepted)
GROUP_METRICS = ("val_acc", "test_acc", "test_nll", "test_ece", "test_brier", "gap", "test_loss")
_TEXT = {"best", "run", "loss", "status", "error", "group"}
_STATUS_ORDER = {"ok": 0, "diverged": 1, "incomplete": 2, "failed": 3}
_SPLIT_COLORS = {"train": "tab:blue", "val": "tab:green", "test": "tab:orange"}
Curve = list[tuple[int, float]]


@dataclass
class _Run:
    """What one run folder holds: its epoch curves ``tag -> [(epoch, value)]``, its summary
    row, and the key of its seed group (its overrides, ``seed`` left out)."""

    name: str
    curves: dict[str, Curve] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict)
    group: tuple[str, ...] = ()


def find_runs(path: Path) -> list[Path]:
    """Every run folder under ``path`` (``path`` itself included)."""
    if not path.is_dir():
        return []
    found = {e.parent for e in path.rglob(EVENT_FILES)}
    found |= {c.parent.parent for c in path.rglob(".hydra/config.yaml")}
    found |= {e.parent for e in path.rglob(ERROR_FILE)}
    return sorted(found)


def _run_name(run_dir: Path, root: Path) -> str:
    """The run's folder relative to ``root`` (a sweep job's name), or its own name when
    ``root`` is the run itself."""
    rel = run_dir.relative_to(root)
    return run_dir.name if rel == Path() else rel.as_posix()


def _read_events(run_dir: Path) -> tuple[dict[str, Curve], dict | None]:
    """Scalar curves (one point per step, the last written wins) and the HPARAMS values."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0 = every point
    events.Reload()
    curves = {}
    for tag in events.Tags()["scalars"]:
        by_step = {e.step: float(e.value) for e in events.Scalars(tag)}
        curves[tag] = sorted(by_step.items())
    try:
        content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
        info = hparams_metadata.parse_session_start_info_plugin_data(
            content[hparams_metadata.SESSION_START_INFO_TAG]
        )
    except KeyError:  # no HPARAMS: written at the end of the run
        return curves, None
    return curves, {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def _error_line(run_dir: Path) -> str | None:
    file = run_dir / ERROR_FILE
    return file.read_text().split("\n", 1)[0] if file.is_file() else None


def run_status(run_dir: Path) -> str:
    """``ok``, ``diverged``, ``failed``, ``incomplete``, or ``new`` for a folder with no run."""
    if _error_line(run_dir) is not None:
        return "failed"
    if not any(run_dir.glob(EVENT_FILES)):
        return "incomplete" if (run_dir / ".hydra" / "config.yaml").is_file() else "new"
    curves, hparams = _read_events(run_dir)
    return _status(curves, hparams)


def _status(curves: dict[str, Curve], hparams: dict | None) -> str:
    watched = [t for t in curves if t == "acc/test" or t.startswith(("loss/", "batch/loss"))]
    if any(not math.isfinite(v) for t in watched for _, v in curves[t]):
        return "diverged"
    if hparams is None:
        return "incomplete"
    return str(hparams.get("status", "ok"))


def _saved_params(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """loss, batch_size, lr, seed as the run's ``.hydra/`` saved them, and its overrides."""
    params: dict[str, Any] = {}
    hydra_file, config_file = run_dir / ".hydra/hydra.yaml", run_dir / ".hydra/config.yaml"
    overrides_file = run_dir / ".hydra/overrides.yaml"
    if hydra_file.is_file():
        hydra_cfg = yaml.safe_load(hydra_file.read_text()) or {}
        params["loss"] = (
            hydra_cfg.get("hydra", {}).get("runtime", {}).get("choices", {}).get("loss")
        )
    if config_file.is_file():
        cfg = yaml.safe_load(config_file.read_text()) or {}
        params["batch_size"] = cfg.get("data", {}).get("batch_size")
        params["lr"] = cfg.get("optimizer", {}).get("lr")
        params["seed"] = cfg.get("seed")
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    return params, list(overrides or [])


def _number(value: Any, kind: type) -> Any:
    """``value`` as an int / float, or None (an interpolation such as a study's chosen lr)."""
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _read_run(run_dir: Path, root: Path) -> _Run:
    curves, hparams = _read_events(run_dir) if any(run_dir.glob(EVENT_FILES)) else ({}, None)
    saved, overrides = _saved_params(run_dir)
    params = {**saved, **(hparams or {})}
    run = _Run(_run_name(run_dir, root), curves)
    error = _error_line(run_dir)
    selection = "val" if curves.get("acc/val") else "test"
    finite = [(v, -epoch) for epoch, v in curves.get(f"acc/{selection}", []) if math.isfinite(v)]
    best_acc, minus_epoch = max(finite) if finite else (None, None)  # first epoch on a tie
    times = [v for epoch, v in curves.get("time/epoch", []) if epoch > 0]
    run.row = {
        "best": "",
        "run": run.name,
        "loss": params.get("loss"),
        "batch_size": _number(params.get("batch_size"), int),
        "lr": _number(params.get("lr"), float),
        "seed": _number(params.get("seed"), int),
        "epochs": curves["acc/test"][-1][0] if curves.get("acc/test") else None,
        **{key: curves[tag][-1][1] if curves.get(tag) else None for key, tag in FINAL.items()},
        "best_epoch": -minus_epoch if minus_epoch is not None else None,
        "best_acc": best_acc,
        "sec_per_epoch": sum(times) / len(times) if times else None,
        "status": "failed" if error is not None else _status(curves, hparams),
        "error": error,
    }
    # runs that differ only in their seed share a group: their overrides without seed=...
    kept = [o for o in overrides if not o.startswith(("seed=", "ckpt_path=", "hydra."))]
    run.group = tuple(sorted(kept)) if overrides else (run.name,)
    return run


def _selection(rows: list[dict[str, Any]]) -> str:
    """``val`` when every ranked run holds a validation split, else ``test``."""
    ranked = [r for r in rows if r["status"] == "ok"]
    return "val" if ranked and all(r["val_acc"] is not None for r in ranked) else "test"


def _sort_key(row: dict[str, Any], metric: str) -> tuple:
    value = row.get(metric)
    ranked = row["status"] == "ok" and value is not None and math.isfinite(value)
    order = 0 if ranked else _STATUS_ORDER.get(row["status"], 1)
    return (order, -value if ranked else 0.0, row["run"])


# -- statistics over seeds ------------------------------------------------------------------


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | int | None]:
    """n, mean, sample standard deviation and the two-sided Student-t confidence interval of
    the mean (``scipy.stats.t``). With n = 1 there is no spread: std and interval are None."""
    import numpy as np

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    out: dict[str, float | int | None] = {"n": n, "mean": float(x.mean()) if n else None}
    out.update(std=None, ci_low=None, ci_high=None)
    if n >= 2:
        std, mean = float(x.std(ddof=1)), float(x.mean())
        low = high = mean  # identical values: the interval is the point itself
        if std > 0:
            low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=stats.sem(x))
        out.update(std=std, ci_low=float(low), ci_high=float(high))
    return out


def _groups(runs: list[_Run]) -> list[tuple[str, list[_Run]]]:
    """Finished runs by group, in first-seen order, each named by the overrides that set it
    apart from the other groups (``loss=sse,data.batch_size=100``)."""
    groups: dict[tuple[str, ...], list[_Run]] = {}
    for run in runs:
        if run.row["status"] == "ok":
            groups.setdefault(run.group, []).append(run)
    common = set.intersection(*map(set, groups)) if len(groups) > 1 else set()
    return [
        (",".join(o for o in key if o not in common), members) for key, members in groups.items()
    ]


def _group_rows(groups: list[tuple[str, list[_Run]]], selection: str) -> list[dict[str, Any]]:
    rows = []
    for name, members in groups:
        first = members[0].row
        row: dict[str, Any] = {
            "best": "",
            "group": name or "(defaults)",
            "loss": first["loss"],
            "batch_size": first["batch_size"],
            "lr": first["lr"],
            "seeds": " ".join(
                str(s) for s in sorted(r.row["seed"] for r in members if r.row["seed"] is not None)
            ),
        }
        for metric in GROUP_METRICS:
            stats = summarize([r.row[metric] for r in members])
            row["n"] = max(row.get("n", 0), stats["n"])
            for key, value in stats.items():
                if key != "n":
                    row[f"{metric}_{key}"] = value
        rows.append(row)
    key = f"{selection}_acc_mean"
    rows.sort(key=lambda r: -(r[key] if r[key] is not None else -math.inf))
    if rows and rows[0][key] is not None:
        rows[0]["best"] = "*"
    return rows


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


def mean_ci(stats: dict[str, Any], digits: int = 4) -> str:
    """``0.9602 ± 0.0011 (sd 0.0009, n=5)``: mean ± the 95% CI's half-width; n = 1: no interval."""
    if stats.get("mean") is None:
        return "-"
    if stats.get("ci_high") is None:
        return f"{stats['mean']:.{digits}f} (n={stats['n']})"
    half = (stats["ci_high"] - stats["ci_low"]) / 2
    return f"{stats['mean']:.{digits}f} ± {half:.{digits}f} (sd {stats['std']:.{digits}f}, n={stats['n']})"


def markdown_table(header: list[str], rows: list[list[str]], text: Sequence[bool]) -> str:
    """An aligned Markdown table: text columns left, numbers right."""
    cells = [header, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        padded = [
            c.ljust(w) if t else c.rjust(w) for c, w, t in zip(row, widths, text, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 2) if t else "-" * (w + 1) + ":" for w, t in zip(widths, text, strict=True)
    )
    return "\n".join([line(header), rule + "|", *(line(r) for r in rows)])


def _runs_table(rows: list[dict[str, Any]]) -> str:
    """The runs, without the columns that are empty in every row."""
    keys = [k for k in COLUMNS if k in ("best", "run") or any(r[k] not in (None, "") for r in rows)]
    body = [[_cell(k, r[k]) for k in keys] for r in rows]
    return markdown_table([COLUMNS[k] for k in keys], body, [k in _TEXT for k in keys])


def _groups_table(rows: list[dict[str, Any]]) -> str:
    metrics = [m for m in GROUP_METRICS if any(r[f"{m}_mean"] is not None for r in rows)]
    header = ["best", "group", "loss", "batch size", "lr", "n", *(COLUMNS[m] for m in metrics)]
    body = [
        [
            r["best"],
            _cell("group", r["group"]),
            _cell("loss", r["loss"]),
            _cell("batch_size", r["batch_size"]),
            _cell("lr", r["lr"]),
            str(r["n"]),
            *(
                mean_ci(
                    {k: r[f"{m}_{k}"] for k in ("mean", "std", "ci_low", "ci_high")} | {"n": r["n"]}
                )
                for m in metrics
            ),
        ]
        for r in rows
    ]
    return markdown_table(
        header, body, [True, True, True, False, False, False, *([False] * len(metrics))]
    )


def _write_csv(rows: list[dict[str, Any]], fieldnames: list[str], file: Path) -> None:
    with file.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        for row in rows:  # floats as repr(): the shortest text that reads back to the same value
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in fieldnames})


def _selection_note(selection: str) -> str:
    if selection == "val":
        return (
            "Ranked by final **validation** accuracy: the best run (`*`) and each run's best "
            "epoch are chosen on the validation split; test is only reported."
        )
    return (
        "Ranked by final **test** accuracy because these runs hold no validation split "
        "(`data.val_size=0`): **this ranking is not a fair selection** (choosing on the test "
        "set overstates what the choice will do on new data). Hold out a validation split "
        "(`data.val_size=10000`) to choose."
    )


# -- figure ---------------------------------------------------------------------------------


def _mean_curves(
    runs: list[_Run],
) -> tuple[dict[str, Curve], dict[str, list[tuple[int, float, float]]]]:
    """Per tag, the mean over ``runs`` at every epoch all of them reached, and its 95% band."""
    means, bands = {}, {}
    for tag in runs[0].curves:
        per_run = [dict(r.curves.get(tag, [])) for r in runs]
        epochs = sorted(set.intersection(*(set(p) for p in per_run)))
        stats = [(e, summarize([p[e] for p in per_run])) for e in epochs]
        means[tag] = [(e, s["mean"]) for e, s in stats if s["mean"] is not None]
        bands[tag] = [(e, s["ci_low"], s["ci_high"]) for e, s in stats if s["ci_low"] is not None]
    return means, bands


def _panel(ax: Any, title: str, curves: dict[str, Curve], bands: dict | None = None) -> None:
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
        for split, color in _SPLIT_COLORS.items():
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


def _plot(
    panels: list[tuple[str, dict, dict | None, dict[str, Any]]], heading: str, file: Path
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
        layout = [panels[i : i + ncols] for i in range(0, len(panels), ncols)]
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


# -- the report -----------------------------------------------------------------------------


def read_runs(path: Path) -> list[_Run]:
    """Every run under ``path``, read. Raises FileNotFoundError / ValueError (see report)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder; expected a run or a folder of {EXPECTED}")
    run_dirs = find_runs(path)
    if not run_dirs:
        raise ValueError(
            f"{path}: no TensorBoard event files found; expected {EXPECTED} "
            f"(a run folder logs/<task>/runs/<time> or a sweep folder logs/<task>/multiruns/<time>)"
        )
    return [_read_run(d, path) for d in run_dirs]


def report(path: Path, out_dir: Path | None = None) -> list[dict[str, Any]]:
    """Summarise every run under ``path``; write ``summary.md``, ``summary.csv``,
    ``curves.png`` (and ``groups.md``, ``groups.csv`` when seeds repeat) into ``out_dir``
    (default ``path``); print the tables; return the run rows.

    Rows are dicts keyed by :data:`COLUMNS`, sorted best first by the selection metric (``*``
    on the best ``ok`` run). Missing values are ``None``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no run under ``path``.
    """
    path = Path(path)
    runs = read_runs(path)
    rows = [r.row for r in runs]
    selection = _selection(rows)
    order = sorted(range(len(runs)), key=lambda i: _sort_key(rows[i], f"{selection}_acc"))
    runs, rows = [runs[i] for i in order], [rows[i] for i in order]
    if rows[0]["status"] == "ok" and rows[0][f"{selection}_acc"] is not None:
        rows[0]["best"] = "*"

    out_dir = Path(out_dir) if out_dir is not None else path
    out_dir.mkdir(parents=True, exist_ok=True)
    table = _runs_table(rows)
    _write_csv(rows, list(COLUMNS), out_dir / "summary.csv")
    note = _selection_note(selection)
    failed = sum(r["status"] == "failed" for r in rows)
    text = [f"# losslab report: {path}", "", f"{len(rows)} run(s); {note}", ""]
    if failed:
        text += [f"**{failed} run(s) failed**: see `error.txt` in their folders.", ""]
    text += [
        "Accuracies, NLL, ECE and Brier are measured on the full splits after the last epoch; "
        "gap = train - test accuracy; NLL, ECE and Brier compare across losses, the loss values "
        "do not; s/epoch = seconds of training and evaluation per epoch.",
        "",
        table,
        "",
    ]
    groups = _groups(runs)
    repeated = any(len(members) > 1 for _, members in groups)
    printed = table
    if repeated:
        group_rows = _group_rows(groups, selection)
        fields = ["best", "group", "loss", "batch_size", "lr", "n", "seeds"]
        fields += [f"{m}_{k}" for m in GROUP_METRICS for k in ("mean", "std", "ci_low", "ci_high")]
        _write_csv(group_rows, fields, out_dir / "groups.csv")
        group_table = _groups_table(group_rows)
        (out_dir / "groups.md").write_text(
            f"# Runs that differ only in seed: {path}\n\nmean ± half-width of the 95% confidence "
            f"interval (Student's t), sd = sample standard deviation, n = seeds; ranked by "
            f"{selection} accuracy.\n\n{group_table}\n"
        )
        text += ["## Over seeds", "", group_table, ""]
        printed += "\n\n" + group_table
        panels = []
        for name, members in groups:
            means, bands = _mean_curves(members)
            panels.append((f"{name} (mean of {len(members)})", means, bands, members[0].row))
        heading = "mean over seeds with 95% band, per epoch"
    else:
        panels = [
            (
                r.name + ("" if r.row["status"] == "ok" else f"  [{r.row['status']}]"),
                r.curves,
                None,
                r.row,
            )
            for r in runs
        ]
        heading = "train / val / test accuracy and loss per epoch"
    (out_dir / "summary.md").write_text("\n".join([*text, "![curves](curves.png)", ""]))
    if panels:
        _plot(panels, heading, out_dir / "curves.png")
    print(f"{printed}\n\n{note}\nlosslab-report: summary.md, summary.csv, curves.png in {out_dir}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """``losslab-report PATH [--out DIR]``; returns the exit status (2 when nothing to report)."""
    parser = argparse.ArgumentParser(
        prog="losslab-report",
        description="Summary tables (Markdown + CSV) and curves figure of losslab runs.",
    )
    parser.add_argument(
        "path",
        type=Path,
        help="a run (logs/<task>/runs/<time>) or a sweep (logs/<task>/multiruns/<time>)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the outputs (default: PATH)"
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

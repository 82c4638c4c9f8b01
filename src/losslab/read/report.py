"""``losslab-report PATH``: tables and a figure for a run, a sweep, or a study stage.

``PATH`` may be a run (``logs/<task>/runs/<time>``) or any folder above runs (a sweep,
``logs/<task>/multiruns/<time>``). Writes into ``PATH`` (or ``--out DIR``):

- ``summary.md`` / ``summary.csv``: one row per run (:data:`losslab.read.runs.COLUMNS`): loss, batch
  size, lr, label noise, seed, epochs, the final validation and test accuracy, the best epoch and
  its accuracy, the test accuracy at that epoch, train accuracy, gap, test NLL, ECE and Brier
  score, test loss, seconds per epoch, status and, for a failed job, the first line of its error.
- **Selection is made on validation.** When the runs hold a validation split
  (``data.val_size > 0``) the rows are ranked, the best run is marked ``*`` and the best epoch
  is found by validation accuracy; test is only reported. Without one the ranking is by test
  accuracy, and the report says plainly that this is not a fair selection.
- ``groups.md`` / ``groups.csv`` when some runs differ only in ``seed``: one row per group,
  every metric as mean, standard deviation, n and a 95% confidence interval (Student's t); with
  n = 1 no interval is shown.
- ``curves.png``: train / val / test accuracy (in the loss's colour) and loss (gray) per epoch,
  one panel per run, or per group (mean, with the min-max band of its seeds; a seed not drawn is
  named on the panel) when seeds repeat; a grid (rows: what else sets the panels apart, columns:
  the losses) when the runs or groups form one.

Statuses (:meth:`losslab.run.rundir.RunDir.status`): ``ok``; ``diverged`` (a non-finite loss
stopped it); ``failed`` (a sweep job that raised: ``error.txt``); ``incomplete`` (started, not
ended: still running, or killed).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import yaml

from losslab.errors import check_out_dir, user_main
from losslab.names import TRAIN_IMAGES
from losslab.read.figures import CurvePanel, mean_curves, plot_curves
from losslab.read.runs import COLUMNS, Run, distinct, read_runs
from losslab.read.stats import summarize
from losslab.read.tables import cell, markdown_table, mean_ci, write_csv

__all__ = ["GROUP_METRICS", "main", "report"]

# metrics aggregated over the seeds of a group (comparable across losses, test_loss excepted)
GROUP_METRICS = ("val_acc", "test_acc", "test_nll", "test_ece", "test_brier", "gap", "test_loss")
_TEXT = {"best", "run", "loss", "status", "error", "group"}
_STATUS_ORDER = {"ok": 0, "diverged": 1, "incomplete": 2, "failed": 3}
SHOWN_ROWS = 20  # more runs than this: the console gets a line, the files the tables


def _selection(rows: list[dict[str, Any]]) -> str:
    """``val`` when every ranked run holds a validation split, else ``test``."""
    ranked = [r for r in rows if r["status"] == "ok"]
    return "val" if ranked and all(r["val_acc"] is not None for r in ranked) else "test"


def _sort_key(row: dict[str, Any], metric: str) -> tuple:
    value = row.get(metric)
    ranked = row["status"] == "ok" and value is not None and math.isfinite(value)
    order = 0 if ranked else _STATUS_ORDER.get(row["status"], 1)
    return (order, -value if ranked else 0.0, row["run"])


def _groups(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Runs by group (what they are without their seed), in first-seen order, each named by the
    overrides that set it apart from the other groups (``loss=sse,data.batch_size=100``).
    Every status counts: the tables average the ``ok`` members, the figure names the others."""
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    labels = [set(members[0].overrides) for members in groups.values()]
    common = set.intersection(*labels) if len(labels) > 1 else set()
    return [
        (",".join(o for o in members[0].overrides if o not in common), members)
        for members in groups.values()
    ]


def _ok(members: list[Run]) -> list[Run]:
    return [m for m in members if m.row["status"] == "ok"]


def _place(name: str) -> tuple[str, tuple]:
    """A panel's grid row (its name without ``loss=...``) and the key that sorts the rows by
    value (``data.batch_size=32`` before ``data.batch_size=100``)."""
    parts = [o for o in name.split(",") if o and not o.startswith("loss=")]
    key = []
    for part in parts:
        value = yaml.safe_load(part.partition("=")[2]) if "=" in part else part
        key.append((0, value, "") if isinstance(value, int | float) else (1, 0, str(value)))
    return ",".join(parts), tuple(key)


def _missing_note(members: list[Run], seeds: set[int]) -> str:
    """The seeds a group's panel does not draw and why: a run that is not ``ok``, or a seed
    that other groups ran and this one has no run of."""
    not_ok = [f"seed {m.row['seed']} {m.row['status']}" for m in members if m.row["status"] != "ok"]
    have = {m.row["seed"] for m in members}
    absent = [f"seed {s} no run" for s in sorted(seeds - have)]
    left = not_ok + absent
    return f"not drawn: {', '.join(left)}" if left else ""


def _describe(row: dict[str, Any], settings: dict[str, Any]) -> str:
    """A single run's title: what it trained (``cee, batch size 100, lr 0.01, seed 0``), with a
    training subset and hidden layers other than the default's."""
    parts = [str(row["loss"])] if row.get("loss") else []
    for key, label in (("batch_size", "batch size"), ("lr", "lr"), ("label_noise", "label noise")):
        if row.get(key) is not None and not (key == "label_noise" and row[key] == 0):
            parts.append(f"{label} {row[key]:g}")
    size, held_out = settings.get("train_size"), settings.get("val_size") or 0
    if isinstance(size, int) and size < TRAIN_IMAGES - held_out:
        parts.append(f"{size} train images")
    if settings.get("hidden") not in (None, "100"):
        parts.append(f"hidden {settings['hidden']}")
    if row.get("seed") is not None:
        parts.append(f"seed {row['seed']}")
    return ", ".join(parts)


def _panels(runs: list[Run], groups: list[tuple[str, list[Run]]] | None) -> list[CurvePanel]:
    """The panels of ``curves.png``: one per group (mean and min-max band of its ``ok`` seeds,
    the others named) or, without repeated seeds, one per run."""
    if groups is None:
        panels = []
        for r in runs:
            title = _describe(r.row, r.settings) if len(runs) == 1 or r.name == "." else r.name
            if r.row["status"] != "ok":
                title += f"  [{r.row['status']}]"
            row, key = _place(r.name)
            panels.append(CurvePanel(title, r.row["loss"], r.curves, None, row, "", key))
        return panels
    seeds = {m.row["seed"] for _, members in groups for m in members if m.row["seed"] is not None}
    panels = []
    for name, members in groups:
        ok = _ok(members)
        means, bands = mean_curves([m.curves for m in ok]) if ok else ({}, {})
        row, key = _place(name)
        panels.append(
            CurvePanel(
                f"{name or '(defaults)'} ({len(ok)} seed{'s' * (len(ok) != 1)})",
                members[0].row["loss"],
                means,
                bands,
                row,
                _missing_note(members, seeds),
                key,
            )
        )
    return panels


# settings that are columns already, and those that tell how a run ran, not what it is
_SHOWN_SETTINGS = {"loss", "batch_size", "lr", "label_noise", "seed", "threads"}


def _telling_apart(runs: list[Run]) -> list[str]:
    """The settings whose values differ between the runs (``train_size``, ``hidden``,
    ``optimizer``, ``scheduler``, ...): the columns that tell runs apart, in first-seen order."""
    keys = list(dict.fromkeys(k for r in runs for k in r.settings if k not in _SHOWN_SETTINGS))
    return [k for k in keys if len({repr(r.settings.get(k)) for r in runs}) > 1]


def _group_rows(groups: list[tuple[str, list[Run]]], selection: str) -> list[dict[str, Any]]:
    rows = []
    for name, members in groups:
        members = _ok(members)
        if not members:
            continue
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


def _columns(extra: list[str]) -> dict[str, str]:
    """:data:`~losslab.read.runs.COLUMNS` with the ``extra`` settings after ``lr``."""
    keys = list(COLUMNS)
    at = keys.index("lr") + 1
    names = {k: COLUMNS.get(k, k.replace("_", " ")) for k in [*keys[:at], *extra, *keys[at:]]}
    return names


def _runs_table(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """The runs, without the columns that are empty in every row."""
    keys = [
        k for k in columns if k in ("best", "run") or any(r.get(k) not in (None, "") for r in rows)
    ]
    body = [[cell(k, r.get(k)) for k in keys] for r in rows]
    text = [
        k in _TEXT or isinstance(next((r[k] for r in rows if r.get(k) is not None), 0), str)
        for k in keys
    ]
    return markdown_table([columns[k] for k in keys], body, text)


def _groups_table(rows: list[dict[str, Any]]) -> str:
    metrics = [m for m in GROUP_METRICS if any(r[f"{m}_mean"] is not None for r in rows)]
    header = ["best", "group", "loss", "batch size", "lr", "n", *(COLUMNS[m] for m in metrics)]
    body = [
        [
            r["best"],
            cell("group", r["group"]),
            cell("loss", r["loss"]),
            cell("batch_size", r["batch_size"]),
            cell("lr", r["lr"]),
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


def report(path: Path, out_dir: Path | None = None) -> list[dict[str, Any]]:
    """Summarise every run under ``path``; write ``summary.md``, ``summary.csv``,
    ``curves.png`` (and ``groups.md``, ``groups.csv`` when seeds repeat) into ``out_dir``
    (default ``path``); print the tables; return the run rows.

    Rows are dicts keyed by :data:`~losslab.read.runs.COLUMNS`, sorted best first by the selection
    metric (``*`` on the best ``ok`` run). Missing values are ``None``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no run under ``path``.
    """
    path = Path(path)
    runs, duplicates = distinct(read_runs(path))
    extra = _telling_apart(runs)
    for run in runs:
        run.row.update({k: run.settings.get(k) for k in extra})
    columns = _columns(extra)
    rows = [r.row for r in runs]
    selection = _selection(rows)
    order = sorted(range(len(runs)), key=lambda i: _sort_key(rows[i], f"{selection}_acc"))
    runs, rows = [runs[i] for i in order], [rows[i] for i in order]
    if rows[0]["status"] == "ok" and rows[0][f"{selection}_acc"] is not None:
        rows[0]["best"] = "*"

    out_dir = Path(out_dir) if out_dir is not None else path
    out_dir.mkdir(parents=True, exist_ok=True)
    table = _runs_table(rows, columns)
    write_csv(rows, list(columns), out_dir / "summary.csv")
    note = _selection_note(selection)
    failed = sum(r["status"] == "failed" for r in rows)
    text = [f"# losslab report: {path}", "", f"{len(rows)} run(s); {note}", ""]
    if duplicates:
        same = "; ".join(f"{a} is {b}" for a, b in duplicates)
        note = f"Counted once (the same config and seed in two folders): {same}.\n{note}"
        text += [
            f"**{len(duplicates)} folder(s) left out**, each the same run as another (the "
            f"same resolved config and seed), counted once: {same}.",
            "",
        ]
    if failed:
        text += [f"**{failed} run(s) failed**: see `error.txt` in their folders.", ""]
    text += [
        "Accuracies, NLL, ECE and Brier are measured on the full splits after the last epoch; "
        "gap = train - test accuracy (on the true training labels under label noise); NLL, ECE and Brier compare across losses, the loss values "
        "do not; s/epoch = seconds of training and evaluation per epoch.",
        "",
        table,
        "",
    ]
    groups = _groups(runs)
    printed = table
    if any(len(members) > 1 for _, members in groups):
        group_rows = _group_rows(groups, selection)
        fields = ["best", "group", "loss", "batch_size", "lr", "n", "seeds"]
        fields += [f"{m}_{k}" for m in GROUP_METRICS for k in ("mean", "std", "ci_low", "ci_high")]
        write_csv(group_rows, fields, out_dir / "groups.csv")
        group_table = _groups_table(group_rows)
        (out_dir / "groups.md").write_text(
            f"# Runs that differ only in seed: {path}\n\nmean ± half-width of the 95% confidence "
            f"interval (Student's t), sd = sample standard deviation, n = seeds; ranked by "
            f"{selection} accuracy.\n\n{group_table}\n"
        )
        text += ["## Over seeds", "", group_table, ""]
        printed += "\n\n" + group_table
        most = max(len(_ok(members)) for _, members in groups)
        heading = f"mean over the seeds (up to {most}) per epoch"
    else:
        groups = None
        heading = "per epoch" if len(runs) > 1 else "one run, per epoch"
    panels = _panels(runs, groups)
    (out_dir / "summary.md").write_text("\n".join([*text, "![curves](curves.png)", ""]))
    if panels:
        plot_curves(panels, heading, out_dir / "curves.png")
    if len(rows) > SHOWN_ROWS:  # a study stage's hundred runs: the files hold the tables
        best = f"; best by {selection} accuracy: {rows[0]['run']}" if rows[0]["best"] else ""
        printed = f"{len(rows)} runs{best}; their table is summary.md"
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

    def run() -> None:
        if args.out is not None:
            check_out_dir(args.out, "--out")
        report(args.path, args.out)

    return user_main("losslab-report", run)


if __name__ == "__main__":
    raise SystemExit(main())

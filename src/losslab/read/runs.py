"""Reading what ``losslab-train`` wrote: each run folder's epoch curves and its summary row.

The curves come from the event files, read with TensorBoard's own ``EventAccumulator`` (the
reader the dashboard uses, so a report sees exactly what TensorBoard shows); everything else
(status, settings, error) comes from :class:`losslab.run.rundir.RunDir`. Never imports training code.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from losslab.names import EPOCH_TIME, GAP, TEST_ACC, TRAIN_ACC, VAL_ACC, tag
from losslab.run.identity import identity
from losslab.run.rundir import RunDir, find_runs

# tensorboard's reader logs an INFO line per event file read ("No path found after ...")
logging.getLogger("tensorboard").setLevel(logging.WARNING)

__all__ = ["COLUMNS", "Run", "distinct", "read_runs"]

EXPECTED = "run folders as losslab-train writes them (a .hydra/ config, event files, a result)"
# CSV header (the row dicts' keys) -> Markdown header.
COLUMNS = {
    "best": "best",
    "run": "run",
    "loss": "loss",
    "batch_size": "batch size",
    "lr": "lr",
    "label_noise": "label noise",
    "seed": "seed",
    "epochs": "epochs",
    "val_acc": "val acc",
    "test_acc": "test acc",
    "best_epoch": "best epoch",
    "best_acc": "best acc",
    "test_at_best": "test acc at best",
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
    "val_acc": VAL_ACC,
    "test_acc": TEST_ACC,
    "train_acc": TRAIN_ACC,
    "gap": GAP,
    **{f"test_{kind}": tag(kind, "test") for kind in ("nll", "ece", "brier", "loss")},
}
Curve = list[tuple[int, float]]


@dataclass
class Run:
    """One run folder, read: its epoch curves ``tag -> [(epoch, value)]``, its summary row, its
    settings (the HPARAMS row: every key that tells runs apart), what run it is
    (:meth:`~losslab.run.rundir.RunDir.identity`; None without a record of its config) and the
    key of its seed group (what it is without its seed)."""

    name: str
    path: Path
    curves: dict[str, Curve] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict)
    group: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    identity: str | None = None
    overrides: tuple[str, ...] = ()  # its command line's, seed and Hydra's left out: its label


def read_curves(run_dir: Path) -> dict[str, Curve]:
    """Every scalar curve of a run: one point per step (the last written wins)."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0 = every point
    events.Reload()
    curves = {}
    for name in events.Tags()["scalars"]:
        by_step = {e.step: float(e.value) for e in events.Scalars(name)}
        curves[name] = sorted(by_step.items())
    return curves


def _number(value: Any, kind: type) -> Any:
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _history_curves(result: dict[str, Any] | None) -> dict[str, Curve]:
    """The epoch curves ``result.json`` holds (``history``): a run that wrote no event file
    (``logger=null``) still has them."""
    curves: dict[str, Curve] = {}
    for point in (result or {}).get("history") or []:
        for key, value in point.items():
            if key not in ("epoch", "step") and isinstance(value, int | float):
                curves.setdefault(key, []).append((int(point["epoch"]), float(value)))
    return curves


def _settings(run: RunDir, result: dict[str, Any] | None) -> dict[str, Any]:
    """The run's settings: the HPARAMS row of a run that ended, else what its saved config says
    of the main ones (a run still running, or killed)."""
    hparams = dict((result or {}).get("hparams") or {})
    if hparams:
        return {k: v for k, v in hparams.items() if k not in ("epochs", "status")}
    config = run.config() or {}
    data, optimizer = config.get("data") or {}, config.get("optimizer") or {}
    return {
        "loss": run.choices().get("loss"),
        "batch_size": data.get("batch_size"),
        "lr": optimizer.get("lr"),
        "seed": config.get("seed"),
        "label_noise": data.get("label_noise"),
    }


def read_run(run_dir: Path, root: Path) -> Run:
    """The run in ``run_dir``, named by its path below ``root`` (its own name when it is
    ``root``)."""
    run = RunDir(run_dir)
    rel = run_dir.relative_to(root)
    name = run_dir.name if rel == Path() else rel.as_posix()
    result = run.result()
    curves = read_curves(run_dir) if run.event_files() else _history_curves(result)
    settings = _settings(run, result)
    selection = "val" if curves.get(VAL_ACC) else "test"
    finite = [(v, -epoch) for epoch, v in curves.get(tag("acc", selection), []) if math.isfinite(v)]
    best_acc, minus_epoch = max(finite) if finite else (None, None)  # first epoch on a tie
    best_epoch = -minus_epoch if minus_epoch is not None else None
    times = [v for epoch, v in curves.get(EPOCH_TIME, []) if epoch > 0]
    row = {
        "best": "",
        "run": name,
        "loss": settings.get("loss"),
        "batch_size": _number(settings.get("batch_size"), int),
        "lr": _number(settings.get("lr"), float),
        "label_noise": _number(settings.get("label_noise"), float),
        "seed": _number(settings.get("seed"), int),
        "epochs": next(
            (curves[t][-1][0] for t in (TEST_ACC, VAL_ACC, TRAIN_ACC) if curves.get(t)), None
        ),
        **{key: curves[tag][-1][1] if curves.get(tag) else None for key, tag in FINAL.items()},
        "best_epoch": best_epoch,
        "best_acc": best_acc,
        "test_at_best": dict(curves.get(TEST_ACC, [])).get(best_epoch),
        "sec_per_epoch": sum(times) / len(times) if times else None,
        "status": run.status(),
        "error": run.error_line(),
    }
    # runs that differ only in their seed share a group: what they are without it, or (no record
    # of the config) their overrides without seed=...
    overrides = run.overrides()
    kept = [o for o in overrides if not o.startswith(("seed=", "ckpt_path=", "hydra."))]
    group = tuple(sorted(kept)) if overrides else (name,)
    saved = run.config()  # read once: both identities come from it
    choices = run.choices() if saved is not None else {}
    same = None if saved is None else identity(saved, choices)
    without_seed = None if saved is None else identity(saved, choices, ("seed", "data.seed"))
    return Run(
        name,
        run_dir,
        curves,
        row,
        (without_seed,) if without_seed is not None else group,
        settings,
        same,
        group,
    )


def read_runs(path: Path) -> list[Run]:
    """Every run under ``path``, read.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no run under ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder; expected a run or a folder of {EXPECTED}")
    run_dirs = find_runs(path)
    if not run_dirs:
        raise ValueError(
            f"{path}: no run found; expected {EXPECTED} "
            f"(a run folder logs/<task>/runs/<time> or a sweep folder logs/<task>/multiruns/<time>)"
        )
    return [read_run(d, path) for d in run_dirs]


def distinct(runs: list[Run]) -> tuple[list[Run], list[tuple[str, str]]]:
    """Each run once: folders that hold the same run (the same resolved config and seed,
    :attr:`Run.identity`, whatever the folders are called) count as one, a finished copy first,
    then the first by path. Returns the runs kept and ``(left out, same run as)`` pairs."""
    rank = {"ok": 0, "diverged": 0, "incomplete": 1, "failed": 2}
    chosen: dict[str, Run] = {}
    for run in runs:
        if run.identity is None:
            continue
        other = chosen.get(run.identity)
        if other is None or rank.get(run.row["status"], 3) < rank.get(other.row["status"], 3):
            chosen[run.identity] = run
    kept = [r for r in runs if r.identity is None or chosen[r.identity] is r]
    left_out = [(r.name, chosen[r.identity].name) for r in runs if r not in kept]
    return kept, left_out

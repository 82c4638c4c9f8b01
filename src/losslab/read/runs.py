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

from losslab.names import EPOCH_TIME, GAP
from losslab.run.rundir import RunDir, find_runs

# tensorboard's reader logs an INFO line per event file read ("No path found after ...")
logging.getLogger("tensorboard").setLevel(logging.WARNING)

__all__ = ["COLUMNS", "Run", "read_runs"]

EXPECTED = "run folders holding events.out.tfevents.* files, as losslab-train writes them"
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
    "val_acc": "acc/val",
    "test_acc": "acc/test",
    "train_acc": "acc/train",
    "gap": GAP,
    "test_nll": "nll/test",
    "test_ece": "ece/test",
    "test_brier": "brier/test",
    "test_loss": "loss/test",
}
Curve = list[tuple[int, float]]


@dataclass
class Run:
    """One run folder, read: its epoch curves ``tag -> [(epoch, value)]``, its summary row, and
    the key of its seed group (its overrides, ``seed`` left out)."""

    name: str
    path: Path
    curves: dict[str, Curve] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict)
    group: tuple[str, ...] = ()


def read_curves(run_dir: Path) -> dict[str, Curve]:
    """Every scalar curve of a run: one point per step (the last written wins)."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0 = every point
    events.Reload()
    curves = {}
    for tag in events.Tags()["scalars"]:
        by_step = {e.step: float(e.value) for e in events.Scalars(tag)}
        curves[tag] = sorted(by_step.items())
    return curves


def _number(value: Any, kind: type) -> Any:
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _settings(run: RunDir) -> dict[str, Any]:
    """loss, batch size, lr, seed and label noise: the HPARAMS row of a run that ended, else the
    run's saved config (a run still running, or killed)."""
    hparams = (run.result() or {}).get("hparams")
    if hparams:
        return hparams
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
    curves = read_curves(run_dir) if run.event_files() else {}
    settings = _settings(run)
    selection = "val" if curves.get("acc/val") else "test"
    finite = [(v, -epoch) for epoch, v in curves.get(f"acc/{selection}", []) if math.isfinite(v)]
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
            (curves[t][-1][0] for t in ("acc/test", "acc/val", "acc/train") if curves.get(t)), None
        ),
        **{key: curves[tag][-1][1] if curves.get(tag) else None for key, tag in FINAL.items()},
        "best_epoch": best_epoch,
        "best_acc": best_acc,
        "test_at_best": dict(curves.get("acc/test", [])).get(best_epoch),
        "sec_per_epoch": sum(times) / len(times) if times else None,
        "status": run.status(),
        "error": run.error_line(),
    }
    # runs that differ only in their seed share a group: their overrides without seed=...
    overrides = run.overrides()
    kept = [o for o in overrides if not o.startswith(("seed=", "ckpt_path=", "hydra."))]
    return Run(name, run_dir, curves, row, tuple(sorted(kept)) if overrides else (name,))


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
            f"{path}: no TensorBoard event files found; expected {EXPECTED} "
            f"(a run folder logs/<task>/runs/<time> or a sweep folder logs/<task>/multiruns/<time>)"
        )
    return [read_run(d, path) for d in run_dirs]

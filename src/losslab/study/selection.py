"""The runs of a study stage, and the choice each final seed makes among its candidate lrs
(reading half).

**Nested selection.** Stage 2 keeps the ``top_k`` best lrs of each loss and compared value
(:mod:`losslab.study.candidates`); the final stage trains each of them with every final seed; each
seed then keeps the run its *own* validation split prefers: for a last-epoch metric the run with
the best final validation accuracy, for an early-stopped one the run and epoch with the best
validation accuracy. The choice is part of what the seeds replicate, so the paired tests carry its
variance: two close lrs that another machine ranks the other way in stage 1 give the same
candidates, and the same verdict. Test chooses nothing. A tie goes to the smaller lr, then the
earlier epoch.

**Pinned.** Where a cell's seeds did not all keep the same lr, the data could not tell those lrs
apart, and the verdict holds its words to each of them (:func:`choose_pinned`: every seed of the
cell at one of them, early stopping still choosing the epoch).

``final/selection.yaml`` records each seed's choice (the fixed arm reads its lr at the clean value
from it; :func:`fixed_lr`).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from losslab.names import tag
from losslab.read.runs import Curve, distinct, read_runs
from losslab.run.identity import flatten
from losslab.run.rundir import FINISHED, RunDir
from losslab.study.catalogue import ARMS, Catalogue, Metric, StudyError, stage_file, value_key

__all__ = [
    "Choice",
    "StageRun",
    "check_complete",
    "check_lrs",
    "choose_per_seed",
    "choose_pinned",
    "drop_stale",
    "fixed_lr",
    "grid",
    "stage_runs",
    "write_selection",
]

SELECTION = "selection.yaml"


@dataclass
class StageRun:
    """One finished run of a study stage: what it is (loss, compared value, lr, seed) and its
    epoch curves."""

    name: str
    folder: Path
    loss: str
    value: Any
    lr: float
    seed: int
    status: str
    curves: dict[str, Curve] = field(default_factory=dict)

    def last(self, curve: str) -> float | None:
        points = self.curves.get(curve)
        return points[-1][1] if points else None

    def at(self, curve: str, epoch: int) -> float | None:
        return dict(self.curves.get(curve, [])).get(epoch)


def stage_runs(folder: Path, catalogue: Catalogue, stage: str) -> list[StageRun]:
    """Every run under ``folder`` (one per run: copies of a run count once), each finished.

    Raises:
        StudyError: no such folder; a run that failed or has not ended (a hole the numbers
            would not show: run the stage again first); a run that does not say what it is.
    """
    if not folder.is_dir():
        raise StudyError(f"{folder}: no such folder; run the stage that writes it first")
    runs, _ = distinct(read_runs(folder))
    unfinished = [r for r in runs if r.row["status"] not in FINISHED]
    if unfinished:
        names = ", ".join(f"{r.name} ({r.row['status']})" for r in unfinished[:3])
        more = f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else ""
        raise StudyError(
            f"{folder}: {len(unfinished)} {stage} run(s) did not finish: {names}{more}; run the "
            f"same losslab-study command again (it resumes the stage) first"
        )
    out = []
    for run in runs:
        what = _what(run.path, catalogue, run.settings.get("loss"))
        if what is None:
            raise StudyError(
                f"{run.path}: its .hydra/resolved.yaml holds no {catalogue.key} and optimizer.lr; "
                f"a study stage reads the runs losslab-train wrote"
            )
        loss, value, lr, config = what
        out.append(
            StageRun(
                run.name, run.path, loss, value, lr, int(config["seed"]), run.row["status"],
                run.curves,
            )
        )  # fmt: skip
    return out


def _what(
    path: Path, catalogue: Catalogue, loss: str | None = None
) -> tuple[str, Any, float, dict[str, Any]] | None:
    """A stage run's loss, compared value, lr and flat config, from what losslab-train saved
    (None: a folder that holds no such run)."""
    run = RunDir(path)
    config = flatten(run.config() or {})
    if catalogue.key not in config or "optimizer.lr" not in config:
        return None
    loss = str(loss or run.choices().get("loss"))
    return loss, value_key(config[catalogue.key]), float(config["optimizer.lr"]), config


def grid(runs: Iterable[StageRun]) -> dict[tuple[str, Any], dict[float, dict[int, StageRun]]]:
    """``(loss, value) -> lr -> seed -> run``, refusing two runs of one cell, lr and seed (they
    differ in a key the study does not vary, and one would hide the other)."""
    cells: dict[tuple[str, Any], dict[float, dict[int, StageRun]]] = {}
    for run in runs:
        seeds = cells.setdefault((run.loss, run.value), {}).setdefault(run.lr, {})
        if run.seed in seeds:
            raise StudyError(
                f"{run.folder} and {seeds[run.seed].folder}: two runs of loss={run.loss}, the same "
                f"compared value, lr={run.lr:g} and seed={run.seed} that differ in another key; "
                f"one stage folder holds one run of each"
            )
        seeds[run.seed] = run
    return cells


def _score(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf


@dataclass
class Choice:
    """What one seed of one loss and value kept: for each metric its value, the lr it was
    measured at, and the epoch (early stopping); the runs it chose among."""

    values: dict[str, float | None]
    lrs: dict[str, float]
    epochs: dict[str, int]
    runs: dict[str, StageRun]
    among: list[float]


def _pick(candidates: list[StageRun], metric: Metric) -> tuple[StageRun, int]:
    """The run (and epoch) this seed's validation split prefers for ``metric``."""
    val = tag("acc", "val")
    if metric.when == "last":
        best = max(candidates, key=lambda r: (_score(r.last(val)), -r.lr))
        return best, best.curves[val][-1][0] if best.curves.get(val) else -1
    scored = [(_score(v), -r.lr, -e, r) for r in candidates for e, v in r.curves.get(val, [])]
    if not scored:
        return candidates[0], -1
    *_, minus_epoch, run = max(scored, key=lambda s: s[:3])
    return run, -minus_epoch


def choose_per_seed(
    runs: Iterable[StageRun], metrics: list[Metric]
) -> dict[tuple[Any, str], dict[int, Choice]]:
    """``(value, loss) -> {seed: Choice}``: each seed's own choice among its runs, by
    validation accuracy (see the module docstring)."""
    groups: dict[tuple[Any, str, int], list[StageRun]] = {}
    for (loss, value), by_lr in grid(runs).items():
        for seeds in by_lr.values():
            for seed, run in seeds.items():
                groups.setdefault((value, loss, seed), []).append(run)
    cells: dict[tuple[Any, str], dict[int, Choice]] = {}
    for (value, loss, seed), candidates in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        candidates.sort(key=lambda r: r.lr)
        choice = Choice({}, {}, {}, {}, [r.lr for r in candidates])
        for metric in metrics:
            run, epoch = _pick(candidates, metric)
            if metric.when == "last":
                measured = run.last(metric.curve)
            else:
                measured = run.at(metric.curve, epoch)
            choice.values[metric.name] = measured
            choice.lrs[metric.name], choice.epochs[metric.name] = run.lr, epoch
            choice.runs[metric.name] = run
        cells.setdefault((value, loss), {})[seed] = choice
    return cells


def choose_pinned(
    runs: Iterable[StageRun], metrics: list[Metric]
) -> dict[tuple[Any, str, float], dict[int, Choice]]:
    """``(value, loss, lr) -> {seed: Choice}``: each seed held at one lr (its early-stopped epoch
    still chosen by validation), for every lr of the cell's runs."""
    by_lr: dict[float, list[StageRun]] = {}
    for run in runs:
        by_lr.setdefault(run.lr, []).append(run)
    return {
        (value, loss, lr): seeds
        for lr, same in by_lr.items()
        for (value, loss), seeds in choose_per_seed(same, metrics).items()
    }


def write_selection(
    stage_dir: Path, cells: dict[tuple[Any, str], dict[int, Choice]], catalogue: Catalogue
) -> None:
    """``<stage>/selection.yaml``: each seed's lr (and epoch, early-stopped) per loss and value."""
    out: dict[str, Any] = {"key": catalogue.key, "clean": catalogue.clean, "choices": {}}
    for (value, loss), seeds in sorted(cells.items(), key=lambda kv: repr(kv[0])):
        for seed, choice in sorted(seeds.items()):
            out["choices"].setdefault(loss, {}).setdefault(value, {})[seed] = {
                name: {"lr": choice.lrs[name], "epoch": choice.epochs[name]}
                for name in choice.values
            }
    (stage_dir / SELECTION).write_text(
        "# each final seed's choice among its candidate lrs, on its own validation split\n"
        + yaml.safe_dump(out, sort_keys=False)
    )


def check_lrs(runs: list[StageRun], arm: str, study_dir: Path, candidates: dict) -> None:
    """Every final run trained with one of its cell's current candidates (a fixed-arm run with
    its seed's clean-rate choice): a run from an earlier choice is stale; and every seed of a
    tuned cell ran every candidate (:func:`check_complete`)."""
    for run in runs:
        if arm == "fixed":
            wanted = [fixed_lr(run.loss, run.seed, str(study_dir / "final" / "selection.yaml"))]
        else:
            wanted = (candidates.get(run.loss) or {}).get(run.value, {}).get("lrs")
            if wanted is None:
                raise StudyError(
                    f"{run.folder}: tune/candidates.yaml holds no lr for loss={run.loss} at "
                    f"{run.value}: run the tuning stage for it (losslab-study run) first"
                )
        if run.lr not in wanted:
            raise StudyError(
                f"{run.folder}: trained with optimizer.lr={run.lr:g}, but the study now trains "
                f"{', '.join(f'{lr:g}' for lr in wanted)} there: run the study again with "
                f"--retrain (it trains the {ARMS[arm].stage} stage's changed jobs and removes the "
                f"runs of lrs no longer chosen) before the verdict"
            )
    if arm != "fixed":
        check_complete(runs, candidates)


def check_complete(runs: list[StageRun], candidates: dict) -> None:
    """Every seed of a tuned cell ran every candidate: a seed short of one would choose among
    fewer, and the verdict would not show it."""
    have: dict[tuple[str, Any, int], set[float]] = {}
    for run in runs:
        have.setdefault((run.loss, run.value, run.seed), set()).add(run.lr)
    for (loss, value, seed), lrs in sorted(have.items(), key=repr):
        missing = [lr for lr in candidates[loss][value]["lrs"] if lr not in lrs]
        if missing:
            raise StudyError(
                f"loss={loss} at {value:g}, seed {seed}: no final run at optimizer.lr="
                f"{', '.join(f'{lr:g}' for lr in missing)}, one of its candidates: run the study "
                f"again (losslab-study resumes it; --retrain after stage 2 chose again) before "
                f"the verdict"
            )


def drop_stale(final: Path, catalogue: Catalogue, chosen: dict[str, dict[Any, Any]]) -> list[str]:
    """``--retrain``: removes each final run whose lr is no longer the candidate of its rank
    (stage 2 chose again), before the final sweep; returns their names. A kept run could
    otherwise stand in for a job of the same lr at another rank while that rank's folder is
    retrained with a new lr, and a candidate would silently lack its runs. Without ``--retrain``
    the sweep refuses the changed jobs and the verdict a run of an lr no longer chosen."""
    removed = []
    for path in sorted(final.iterdir()) if final.is_dir() else []:
        what = _what(path, catalogue)
        if what is None:
            continue  # not a run of this stage (the report's files, an unstarted job)
        loss, value, lr, config = what
        lrs = chosen.get(loss, {}).get(value, {}).get("lrs")
        if not lrs:
            continue
        rank = config.get("study.lr_rank")
        if lr not in lrs if rank is None else lr != lrs[min(int(rank), len(lrs) - 1)]:
            shutil.rmtree(path)
            removed.append(path.name)
    if removed:
        print(f"losslab-study: --retrain removed {len(removed)} final run(s) whose lr is no "
              f"longer the candidate of their rank: {', '.join(removed)}", flush=True)  # fmt: skip
    return removed


def fixed_lr(loss: str, seed: Any, file: str) -> float:
    """``${losslab_fixed_lr:<loss>,<seed>,<final>/selection.yaml}``: the lr this loss's seed
    kept at the clean value (its last-epoch choice): what the fixed arm trains it with.

    Raises:
        StudyError: no such file, or no choice for this loss and seed there.
    """
    data = stage_file(
        file,
        "no final-stage selection at {path}: the fixed arm takes each seed's lr from the final "
        "stage at the clean rate; run it first",
    )
    try:
        return float(
            data["choices"][str(loss)][value_key(data["clean"])][int(seed)]["test_acc"]["lr"]
        )
    except (KeyError, TypeError) as err:
        raise StudyError(
            f"optimizer.lr: {file} holds no choice for loss={loss}, seed={seed} at the clean "
            f"rate {data.get('clean')}; run the final stage for it first"
        ) from err

"""``losslab-train``: compose ``conf/train.yaml`` with Hydra, build the objects, train.

The composition root: every check runs first (:mod:`losslab.run.start`), then
:mod:`losslab.run.build` makes the objects, Lightning fits, and the run folder
(:mod:`losslab.run.rundir`) gets its files.

    losslab-train                                   # CEE, MLP 784-100-10, 5 epochs
    losslab-train loss=sse data.batch_size=32       # any key can be overridden
    losslab-train -m loss=sse,cee data.batch_size=32,100   # a sweep, then the report table
    losslab-train experiment=book_ch4               # a named experiment from conf/experiment
    losslab-train ckpt_path=last hydra.run.dir=<run>       # resume that run, with its own config

A run's folder gets nothing until every check has passed: the config (types, ranges, keys), the
checkpoint, the folder (a new run never reuses one), the MNIST files. A user error is one line
and exit status 2, and the folders Hydra made for the run go again.
"""

from __future__ import annotations

import importlib.resources
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, open_dict

from losslab.errors import UsageError, exit_with, one_line, run_hydra
from losslab.lit.metrics import objective
from losslab.run import config, ddp, overrides
from losslab.run.build import build
from losslab.run.console import finished_before, lightning_console, log, run_log, summary
from losslab.run.rundir import RunDir, missing_folders, remove_made
from losslab.run.start import plan, write_start
from losslab.sweep import progress

# conf/ at the repository root, shipped in the package (src/losslab/conf links to it)
CONF_DIR = str(importlib.resources.files("losslab") / "conf")
config.register()


class NewFolders(Callback):
    """Hydra callback: notes the folders a single run's ``hydra.run.dir`` will create (Hydra
    makes them before the run starts), so that a refused start takes exactly those away."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with open_dict(config.hydra.runtime):
            config.hydra.runtime.new_folders = missing_folders(config.hydra.run.dir)


def train(cfg: DictConfig) -> float:
    """Train one run from a composed config. Returns the number a sweeper maximises
    (:func:`losslab.lit.metrics.objective`): the final validation accuracy, NaN without a
    validation split (a sweeper never chooses on the test set)."""
    console = (
        HydraConfig.get().mode != RunMode.MULTIRUN or cfg.verbose
    )  # a job: one line at its end
    with lightning_console(console):
        return _train(cfg, console)


def _train(cfg: DictConfig, console: bool) -> float:
    hc = HydraConfig.get()
    run = RunDir(hc.runtime.output_dir)
    rank_zero = rank_zero_only.rank == 0
    try:
        start = plan(cfg, run, rank_zero)
        if start.finished is not None:
            with run_log(None, console):
                finished_before(run, start.finished)
            return (start.finished.get("metrics") or {}).get("hp/val_acc", math.nan)
        torch.set_num_threads(start.cfg.threads)
        L.seed_everything(start.cfg.seed, workers=True, verbose=False)
        datamodule, module, trainer, hparams = build(
            start.cfg,
            start.choices,
            overrides.this_sweep(),
            resume_step=start.resume_step,
            replay=start.source is not None and not start.in_place(run),
            console=console,
        )
    except Exception as err:
        if rank_zero:
            remove_made(hc.runtime.get("new_folders", []))
        message = one_line(err)
        if message is None:
            raise
        raise UsageError(message) from err

    if rank_zero:
        write_start(run, start)
    with run_log(run if rank_zero else None, console):
        if start.changed:
            log.info(f"resumed {run.path} with its own config; changed: {start.changed}")
        if trainer.steps_note:
            log.info(f"losslab: {trainer.steps_note}")
        begin = time.perf_counter()
        try:
            with ddp.children_join_this_job():
                trainer.fit(module, datamodule=datamodule, ckpt_path=start.ckpt_path)
        finally:
            # Lightning leaves the process group up; the next job of a sweep needs a fresh one.
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
        if trainer.is_global_zero:
            seconds = time.perf_counter() - begin
            last = module.history[-1] if module.history else {}
            epochs = last.get("epoch", 0)
            if module.reliability:
                run.write_reliability(epochs, module.reliability)
                run.write_hits(epochs, {s: h.tolist() for s, h in module.hits.items()})
            hparams = {**hparams, "epochs": epochs, "status": module.status}
            run.write_result(
                module.status, epochs, module.final_metrics(), hparams, seconds, module.history
            )
            log.info(summary(module.status, last, seconds, run), extra={"console": console})
    return objective(module.history)


@dataclass
class Outcome:
    """What a ``losslab-train`` command came to, for :func:`entry`: a single run's refusal, the
    failed jobs of a sweep (recorded by the sweeper), the number the last run returned."""

    refused: UsageError | None = None
    failed_jobs: list[str] = field(default_factory=list)
    result: float = math.nan


def entry() -> None:
    """``losslab-train [overrides]`` and ``python -m losslab.train``: one line and status 2 for a
    user error, status 1 when jobs of a sweep failed."""
    sys.argv[1:] = overrides.for_hydra(sys.argv[1:])
    outcome = Outcome()

    def task(cfg: DictConfig) -> float:
        """Hydra's task: one run, or one job of a sweep (which prints its progress line)."""
        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
        begin, failed = time.perf_counter(), True
        try:
            outcome.result, failed = train(cfg), False
        except UsageError as err:
            if multirun:
                raise  # the sweeper records it in the job's folder
            outcome.refused = err  # printed once Hydra has returned, without its own line
        finally:
            if multirun:
                progress.job_ended(HydraConfig.get(), failed, time.perf_counter() - begin)
        return outcome.result

    task.outcome = outcome  # type: ignore[attr-defined]  # the sweeper records failed jobs here
    run_hydra(
        "losslab-train",
        hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")(task),
    )
    if outcome.refused is not None:  # a single run refused before it wrote anything
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise outcome.refused
        exit_with("losslab-train", str(outcome.refused))
    if outcome.failed_jobs:
        jobs = ", ".join(outcome.failed_jobs)
        exit_with(
            "losslab-train", f"{len(outcome.failed_jobs)} job(s) of the sweep failed: {jobs}", 1
        )


if __name__ == "__main__":
    entry()

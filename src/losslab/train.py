"""``losslab-train``: compose ``conf/train.yaml`` with Hydra, build the objects, train.

The composition root: every check runs first (:mod:`losslab.run.start`), then :mod:`losslab.run.build`
makes the objects, Lightning fits, and the run folder (:mod:`losslab.run.rundir`) gets its files.

    losslab-train                                   # CEE, MLP 784-100-10, 5 epochs
    losslab-train loss=sse data.batch_size=32       # any key can be overridden
    losslab-train -m loss=sse,cee data.batch_size=32,100   # a sweep, then the report table
    losslab-train experiment=book_ch4               # a named experiment from conf/experiment
    losslab-train ckpt_path=last hydra.run.dir=<run>       # resume that run, with its own config

A run's folder (``hydra.run.dir``; a sweep job's, ``<sweep dir>/<what varies>``) gets nothing
until every check has passed: the config (types, ranges, keys), the checkpoint, the folder (a new
run never reuses one), the MNIST files. A user error is one line and exit status 2.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from losslab.errors import UsageError, exit_with, one_line, run_hydra
from losslab.lit.classifier import Classifier
from losslab.lit.metrics import objective
from losslab.run import config, ddp, overrides
from losslab.run.build import build
from losslab.run.rundir import RunDir
from losslab.run.start import Start, plan
from losslab.sweep import sweeper as sweep

# Lightning's advertising and a deprecation inside Lightning itself say nothing about the run.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "Tip:" not in record.getMessage()
)
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
# batch/loss is written every log_every_n_steps across epochs: short epochs are fine.
warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
# a resumed run writes its checkpoints next to the ones it resumes from, on purpose
warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
# conf/ at the repository root, shipped in the package (src/losslab/conf links to it)
CONF_DIR = str(importlib.resources.files("losslab") / "conf")
log = logging.getLogger("losslab")
config.register()


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)


@contextlib.contextmanager
def _run_log(run: RunDir | None) -> Iterator[None]:
    """``losslab`` messages to stdout and, on rank 0, appended to ``<run>/train.log`` with
    Lightning's own (``Trainer.fit stopped: ...``)."""
    console = logging.StreamHandler(sys.stdout)
    console.addFilter(_ConsoleFilter())
    handlers: list[tuple[logging.Logger, logging.Handler]] = [(log, console)]
    if run is not None:
        file = logging.FileHandler(run.log_file)
        file.setFormatter(logging.Formatter("%(message)s"))
        handlers += [(log, file), (logging.getLogger("lightning.pytorch"), file)]
    log.setLevel(logging.INFO)
    log.propagate = False
    for logger, handler in handlers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, handler in handlers:
            logger.removeHandler(handler)
            handler.close()


def _write_start(run: RunDir, start: Start) -> None:
    """``.hydra/`` of a new run, or one more record of a resume in place."""
    hc = HydraConfig.get()
    text, resolved = OmegaConf.to_yaml(start.cfg), OmegaConf.to_container(start.cfg, resolve=True)
    if start.source is not None and start.source.path.resolve() == run.path.resolve():
        run.record_resume(list(hc.overrides.task), start.changed or {}, text, resolved)
        return
    hydra_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(hc, resolve=False)})
    hydra_cfg.hydra.runtime.choices = start.choices
    run.write_config(text, resolved, OmegaConf.to_yaml(hydra_cfg), list(hc.overrides.task))


def _shown(path: Path) -> str:
    return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)


def _finished(run: RunDir, result: dict) -> float:
    """A resume of a run that finished: say so, change nothing."""
    status, epochs = result.get("status"), result.get("epochs")
    more = (
        "start a new run: it diverged"
        if status == "diverged"
        else (f"ckpt_path=last trainer.max_epochs=<more than {epochs}>")
    )
    log.info(
        f"losslab: {_shown(run.path)} finished before ({status} after {epochs} epochs); nothing "
        f"was changed. To train longer: {more}"
    )
    return (result.get("metrics") or {}).get("hp/val_acc", math.nan)


def _log_summary(module: Classifier, seconds: float, run: RunDir) -> None:
    last = module.history[-1] if module.history else {}

    def fmt(key: str) -> str:
        return f"{last[key]:.4f}" if key in last else "-"

    lines = [f"\nlosslab: {module.status} after {last.get('epoch', 0)} epochs in {seconds:.1f} s"]
    for split in ("train", "val", "test"):
        if f"acc/{split}" in last:
            lines.append(
                f"  {split:<5}  acc {fmt(f'acc/{split}')}  loss {fmt(f'loss/{split}')}  "
                f"nll {fmt(f'nll/{split}')}  ece {fmt(f'ece/{split}')}"
            )
    shown = _shown(run.path)
    lines += [f"  logs   {shown}", f"  view   tensorboard --logdir {shown}"]
    log.info("\n".join(lines))


def train(cfg: DictConfig) -> float:
    """Train one run from a composed config. Returns the number a sweeper maximises
    (:func:`losslab.lit.metrics.objective`): the final validation accuracy, NaN without a
    validation split (a sweeper never chooses on the test set)."""
    run = RunDir(HydraConfig.get().runtime.output_dir)
    rank_zero = rank_zero_only.rank == 0
    try:
        start = plan(cfg, run, rank_zero)
        if start.finished is not None:
            with _run_log(None):
                return _finished(run, start.finished)
        torch.set_num_threads(start.cfg.threads)
        L.seed_everything(start.cfg.seed, workers=True, verbose=False)
        replay = start.source is not None and start.source.path.resolve() != run.path.resolve()
        datamodule, module, trainer, hparams = build(
            start.cfg, start.choices, start.ckpt_path, overrides.this_sweep(), replay
        )
    except Exception as err:
        if rank_zero:
            run.remove_if_empty(Path.cwd())
        message = one_line(err)
        if message is None:
            raise
        raise UsageError(message) from err

    if rank_zero:
        _write_start(run, start)
    with _run_log(run if rank_zero else None):
        if start.changed:
            log.info(f"resumed {run.path} with its own config; changed: {start.changed}")
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
            epochs = module.history[-1]["epoch"] if module.history else 0
            if module.reliability:
                run.write_reliability(epochs, module.reliability)
            hparams = {**hparams, "epochs": epochs, "status": module.status}
            run.write_result(module.status, epochs, module.final_metrics(), hparams, seconds)
            _log_summary(module, seconds, run)
    return objective(module.history)


# A single run's refusal, for entry() to print as one line once Hydra has returned (raised
# through Hydra, it would come with Hydra's own "Error executing job ..." line first).
REFUSED: list[UsageError] = []


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    except UsageError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records it in the job's folder
        REFUSED.append(err)
        return math.nan


def entry() -> None:
    """``losslab-train [overrides]`` and ``python -m losslab.train``: one line and status 2 for a
    user error, status 1 when jobs of a sweep failed."""
    sys.argv[1:] = overrides.for_hydra(sys.argv[1:])
    run_hydra("losslab-train", main)
    if REFUSED:  # a single run refused before it wrote anything
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise REFUSED[0]
        exit_with("losslab-train", str(REFUSED[0]))
    if sweep.FAILED_JOBS:
        jobs = ", ".join(sweep.FAILED_JOBS)
        exit_with(
            "losslab-train", f"{len(sweep.FAILED_JOBS)} job(s) of the sweep failed: {jobs}", 1
        )


if __name__ == "__main__":
    entry()

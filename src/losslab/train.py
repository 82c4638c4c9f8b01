"""``losslab-train``: compose ``conf/train.yaml`` with Hydra, build the objects, train.

The only module that knows Hydra: it wires configs to objects and reports the result.

    losslab-train                                   # CEE, MLP 784-100-10, 5 epochs
    losslab-train loss=sse data.batch_size=32       # any key can be overridden
    losslab-train -m loss=sse,cee data.batch_size=32,100   # a sweep, then the report table
    losslab-train experiment=book_ch4               # a named experiment from conf/experiment
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from losslab import config as schemas
from losslab.module import Classifier

# Lightning's advertising and a deprecation inside Lightning itself say nothing about the run.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "Tip:" not in record.getMessage()
)
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
# batch/loss is written every log_every_n_steps across epochs: short epochs are fine.
warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def _register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=schemas.TrainConfig)
    cs.store(group="schema", name="data", node=schemas.DataConfig)
    cs.store(group="schema", name="model", node=schemas.ModelConfig)
    cs.store(group="schema", name="trainer", node=schemas.TrainerConfig)
    cs.store(group="schema/loss", name="sse", node=schemas.SSEConfig)
    cs.store(group="schema/loss", name="cee", node=schemas.CEEConfig)
    cs.store(group="schema/optimizer", name="sgd", node=schemas.SGDConfig)
    cs.store(group="schema/optimizer", name="adam", node=schemas.AdamConfig)
    # A run started again in an existing folder (a resume, a rerun) keeps the config files of
    # the first start: its own go to .hydra/<time>/.
    if not OmegaConf.has_resolver("losslab_hydra_subdir"):
        OmegaConf.register_new_resolver("losslab_hydra_subdir", _hydra_subdir, use_cache=True)


def _hydra_subdir(output_dir: str) -> str:
    if (Path(output_dir) / ".hydra" / "config.yaml").exists():
        return f".hydra/{datetime.now():%Y-%m-%d_%H-%M-%S_%f}"
    return ".hydra"


_register()


class PlainProgress(Callback):
    """One line per epoch when stdout is not a terminal (log files, CI), instead of a bar."""

    printed = -1

    def _print_last(self, trainer: L.Trainer, module: Classifier) -> None:
        if trainer.is_global_zero and module.history and module.history[-1]["epoch"] > self.printed:
            h = module.history[-1]
            self.printed = h["epoch"]
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in h.items() if k != "epoch")
            print(f"epoch {h['epoch']:>3}  {metrics}", flush=True)

    on_train_start = _print_last  # epoch 0, measured by the sanity check
    on_train_epoch_end = _print_last  # runs after the epoch's evaluation


# TensorBoard's CUSTOM SCALARS tab: train vs test (vs val) on one chart per metric.
OVERFITTING_LAYOUT = {
    "Overfitting": {
        "accuracy: train vs test": ["Multiline", [r"acc/(train|val|test)"]],
        "loss: train vs test": ["Multiline", [r"loss/(train|val|test)"]],
        "gap: train - test accuracy": ["Multiline", [r"gap/acc"]],
    }
}


class TensorBoardSummary(Callback):
    """The "Overfitting" chart layout at the start; HPARAMS with the real ``hp/*`` at the end."""

    def __init__(self, hparams: dict[str, Any]) -> None:
        self.hparams = hparams

    def on_fit_start(self, trainer: L.Trainer, module: Classifier) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and trainer.is_global_zero:
                logger.experiment.add_custom_scalars(OVERFITTING_LAYOUT)

    def on_fit_end(self, trainer: L.Trainer, module: Classifier) -> None:
        epochs = module.history[-1]["epoch"] if module.history else 0
        hparams = {**self.hparams, "epochs": epochs, "status": module.status}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(hparams, metrics=module.final_metrics())


class ReportOnMultirunEnd(HydraCallback):
    """Hydra callback: after a sweep, write and print the summary table of its runs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from losslab.report import report

        with contextlib.suppress(ValueError):  # a sweep with no run that got as far as logging
            report(Path(config.hydra.sweep.dir))


DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def _ddp_children_join_this_job() -> Iterator[None]:
    """Make Lightning's DDP child processes re-run this job, not the whole command line.

    Lightning starts ranks > 0 by re-running ``sys.argv`` with ``hydra.run.dir=<run.dir>``. Inside
    a sweep that re-launches the whole sweep into new folders (lightning #11300, hydra #2070).
    Here a child gets this job's own overrides, its output folder, and ``hydra.mode=RUN``.
    """
    from lightning.pytorch.strategies.launchers import subprocess_script

    def child_command(local_rank: int) -> tuple[list[str], str]:
        hc = HydraConfig.get()
        command = [sys.executable, "-m", "losslab.train", *hc.overrides.task]
        command += [
            f"hydra.run.dir='{hc.runtime.output_dir}'",  # quoted: sweep dirs hold = and ,
            f"hydra.job.name=ddp_rank_{local_rank}",
            "hydra.output_subdir=null",
            "hydra.mode=RUN",
            "hydra.callbacks={}",
        ]
        return command, hydra.utils.get_original_cwd()

    original = subprocess_script._hydra_subprocess_cmd
    subprocess_script._hydra_subprocess_cmd = child_command
    # The launcher also writes LOCAL_RANK, MASTER_PORT, ... into this process's environment;
    # left there, the next job of a sweep would think it was started by a launcher and wait.
    env_before = {k: os.environ.get(k) for k in DDP_ENV}
    try:
        yield
    finally:
        subprocess_script._hydra_subprocess_cmd = original
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _validate(cfg: DictConfig) -> None:
    """Range checks of every group (the schemas' ``__post_init__``), before any work starts."""
    OmegaConf.to_object(cfg)
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"trainer.accelerator={cfg.trainer.accelerator!r} needs a CUDA GPU, but none is visible "
            f"(torch.cuda.is_available() is False); use trainer=cpu or trainer=ddp"
        )


def _ckpt_path(cfg: DictConfig) -> str | None:
    ckpt = cfg.ckpt_path
    if ckpt is None:
        return None
    if ckpt == "last":
        last = Path(cfg.callbacks.model_checkpoint.dirpath) / "last.ckpt"
        if not last.is_file():
            raise FileNotFoundError(
                f"ckpt_path=last: no checkpoint {last}. To resume a run, pass its folder too: "
                f"ckpt_path=last hydra.run.dir=logs/<task>/runs/<time>"
            )
        return str(last)
    if not Path(ckpt).is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt!r}: no such checkpoint file (or use ckpt_path=last)"
        )
    return str(ckpt)


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The HPARAMS columns: the same keys in every run, so a sweep compares in one table
    (``epochs`` and ``status`` are added at the end of the run)."""
    choices = HydraConfig.get().runtime.choices
    return {
        "loss": choices["loss"],
        "from_logits": cfg.loss.from_logits,
        "batch_size": cfg.data.batch_size,
        "optimizer": choices["optimizer"],
        "lr": cfg.optimizer.lr,
        "hidden": "-".join(map(str, cfg.model.hidden)),
        "activation": cfg.model.activation,
        "train_size": cfg.data.train_size or 60000 - cfg.data.val_size,
        "seed": cfg.seed,
        "threads": cfg.threads,
    }


def train(cfg: DictConfig) -> float:
    """Train one run from a composed config; return the final test accuracy (for sweepers)."""
    _validate(cfg)
    ckpt_path = _ckpt_path(cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if ckpt_path is None and rank_zero_only.rank == 0 and any(out_dir.glob("tensorboard/events.*")):
        raise FileExistsError(
            f"{out_dir} already holds a run: resume it with ckpt_path=last, or choose a new "
            f"hydra.run.dir (nothing was changed there)"
        )
    torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    module = Classifier(
        net=instantiate(cfg.model),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        num_classes=cfg.model.num_classes,
    )
    loggers = [instantiate(c) for c in cfg.logger.values()]
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    callbacks.append(TensorBoardSummary(run_hparams(cfg)))
    progress = cfg.trainer.enable_progress_bar and sys.stdout.isatty()
    callbacks.append(RichProgressBar() if progress else PlainProgress())
    # A resumed run measured its epoch 0 already: skip the full sanity pass that measures it.
    resume = {"num_sanity_val_steps": 0} if ckpt_path else {}
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=loggers, callbacks=callbacks, enable_progress_bar=progress, **resume
    )

    start = time.perf_counter()
    try:
        with _ddp_children_join_this_job():
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    finally:
        # Lightning leaves the process group up; the next job of a sweep needs a fresh one.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    seconds = time.perf_counter() - start

    if trainer.is_global_zero:
        _print_summary(module, seconds, out_dir)
    return module.final_metrics().get("hp/test_acc", math.nan)


def _print_summary(module: Classifier, seconds: float, out_dir: Path) -> None:
    last = module.history[-1] if module.history else {}
    epochs = last.get("epoch", 0)

    def fmt(key: str) -> str:
        return f"{last[key]:.4f}" if key in last else "-"

    tb_dir = out_dir / "tensorboard"
    print(
        f"\nlosslab: {module.status} after {epochs} epochs in {seconds:.1f} s\n"
        f"  train  acc {fmt('acc/train')}  loss {fmt('loss/train')}\n"
        f"  test   acc {fmt('acc/test')}  loss {fmt('loss/test')}\n"
        f"  logs   {out_dir}\n"
        f"  view   tensorboard --logdir {tb_dir}",
        flush=True,
    )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()

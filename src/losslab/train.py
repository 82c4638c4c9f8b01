"""``losslab-train``: compose ``conf/train.yaml`` with Hydra, build the objects, train.

The module that knows Hydra (with ``sweep.py``, its sweeper): it wires configs to objects and
writes what a run leaves behind. Errors are turned into one line by ``losslab.cli``.

    losslab-train                                   # CEE, MLP 784-100-10, 5 epochs
    losslab-train loss=sse data.batch_size=32       # any key can be overridden
    losslab-train -m loss=sse,cee data.batch_size=32,100   # a sweep, then the report table
    losslab-train experiment=book_ch4               # a named experiment from conf/experiment
    losslab-train ckpt_path=last hydra.run.dir=<run>       # resume that run, with its own config

A run's folder (``hydra.run.dir``; a sweep job's, ``<sweep dir>/<what varies>``) gets nothing
until every check has passed: the config (types, ranges), the checkpoint to resume from, the
folder (a new run never reuses one), the MNIST files. Then: ``.hydra/`` (config, Hydra config,
overrides; a resume adds to ``.hydra/resumes.yaml``), ``train.log`` (what the console showed),
the TensorBoard event files, ``checkpoints/last.ckpt`` and ``reliability.json``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
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
import yaml
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import Container, DictConfig, OmegaConf

from losslab import config as schemas
from losslab import sweep, tb
from losslab.cli import one_line
from losslab.config import UsageError
from losslab.metrics import objective
from losslab.models import ACTIVATIONS
from losslab.module import Classifier

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
# Keys a resumed run may change: how long it trains and how it runs, never what it is.
RESUMABLE = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.enable_progress_bar",
    "trainer.steps_per_call",
    "threads",
    "data.data_dir",
    "data.download",
)
# HPARAMS column -> the override key it comes from (groups: the chosen config's name)
HPARAM_KEYS = {
    "loss": "loss",
    "lr": "optimizer.lr",
    "batch_size": "data.batch_size",
    "optimizer": "optimizer",
    "from_logits": "loss.from_logits",
    "hidden": "model.hidden",
    "activation": "model.activation",
    "train_size": "data.train_size",
    "val_size": "data.val_size",
    "seed": "seed",
    "threads": "threads",
}
HPARAM_NAMES = {key: name for name, key in HPARAM_KEYS.items()}  # override key -> column


def _chosen_lr(loss: str, batch_size: int, choices_file: str) -> float:
    """``${losslab_chosen_lr:<loss>,<batch size>,<file>}``: the lr a study's tuning stage chose
    for this loss and batch size, read from its ``choices.yaml``."""
    path = Path(
        os.path.normpath(choices_file)
    )  # <sweep dir>/../tune/...: no need for the sweep dir
    if not path.is_file():
        raise UsageError(
            f"optimizer.lr: no tuning choices at {path}: run the study's stage 1 first"
        )
    choices = yaml.safe_load(path.read_text()) or {}
    try:
        return float(choices[str(loss)][int(batch_size)]["lr"])
    except (KeyError, TypeError) as err:
        raise UsageError(
            f"optimizer.lr: {path} holds no lr for loss={loss} data.batch_size={batch_size} "
            f"(it has: {', '.join(f'{k}: {sorted(v)}' for k, v in choices.items())})"
        ) from err


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
    if not OmegaConf.has_resolver("losslab_chosen_lr"):
        OmegaConf.register_new_resolver("losslab_chosen_lr", _chosen_lr)


_register()


# -- callbacks ----------------------------------------------------------------------------------


class EpochLog(Callback):
    """One line per epoch (epoch 0 = before training) to ``train.log``, and to the console
    unless a progress bar is showing."""

    def __init__(self, console: bool) -> None:
        self.console, self.printed = console, -1

    def on_train_start(self, trainer: L.Trainer, module: Classifier) -> None:
        if trainer.ckpt_path is not None and module.history:  # resumed: logged by the first start
            self.printed = module.history[-1]["epoch"]
        self._log_last(trainer, module)  # epoch 0, measured by the sanity check

    def _log_last(self, trainer: L.Trainer, module: Classifier) -> None:
        if not (trainer.is_global_zero and module.history):
            return
        h = module.history[-1]
        if h["epoch"] <= self.printed:
            return
        self.printed = h["epoch"]
        parts = [f"epoch {h['epoch']:>3}"]
        for split in ("train", "val", "test"):
            if f"acc/{split}" in h:
                parts.append(f"{split} acc {h[f'acc/{split}']:.4f} loss {h[f'loss/{split}']:.4f}")
        parts.append(f"test nll {h['nll/test']:.4f} ece {h['ece/test']:.4f}")
        if "time/epoch" in h:
            parts.append(f"{h['time/epoch']:.1f} s")
        log.info("  |  ".join(parts), extra={"console": self.console})

    on_train_epoch_end = _log_last  # runs after the epoch's evaluation
    on_train_end = _log_last  # a last point after a stop mid-epoch (max_steps, divergence)


class TensorBoardSummary(Callback):
    """The chart layout at the start; HPARAMS (experiment, this run's values and status, the
    ``hp/*`` metrics) and ``reliability.json`` at the end."""

    def __init__(
        self, hparams: dict[str, Any], differs: list[str], domains: dict, replay: bool = False
    ) -> None:
        self.hparams, self.differs, self.domains = hparams, differs, domains
        self.replay = replay  # a new folder started from another run's checkpoint

    def _writers(self, trainer: L.Trainer) -> list[TensorBoardLogger]:
        if not trainer.is_global_zero:
            return []
        return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]

    def on_fit_start(self, trainer: L.Trainer, module: Classifier) -> None:
        for logger in self._writers(trainer):
            logger.experiment.add_custom_scalars(tb.OVERFITTING_LAYOUT)

    def on_train_start(self, trainer: L.Trainer, module: Classifier) -> None:
        # the checkpoint's history is restored by now: its curves come along into the new folder
        for logger in self._writers(trainer) if self.replay else []:
            for point in module.history:
                values = {k: v for k, v in point.items() if k not in ("epoch", "step")}
                logger.log_metrics(values, step=point["epoch"])

    def on_fit_end(self, trainer: L.Trainer, module: Classifier) -> None:
        if not trainer.is_global_zero:
            return
        epochs = module.history[-1]["epoch"] if module.history else 0
        hparams = {**self.hparams, "epochs": epochs, "status": module.status}
        metrics = module.final_metrics()
        experiment = tb.experiment_summary(hparams, list(metrics), self.differs, self.domains)
        start, end = tb.session_summaries(hparams, module.status)
        for logger in self._writers(trainer):
            logger.hparams.update(hparams)
            save_hparams_to_yaml(Path(logger.log_dir) / "hparams.yaml", logger.hparams)
            writer = logger.experiment
            for summary in (experiment, start):
                writer.file_writer.add_summary(summary)
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, epochs)
            writer.file_writer.add_summary(end)
            writer.flush()
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        reliability = {"epoch": epochs, "bins": module.reliability}
        (out_dir / "reliability.json").write_text(json.dumps(reliability, indent=1))


# -- DDP children -------------------------------------------------------------------------------

DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# Hydra overrides a DDP child must not repeat: it runs this job alone, in this job's folder
_NOT_FOR_CHILDREN = ("hydra.mode", "hydra.run", "hydra.sweep", "hydra.launcher", "hydra/launcher")
_NOT_FOR_CHILDREN += ("hydra.sweeper", "hydra/sweeper", "hydra.callbacks", "hydra.job.name")


@contextlib.contextmanager
def _ddp_children_join_this_job() -> Iterator[None]:
    """Make Lightning's DDP child processes re-run this job, not the whole command line.

    Lightning starts ranks > 0 by re-running ``sys.argv`` with ``hydra.run.dir=<run.dir>``. Inside
    a sweep that re-launches the whole sweep into new folders (lightning #11300, hydra #2070).
    Here a child gets this job's config folder and name (``--config-dir``, ``--config-name``),
    its overrides, its Hydra overrides (``hydra.searchpath``, ...), its output folder, and
    ``hydra.mode=RUN``.
    """
    from lightning.pytorch.strategies.launchers import subprocess_script

    def child_command(local_rank: int) -> tuple[list[str], str]:
        hc = HydraConfig.get()
        command = [sys.executable, "-m", "losslab.train", "--config-name", hc.job.config_name]
        for source in hc.runtime.config_sources:
            if source.provider == "command-line":
                command += ["--config-dir", source.path.removeprefix("file://")]
        command += list(hc.overrides.task)
        command += [o for o in hc.overrides.hydra if not o.startswith(_NOT_FOR_CHILDREN)]
        command += [
            f"hydra.run.dir='{hc.runtime.output_dir}'",  # quoted: job folders hold = and ,
            f"hydra.job.name=ddp_rank_{local_rank}",
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


# -- checks: everything that can refuse a start, before anything is written ----------------------


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value


def _resume_from(cfg: DictConfig, run_dir: Path) -> tuple[DictConfig, dict, dict]:
    """The config the run in ``run_dir`` trained with, with the resumable keys this start
    changes; its group choices; and those changes ``{key: [old, new]}``.

    Raises UsageError when this start's overrides change what the run is (loss, model, data,
    optimizer, seed, ...): one run never mixes two configurations.
    """
    saved_file = run_dir / ".hydra" / "config.yaml"
    if not saved_file.is_file():
        raise UsageError(
            f"ckpt_path={cfg.ckpt_path}: {run_dir} holds no .hydra/config.yaml, so the config it "
            f"trained with is unknown; resume a folder that losslab-train wrote"
        )
    saved = OmegaConf.load(saved_file)
    saved_choices = dict(OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices)
    hc = HydraConfig.get()
    changed, refused = {}, []
    for override in OverridesParser.create().parse_overrides(list(hc.overrides.task)):
        key = override.key_or_group
        if key == "ckpt_path":
            continue
        if key in hc.runtime.choices:  # a config group: compare the chosen configs' names
            old, new = saved_choices.get(key), hc.runtime.choices[key]
        else:
            old, new = _value(saved, key), _value(cfg, key)
        if old == new:
            continue
        if key in RESUMABLE:
            changed[key] = [old, new]
        else:
            refused.append(f"{key}={new} (the run has {key}={old})")
    if refused:
        raise UsageError(
            f"ckpt_path={cfg.ckpt_path} resumes {run_dir} with its own config; refused: "
            f"{'; '.join(refused)}. At resume only {', '.join(RESUMABLE)} may change: "
            f"start a new run for another configuration"
        )
    for key, (_, new) in changed.items():
        OmegaConf.update(saved, key, new, force_add=True)
    saved.ckpt_path = cfg.ckpt_path
    return saved, saved_choices, changed


def _checkpoint(cfg: DictConfig, out_dir: Path) -> tuple[str | None, Path | None]:
    """The checkpoint to resume from and the run folder it belongs to."""
    ckpt = cfg.ckpt_path
    if ckpt is None:
        return None, None
    if ckpt == "last":
        last = out_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise UsageError(
                f"ckpt_path=last: no checkpoint {last}. To resume a run, pass its folder too: "
                f"ckpt_path=last hydra.run.dir=logs/<task>/runs/<time>"
            )
        return str(last), out_dir
    path = Path(ckpt)
    if not path.is_file():
        raise UsageError(f"ckpt_path={ckpt}: no such checkpoint file (or use ckpt_path=last)")
    run_dir = path.resolve().parent.parent
    return str(path), run_dir if (run_dir / ".hydra" / "config.yaml").is_file() else None


def _holds_a_run(folder: Path) -> bool:
    return (folder / ".hydra" / "config.yaml").is_file() or any(
        folder.glob("events.out.tfevents.*")
    )


def run_hparams(cfg: DictConfig, choices: dict[str, Any], swept: list[str]) -> dict[str, Any]:
    """The HPARAMS columns: the same keys in every run (``epochs`` and ``status`` are added at
    the end), plus any swept key that is not one of them, named by its override key."""
    out: dict[str, Any] = {}
    for name, key in HPARAM_KEYS.items():
        out[name] = choices.get(key) if key in ("loss", "optimizer") else _value(cfg, key)
    out["hidden"] = "-".join(map(str, out["hidden"]))
    out["from_logits"] = bool(out["from_logits"])
    out["train_size"] = out["train_size"] or 60000 - cfg.data.val_size
    for key in (k for k in swept if k not in HPARAM_NAMES):
        out[key] = choices[key] if key in choices else _value(cfg, key)
        if isinstance(out[key], list | dict):
            out[key] = json.dumps(out[key])
    return out


def _hparams_layout(
    hparams: dict[str, Any], swept: dict[str, list[str]]
) -> tuple[dict[str, Any], list[str], dict[str, list[Any]]]:
    """HPARAMS order, the columns that differ (the swept ones; a single run: loss, lr,
    batch_size) and the values the sidebar filters offer."""
    swept_names = [HPARAM_NAMES.get(key, key) for key in swept]
    differs = swept_names or ["loss", "lr", "batch_size"]
    order = [*differs, *(n for n in hparams if n not in differs)]
    loader = GlobalHydra.instance().config_loader()
    domains: dict[str, list[Any]] = {
        "loss": sorted(loader.get_group_options("loss")),
        "optimizer": sorted(loader.get_group_options("optimizer")),
        "activation": sorted(ACTIVATIONS),
        "status": ["diverged", "ok"],
    }
    for key, values in swept.items():
        name = HPARAM_NAMES.get(key, key)
        kind = type(hparams[name])
        if name in domains or kind is bool:
            continue
        parsed = [yaml.safe_load(v) for v in values]
        if kind in (int, float):
            domains[name] = sorted({float(v) for v in parsed if isinstance(v, int | float)})
        else:
            domains[name] = sorted(
                {"-".join(map(str, v)) if isinstance(v, list) else str(v) for v in parsed}
            )
    return {n: hparams[n] for n in order}, differs, domains


# -- a run --------------------------------------------------------------------------------------


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)


@contextlib.contextmanager
def _run_log(out_dir: Path | None) -> Iterator[None]:
    """``losslab`` messages to stdout and, on rank 0, appended to ``<run>/train.log`` with
    Lightning's own (``Trainer.fit stopped: ...``)."""
    handlers: list[tuple[logging.Logger, logging.Handler]] = []
    console = logging.StreamHandler(sys.stdout)
    console.addFilter(_ConsoleFilter())
    handlers.append((log, console))
    if out_dir is not None:
        file = logging.FileHandler(out_dir / "train.log")
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


def _write_config_files(
    out_dir: Path, cfg: DictConfig, choices: dict, changed: dict | None
) -> None:
    """``.hydra/`` of a new run, or one more entry of ``.hydra/resumes.yaml`` for a resume."""
    hc = HydraConfig.get()
    folder = out_dir / ".hydra"
    if changed is not None and (folder / "config.yaml").is_file():
        record = {
            "time": datetime.now().isoformat(timespec="seconds"),
            "overrides": list(hc.overrides.task),
            "changed": changed,
        }
        with (folder / "resumes.yaml").open("a") as f:
            yaml.safe_dump([record], f, sort_keys=False)
        return
    folder.mkdir(parents=True, exist_ok=True)
    hydra_cfg = OmegaConf.create(
        {"hydra": OmegaConf.to_container(HydraConfig.instance().cfg.hydra, resolve=False)}
    )
    hydra_cfg.hydra.runtime.choices = choices
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(hydra_cfg, folder / "hydra.yaml")
    OmegaConf.save(OmegaConf.create(list(hc.overrides.task)), folder / "overrides.yaml")


def _remove_if_empty(folder: Path) -> None:
    """A refused start leaves nothing: the run folder Hydra made for it, and the empty folders
    above it, go again."""
    stop = Path.cwd().resolve()
    folder = folder.resolve()
    while (
        folder != stop and stop in folder.parents and folder.is_dir() and not any(folder.iterdir())
    ):
        folder.rmdir()
        folder = folder.parent


def _build(cfg: DictConfig, choices: dict, ckpt_path: str | None, out_dir: Path) -> tuple[Any, ...]:
    """Every object of the run, and the MNIST files checked (downloaded if allowed)."""
    steps_per_call = cfg.trainer.steps_per_call
    datamodule = instantiate(cfg.data, steps_per_call=steps_per_call)
    try:
        datamodule.prepare_data()
    except (FileNotFoundError, RuntimeError) as err:
        raise UsageError(str(err)) from err
    loss_cfg = OmegaConf.to_container(cfg.loss, resolve=True)
    loss_input = loss_cfg.pop("input", "auto")
    module = Classifier(
        net=instantiate(cfg.model),
        loss=instantiate(loss_cfg),
        optimizer=instantiate(cfg.optimizer),
        num_classes=cfg.model.num_classes,
        loss_input=loss_input,
        steps_per_call=steps_per_call,
    )
    swept = sweep.this_sweep()
    hparams, differs, domains = _hparams_layout(run_hparams(cfg, choices, list(swept)), swept)
    progress = cfg.trainer.enable_progress_bar and sys.stdout.isatty()
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    replay = ckpt_path is not None and Path(ckpt_path).resolve().parents[1] != out_dir.resolve()
    callbacks += [
        TensorBoardSummary(hparams, differs, domains, replay),
        EpochLog(console=not progress),
    ]
    if progress:
        callbacks.append(RichProgressBar())
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_cfg.pop("steps_per_call")
    # A resumed run measured its epoch 0 already: skip the full sanity pass that measures it.
    resume = {"num_sanity_val_steps": 0} if ckpt_path else {}
    trainer: L.Trainer = instantiate(
        trainer_cfg,
        logger=[instantiate(c) for c in cfg.logger.values()],
        callbacks=callbacks,
        enable_progress_bar=progress,
        **resume,
    )
    return datamodule, module, trainer


def train(cfg: DictConfig) -> float:
    """Train one run from a composed config. Returns the number a sweeper maximises
    (:func:`losslab.metrics.objective`): the final validation accuracy, NaN without a
    validation split (a sweeper never chooses on the test set)."""
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    rank_zero = rank_zero_only.rank == 0
    try:
        schemas.check(cfg)
        choices = dict(hc.runtime.choices)
        ckpt_path, source_run = _checkpoint(cfg, out_dir)
        changed = None
        if source_run is not None:
            cfg, choices, changed = _resume_from(cfg, source_run)
        elif ckpt_path is None and rank_zero and _holds_a_run(out_dir):
            raise UsageError(
                f"hydra.run.dir={out_dir} already holds a run: resume it with ckpt_path=last, "
                f"or choose a new hydra.run.dir (nothing was changed there)"
            )
        torch.set_num_threads(cfg.threads)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule, module, trainer = _build(cfg, choices, ckpt_path, out_dir)
    except Exception as err:
        if rank_zero:
            _remove_if_empty(out_dir)
        message = one_line(err)
        if message is None:
            raise
        raise UsageError(message) from err

    if rank_zero:
        _write_config_files(out_dir, cfg, choices, changed if ckpt_path else None)
    with _run_log(out_dir if rank_zero else None):
        if changed:
            log.info(f"resumed {out_dir} with its own config; changed: {changed}")
        start = time.perf_counter()
        try:
            with _ddp_children_join_this_job():
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        finally:
            # Lightning leaves the process group up; the next job of a sweep needs a fresh one.
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
        if trainer.is_global_zero:
            _log_summary(module, time.perf_counter() - start, out_dir)
    return objective(module.history)


def _log_summary(module: Classifier, seconds: float, out_dir: Path) -> None:
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
    shown = os.path.relpath(out_dir) if out_dir.is_relative_to(Path.cwd()) else str(out_dir)
    lines += [f"  logs   {shown}", f"  view   tensorboard --logdir {shown}"]
    log.info("\n".join(lines))


# A single run's refusal, for losslab.cli to print as one line once Hydra has returned (raised
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


if __name__ == "__main__":
    from losslab.cli import train_main

    train_main()

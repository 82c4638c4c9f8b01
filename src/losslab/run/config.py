"""Typed schemas of the configs in ``conf/``, registered in Hydra's ConfigStore, and the checks a
composed config must pass before anything is built.

Hydra checks types against the schemas when it composes (``data.batch_size=abc`` fails there,
naming the key). Ranges are checked once, by whoever takes the value: the constructors of the
library half (``MNISTDataModule``, ``MLP``, the losses, ``Classifier``) check their own arguments,
and :mod:`losslab.run.build` turns their messages into the config key; the schemas below check only
what no constructor of losslab takes (the optimizer, the scheduler, the Trainer, the top-level
keys). The rules that span several keys are :mod:`losslab.run.rules`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from losslab.errors import UsageError
from losslab.lit.trainer import lightning_step_needs, resolve_steps_per_call
from losslab.study.candidates import candidate_lr
from losslab.study.selection import fixed_lr

__all__ = ["GROUPS", "REQUIRED_GROUPS", "SCHEMAS", "TrainConfig", "register"]


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise UsageError(f"{key}={value!r} is out of range: {key} must be {allowed}")


@dataclass
class DataConfig:
    _target_: str = "losslab.lit.data.MNISTDataModule"
    data_dir: str = "data"
    batch_size: int = 100
    val_size: int = 0
    train_size: int | None = None
    label_noise: float = 0.0
    noise_seed: int = 0
    download: bool = True
    seed: int = 0
    eval_batch_size: int = 2000
    drop_last: bool = False
    replacement: bool = False
    eval_splits: list[str] = field(default_factory=lambda: ["train", "val", "test"])


@dataclass
class ModelConfig:
    _target_: str = "losslab.models.MLP"
    in_features: int = 784
    hidden: list[int] = field(default_factory=lambda: [100])
    num_classes: int = 10
    activation: str = "relu"
    init: str = "default"
    init_std: float = 0.01


# A loss config holds its constructor's arguments only (what the module feeds it is
# classifier.loss_input). Training needs a batch mean, so the losses keep reduction="mean" and it
# is not a key here.


@dataclass
class SSEConfig:
    _target_: str = "losslab.losses.SSELoss"
    from_logits: bool = True


@dataclass
class MAEConfig:
    _target_: str = "losslab.losses.MAELoss"
    from_logits: bool = True


@dataclass
class CEEConfig:
    _target_: str = "losslab.losses.CEELoss"
    from_logits: bool = True
    label_smoothing: float = 0.0
    eps: float = 1e-7
    ignore_index: int = -100


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optimizer.lr", self.lr, "> 0")
        _check(0 <= self.momentum < 1, "optimizer.momentum", self.momentum, "in [0, 1)")
        _check(self.weight_decay >= 0, "optimizer.weight_decay", self.weight_decay, ">= 0")


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optimizer.lr", self.lr, "> 0")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "optimizer.betas",
            self.betas,
            "two numbers in [0, 1)",
        )
        _check(self.eps > 0, "optimizer.eps", self.eps, "> 0")
        _check(self.weight_decay >= 0, "optimizer.weight_decay", self.weight_decay, ">= 0")


@dataclass
class ClassifierConfig:
    """The arguments of :class:`losslab.lit.classifier.Classifier` that are not its parts
    (net, loss, optimizer, scheduler: the groups); the Classifier checks their values."""

    normalize: bool = True
    loss_input: str = "auto"
    scheduler_interval: str = "epoch"


@dataclass
class StepLRConfig:
    _target_: str = "torch.optim.lr_scheduler.StepLR"
    _partial_: bool = True
    step_size: int = 2
    gamma: float = 0.5

    def __post_init__(self) -> None:
        _check(self.step_size >= 1, "scheduler.step_size", self.step_size, ">= 1")
        _check(0 < self.gamma <= 1, "scheduler.gamma", self.gamma, "in (0, 1]")


@dataclass
class CosineConfig:
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    _partial_: bool = True
    T_max: int = 5
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        _check(self.T_max >= 1, "scheduler.T_max", self.T_max, ">= 1")
        _check(self.eta_min >= 0, "scheduler.eta_min", self.eta_min, ">= 0")


@dataclass
class TrainerConfig:
    """The ``lightning.Trainer`` arguments losslab allows (``losslab.lit.trainer.Trainer``: Lightning's,
    with ``steps_per_call``); see ``conf/trainer/*.yaml``."""

    _target_: str = "losslab.lit.trainer.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: Any = "auto"
    num_nodes: int = 1
    max_epochs: int = 5
    max_steps: int = -1
    max_time: Any = None
    precision: Any = "32-true"
    deterministic: Any = True
    benchmark: bool | None = None
    log_every_n_steps: int = 50
    num_sanity_val_steps: int = -1
    use_distributed_sampler: bool = False
    enable_model_summary: bool = False
    enable_progress_bar: bool = True
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    # the debug presets (conf/debug): a smoke run, a few batches, a short epoch
    fast_dev_run: Any = False
    overfit_batches: Any = 0.0
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    default_root_dir: str | None = None
    # optimizer steps per Lightning training step: auto, or K >= 1 (losslab.lit.trainer)
    steps_per_call: Any = "auto"

    def __post_init__(self) -> None:
        _check(
            self.accumulate_grad_batches >= 1,
            "trainer.accumulate_grad_batches",
            self.accumulate_grad_batches,
            ">= 1",
        )
        _check(
            self.max_epochs > 0 or (self.max_epochs == -1 and self._limited()),
            "trainer.max_epochs",
            self.max_epochs,
            "a positive integer, or -1 (no limit) together with trainer.max_steps or "
            "trainer.max_time",
        )
        _check(
            self.max_steps == -1 or self.max_steps > 0,
            "trainer.max_steps",
            self.max_steps,
            "-1 or > 0",
        )
        _check(
            self.log_every_n_steps > 0, "trainer.log_every_n_steps", self.log_every_n_steps, "> 0"
        )
        _check(self.num_nodes > 0, "trainer.num_nodes", self.num_nodes, "> 0")
        _check(
            self.devices in ("auto", -1)
            or (isinstance(self.devices, int) and self.devices > 0)
            or isinstance(self.devices, list),
            "trainer.devices",
            self.devices,
            "a positive integer, a list of device ids, -1 or 'auto'",
        )
        needs = lightning_step_needs(
            precision=self.precision,
            gradient_clip_val=self.gradient_clip_val,
            accumulate_grad_batches=self.accumulate_grad_batches,
            processes=self.processes() or 1,
            overfit_batches=self.overfit_batches,
            fast_dev_run=self.fast_dev_run,
        )
        try:
            resolve_steps_per_call(self.steps_per_call, needs)
        except ValueError as err:
            raise UsageError(f"trainer.{err}") from err

    def _limited(self) -> bool:
        return self.max_steps > 0 or self.max_time is not None

    def processes(self) -> int | None:
        """Processes of the run when the config says how many (None: decided at run time, as
        with ``devices=auto``): one per device and node."""
        devices = self.devices
        count = len(devices) if isinstance(devices, list | ListConfig) else devices  # [0, 1]: 2
        if not isinstance(count, int) or count < 1:
            return None
        return count * self.num_nodes


@dataclass
class PathsConfig:
    log_dir: str = "logs"


@dataclass
class StudyConfig:
    """A study stage's bookkeeping (``losslab-study`` sets it): which stage a run belongs to
    (null: none) and, in the final stage, which of the tuning stage's best lrs it trains (0: the
    best)."""

    stage: str | None = None
    lr_rank: int = 0

    def __post_init__(self) -> None:
        allowed = f"null or one of {', '.join(STAGES)}"
        _check(self.stage in (None, *STAGES), "study.stage", self.stage, allowed)
        _check(self.lr_rank >= 0, "study.lr_rank", self.lr_rank, ">= 0")


STAGES = ("tune", "final", "fixed")


@dataclass
class TrainConfig:
    """Top level of ``conf/train.yaml`` (the groups are checked by their own schemas)."""

    data: Any = None
    model: Any = None
    loss: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    threads: int = 1
    task_name: str = "train"
    ckpt_path: str | None = None
    init_from: str | None = None
    verbose: bool = False  # a sweep's runs print their epoch lines and summary too
    study: StudyConfig = field(default_factory=StudyConfig)  # a study stage's run

    def __post_init__(self) -> None:
        _check(0 <= self.seed < 2**32, "seed", self.seed, "in [0, 2**32)")
        _check(self.threads >= 1, "threads", self.threads, ">= 1")


# the groups a run cannot do without, and every group with configs of its own in conf/
REQUIRED_GROUPS = ("data", "model", "loss", "optimizer", "trainer")
GROUPS = (*REQUIRED_GROUPS, "scheduler", "paths")
SCHEMAS = {
    "data": DataConfig,
    "model": ModelConfig,
    "trainer": TrainerConfig,
    "paths": PathsConfig,
}


def _study_lr(reader: Callable[..., float]) -> Callable[..., float]:
    """A study resolver whose refusal names the key, in one line."""

    def resolve(*args: Any) -> float:
        try:
            return reader(*args[:-1], os.path.normpath(args[-1]))  # <sweep dir>/../<stage>/...
        except ValueError as err:
            raise UsageError(str(err)) from err

    return resolve


# one line of --help per group a user chooses from (the schema groups are internal)
GROUP_HELP = {
    "data": "MNIST, the official 60k/10k split held in memory",
    "model": "the network",
    "loss": "the loss the network trains with",
    "optimizer": "the optimizer",
    "scheduler": "the learning-rate schedule",
    "trainer": "one CPU, one GPU, or DDP over several processes",
    "logger": "TensorBoard, CSV, or both: logger=[tensorboard,csv]; logger=null: none",
    "callbacks": "checkpoints each epoch; callbacks=null: none",
    "paths": "where runs are written: paths.log_dir, default from the variable LOSSLAB_LOG_DIR",
    "debug": "smoke runs: fast (one batch), overfit (3 batches), limit (10% of each epoch)",
    "experiment": "named experiments (the book's settings, the studies)",
}


def _groups_help() -> str:
    """``${losslab_groups:}``: each user group of ``conf/`` with its choices, one line each."""
    conf = Path(__file__).parent.parent / "conf"
    lines = []
    for group, text in GROUP_HELP.items():
        names = sorted(p.stem for p in (conf / group).glob("*.yaml"))
        lines.append(f"  {group}: {', '.join(names)}\n      {text}")
    return "\n".join(lines)


def register() -> None:
    """Put the schemas into Hydra's ConfigStore (``/schema/...``) and add losslab's resolver."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="schema", name="data", node=DataConfig)
    cs.store(group="schema", name="model", node=ModelConfig)
    cs.store(group="schema", name="trainer", node=TrainerConfig)
    cs.store(group="schema", name="paths", node=PathsConfig)
    for name, node in (("sse", SSEConfig), ("cee", CEEConfig), ("mae", MAEConfig)):
        cs.store(group="schema/loss", name=name, node=node)
    cs.store(group="schema/optimizer", name="sgd", node=SGDConfig)
    cs.store(group="schema/optimizer", name="adam", node=AdamConfig)
    cs.store(group="schema/scheduler", name="step", node=StepLRConfig)
    cs.store(group="schema/scheduler", name="cosine", node=CosineConfig)
    if not OmegaConf.has_resolver("losslab_candidate_lr"):
        # a study's final stages: ${losslab_candidate_lr:<loss>,<value>,<rank>,<file>} and
        # ${losslab_fixed_lr:<loss>,<seed>,<file>} read the lrs its earlier stages chose
        OmegaConf.register_new_resolver("losslab_candidate_lr", _study_lr(candidate_lr))
        OmegaConf.register_new_resolver("losslab_fixed_lr", _study_lr(fixed_lr))
        OmegaConf.register_new_resolver("losslab_groups", _groups_help)

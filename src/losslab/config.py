"""Typed schemas of the configs in ``conf/`` (plain dataclasses; ``train.py`` registers them).

Hydra checks types against these when it composes (``data.batch_size=abc`` fails there, naming
the key); ``__post_init__`` checks ranges when ``train.py`` turns the config into objects.
Every message names the override key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from losslab.models import ACTIVATIONS, INITS
from losslab.module import LOSS_INPUTS


class UsageError(ValueError):
    """A bad command, value or folder: ``losslab-train`` prints its message as one line
    (``losslab-train: error: ...``) and exits with status 2, having written nothing."""


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise UsageError(f"{key}={value!r} is out of range: {key} must be {allowed}")


def _check_input(input: str, from_logits: bool, loss: str) -> None:
    """``loss.input`` (what the Classifier feeds the loss) against ``loss.from_logits``."""
    _check(input in LOSS_INPUTS, "loss.input", input, f"one of {LOSS_INPUTS}")
    if input == "probabilities" and from_logits:
        raise UsageError(
            "loss.input=probabilities with loss.from_logits=true would apply the softmax twice: "
            "set loss.from_logits=false, or loss.input=auto"
        )
    if loss == "cee" and input == "logits" and not from_logits:
        raise UsageError(
            "loss.input=logits with loss.from_logits=false would take the log of raw outputs: "
            "CEE needs loss.from_logits=true (logits in) or loss.input=auto (softmax in)"
        )


@dataclass
class DataConfig:
    _target_: str = "losslab.data.MNISTDataModule"
    data_dir: str = "data"
    batch_size: int = 100
    val_size: int = 0
    train_size: int | None = None
    download: bool = True
    normalize: bool = True
    seed: int = 0
    eval_batch_size: int = 2000
    drop_last: bool = False
    replacement: bool = False

    def __post_init__(self) -> None:
        _check(self.batch_size > 0, "data.batch_size", self.batch_size, "a positive integer")
        _check(self.eval_batch_size > 0, "data.eval_batch_size", self.eval_batch_size, "> 0")
        _check(0 <= self.val_size < 60000, "data.val_size", self.val_size, "in [0, 60000)")
        _check(
            self.train_size is None or 0 < self.train_size <= 60000 - self.val_size,
            "data.train_size",
            self.train_size,
            f"null or in [1, {60000 - self.val_size}] (60000 minus data.val_size)",
        )


@dataclass
class ModelConfig:
    _target_: str = "losslab.models.MLP"
    in_features: int = 784
    hidden: list[int] = field(default_factory=lambda: [100])
    num_classes: int = 10
    activation: str = "relu"
    init: str = "default"
    init_std: float = 0.01

    def __post_init__(self) -> None:
        _check(self.in_features > 0, "model.in_features", self.in_features, "> 0")
        _check(
            all(h > 0 for h in self.hidden), "model.hidden", self.hidden, "a list of positive sizes"
        )
        _check(self.num_classes > 1, "model.num_classes", self.num_classes, "> 1")
        _check(
            self.activation in ACTIVATIONS,
            "model.activation",
            self.activation,
            f"one of {sorted(ACTIVATIONS)}",
        )
        _check(self.init in INITS, "model.init", self.init, f"one of {INITS}")
        _check(self.init_std > 0, "model.init_std", self.init_std, "> 0")


# Training needs a scalar per batch averaged over its samples: the losses keep their default
# reduction="mean" (the epoch metrics weight each batch by its size), so it is not a key here.


# ``input`` is not an argument of the loss: train.py takes it out and gives it to the Classifier.


@dataclass
class SSEConfig:
    _target_: str = "losslab.losses.SSELoss"
    from_logits: bool = True
    input: str = "auto"

    def __post_init__(self) -> None:
        _check_input(self.input, self.from_logits, "sse")


@dataclass
class CEEConfig:
    _target_: str = "losslab.losses.CEELoss"
    from_logits: bool = True
    label_smoothing: float = 0.0
    eps: float = 1e-7
    ignore_index: int = -100
    input: str = "auto"

    def __post_init__(self) -> None:
        _check_input(self.input, self.from_logits, "cee")
        _check(
            0.0 <= self.label_smoothing <= 1.0,
            "loss.label_smoothing",
            self.label_smoothing,
            "in [0, 1]",
        )
        _check(self.eps > 0, "loss.eps", self.eps, "> 0")


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
class TrainerConfig:
    """The ``lightning.Trainer`` arguments losslab sets; see ``conf/trainer/*.yaml``."""

    _target_: str = "lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: Any = "auto"
    num_nodes: int = 1
    max_epochs: int = 5
    max_steps: int = -1
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
    limit_train_batches: Any = None
    default_root_dir: str | None = None
    # not a Trainer argument: optimizer steps per Lightning training step (train.py takes it out)
    steps_per_call: int = 1

    def __post_init__(self) -> None:
        _check(self.steps_per_call >= 1, "trainer.steps_per_call", self.steps_per_call, ">= 1")
        _check(
            self.accumulate_grad_batches >= 1,
            "trainer.accumulate_grad_batches",
            self.accumulate_grad_batches,
            ">= 1",
        )
        if self.steps_per_call > 1:
            self._check_steps_per_call()
        _check(self.max_epochs > 0, "trainer.max_epochs", self.max_epochs, "a positive integer")
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
        devices = self.devices
        _check(
            devices in ("auto", -1)
            or (isinstance(devices, int) and devices > 0)
            or isinstance(devices, list),
            "trainer.devices",
            devices,
            "a positive integer, a list of device ids, -1 or 'auto'",
        )

    def _check_steps_per_call(self) -> None:
        """K > 1 runs the optimizer steps itself: refuse what only Lightning's own loop does."""
        k = f"trainer.steps_per_call={self.steps_per_call}"
        refusals = [
            (
                self.gradient_clip_val not in (None, 0),
                f"trainer.gradient_clip_val={self.gradient_clip_val}",
            ),
            (
                self.accumulate_grad_batches != 1,
                f"trainer.accumulate_grad_batches={self.accumulate_grad_batches}",
            ),
            (str(self.precision) not in ("32", "32-true"), f"trainer.precision={self.precision}"),
            (
                str(self.strategy) not in ("auto", "single_device")
                or self.num_nodes != 1
                or not (
                    self.devices == 1 or (isinstance(self.devices, list) and len(self.devices) == 1)
                ),
                f"trainer.strategy={self.strategy} trainer.devices={self.devices}",
            ),
        ]
        for refused, setting in refusals:
            if refused:
                raise UsageError(
                    f"{k} cannot be combined with {setting}: several optimizer steps per call "
                    f"need one process, 32-bit precision, no gradient clipping and no gradient "
                    f"accumulation; set trainer.steps_per_call=1 to use {setting.split('=')[0]}"
                )


@dataclass
class TrainConfig:
    """Top level of ``conf/train.yaml`` (the groups are checked by their own schemas)."""

    data: Any = None
    model: Any = None
    loss: Any = None
    optimizer: Any = None
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None
    seed: int = 0
    threads: int = 1
    task_name: str = "train"
    ckpt_path: str | None = None
    study: str | None = None  # the fair study's stage (tune | final): chooses on validation

    def __post_init__(self) -> None:
        _check(0 <= self.seed < 2**32, "seed", self.seed, "in [0, 2**32)")
        _check(self.threads >= 1, "threads", self.threads, ">= 1")
        _check(self.study in (None, "tune", "final"), "study", self.study, "null, tune or final")
        if self.study is not None and not self.data.val_size:
            raise UsageError(
                f"data.val_size={self.data.val_size}: the study's {self.study} stage chooses on a "
                f"validation split; set data.val_size > 0 (the study presets hold out 10000)"
            )


def check(cfg: DictConfig) -> None:
    """Every check a run's config must pass before anything is written: types and ranges of
    every group (the schemas' ``__post_init__``), and a GPU when the trainer asks for one.

    Raises:
        UsageError: naming the key and what it allows.
    """
    OmegaConf.to_object(cfg)
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"trainer.accelerator={accelerator!r} needs a CUDA GPU, but none is visible "
            f"(torch.cuda.is_available() is False): use trainer=cpu or trainer=ddp"
        )

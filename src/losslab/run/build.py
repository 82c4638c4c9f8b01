"""From a checked config to the run's objects: the data module, the Classifier and its parts, the
Trainer with its loggers and callbacks.

The library's constructors check their own arguments; :func:`parts` turns their ``ValueError``
into a :class:`~losslab.errors.UsageError` that names the config key (``data.batch_size must be a
positive integer, got 0``). A sweep calls :func:`parts` for every job before the first one runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from omegaconf import DictConfig, OmegaConf

from losslab.errors import UsageError, group_error
from losslab.lit.classifier import Classifier, make, read_checkpoint
from losslab.lit.data import MNISTDataModule
from losslab.models import ACTIVATIONS
from losslab.run import tb
from losslab.run.callbacks import EpochLog, TensorBoardSummary

__all__ = ["build", "parts"]


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


@contextlib.contextmanager
def _group(name: str, node: Any, renames: dict[str, str] | None = None) -> Iterator[None]:
    """Constructor errors inside the block become config errors of group ``name``."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError) as err:
        keys = list(node.keys()) if isinstance(node, Mapping | DictConfig) else []
        raise group_error(name, err, keys, renames) from err


def parts(cfg: DictConfig) -> tuple[MNISTDataModule, Classifier]:
    """The data module (no file read yet) and the Classifier of a checked config. The
    Classifier's hyperparameters are its parts' configs, so its checkpoints rebuild it alone."""
    steps = cfg.trainer.steps_per_call
    with _group("data", cfg.data):
        datamodule = make({**_plain(cfg.data), "steps_per_call": steps})
    specs = {k: _plain(cfg[g]) for k, g in (("net", "model"), ("loss", "loss"))}
    specs.update(optimizer=_plain(cfg.optimizer), scheduler=_plain(cfg.scheduler))
    loss_input = specs["loss"].pop("input", "auto")
    interval = specs["scheduler"].pop("interval", "epoch") if specs["scheduler"] else "epoch"
    built = {}
    for key, group in (("net", "model"), ("loss", "loss"), ("optimizer", "optimizer")):
        with _group(group, cfg[group]):
            built[key] = make(specs[key])
    with _group("scheduler", cfg.scheduler):
        built["scheduler"] = make(specs["scheduler"])
    with _group("loss", cfg.loss, {"loss_input": "input"}):
        module = Classifier(
            **built, scheduler_interval=interval, loss_input=loss_input, steps_per_call=steps
        )
    hparams = {**specs, "scheduler_interval": interval, "loss_input": loss_input}
    module.save_hyperparameters({**hparams, "steps_per_call": steps}, logger=False)
    return datamodule, module


def _load_weights(module: Classifier, path: str) -> None:
    """``init_from``: the checkpoint's weights into ``module`` (nothing else of its run)."""
    state = read_checkpoint(path, "init_from")["state_dict"]
    own = module.state_dict()
    misfits = [f"{k} is missing" for k in own if k not in state]
    misfits += [f"{k} is not in this model" for k in state if k not in own]
    misfits += [
        f"{k} is {list(v.shape)} there, {list(own[k].shape)} here"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if misfits:
        raise UsageError(
            f"init_from={path}: its weights do not fit this run's model ({misfits[0]}"
            f"{f', and {len(misfits) - 1} more' if len(misfits) > 1 else ''}); init_from needs "
            f"the model.* settings of the run that wrote it"
        )
    module.load_state_dict(state)


def _group_options() -> dict[str, list[str]]:
    """The configs a user can choose for ``loss`` and ``optimizer`` (the HPARAMS filters), asked
    of Hydra once per process and config search path (a sweep worker's jobs share them)."""
    loader = GlobalHydra.instance().config_loader()
    key = repr(loader.get_sources())
    if key not in _OPTIONS:
        _OPTIONS[key] = {g: sorted(loader.get_group_options(g)) for g in ("loss", "optimizer")}
    return _OPTIONS[key]


_OPTIONS: dict[str, dict[str, list[str]]] = {}


def build(
    cfg: DictConfig,
    choices: Mapping[str, Any],
    ckpt_path: str | None,
    swept: Mapping[str, list[str]],
    replay: bool,
) -> tuple[MNISTDataModule, Classifier, L.Trainer, dict[str, Any]]:
    """Every object of the run and its HPARAMS row; the MNIST files checked (downloaded if
    allowed).

    Args:
        cfg: the run's checked config.
        choices: the chosen config of each group (HPARAMS columns ``loss``, ``optimizer``).
        ckpt_path: the checkpoint a resume restores (the Trainer then skips epoch 0's sanity
            pass: the first start measured it).
        swept: the keys and values of the sweep this run belongs to (HPARAMS ``differs``).
        replay: the run starts in a new folder from another run's checkpoint: that run's
            curves are written into this folder first.
    """
    datamodule, module = parts(cfg)
    try:
        datamodule.prepare_data()
    except (FileNotFoundError, RuntimeError) as err:
        raise UsageError(" ".join(str(err).split())) from err
    if cfg.init_from is not None:
        _load_weights(module, cfg.init_from)
    options = {**_group_options(), "activation": list(ACTIVATIONS)}
    hparams = tb.run_hparams(cfg, choices, list(swept))
    hparams, differs, domains = tb.hparams_layout(hparams, swept, options)
    progress = cfg.trainer.enable_progress_bar and sys.stdout.isatty()
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    callbacks += [TensorBoardSummary(hparams, differs, domains, replay), EpochLog(not progress)]
    if progress:
        callbacks.append(RichProgressBar())
    trainer_cfg = _plain(cfg.trainer)
    trainer_cfg.pop("steps_per_call")
    # A resumed run measured its epoch 0 already: skip the full sanity pass that measures it.
    resume = {"num_sanity_val_steps": 0} if ckpt_path else {}
    trainer: L.Trainer = instantiate(
        trainer_cfg,
        logger=[instantiate(c) for c in (cfg.logger or {}).values()],
        callbacks=callbacks,
        # callbacks=null switches checkpoints off too (Lightning would add a default one)
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=progress,
        **resume,
    )
    return datamodule, module, trainer, hparams

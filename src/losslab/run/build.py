"""From a checked config to the run's objects — the data module, the Classifier and its parts,
the Trainer with its loggers and callbacks — each built once, by :func:`losslab.lit.spec.make`.

The library's constructors check their own arguments; a ``ValueError`` or ``TypeError`` of
theirs becomes a :class:`~losslab.errors.UsageError` that names the config key
(``data.batch_size must be a positive integer, got 0``). A config group's keys are its
constructor's arguments: nothing is taken out of a group or renamed on the way.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from losslab.errors import UsageError, group_error
from losslab.lit.classifier import Classifier
from losslab.lit.data import MNISTDataModule
from losslab.lit.spec import make, target
from losslab.lit.trainer import Trainer
from losslab.run import tb
from losslab.run.callbacks import EpochLog, TensorBoardSummary
from losslab.run.checkpoints import read_checkpoint

__all__ = ["build", "parts", "prepare"]

# how losslab-train is pointed at the MNIST files
DATA_HINT = (
    "Point LOSSLAB_DATA_DIR (or data.data_dir) at the folder that holds MNIST/raw/, or let "
    "torchvision download them (data.download=true) on a machine with internet."
)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


@contextlib.contextmanager
def _group(name: str, node: Any) -> Iterator[None]:
    """Constructor errors inside the block become config errors of group ``name``."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError) as err:
        keys = list(node.keys()) if isinstance(node, Mapping | DictConfig) else []
        raise group_error(name, err, keys) from err


def parts(cfg: DictConfig) -> tuple[MNISTDataModule, Classifier]:
    """The data module (no file read yet) and the Classifier of a checked config. The
    Classifier's hyperparameters are its parts' configs, so its checkpoints rebuild it alone."""
    with _group("data", cfg.data):
        datamodule = make(_plain(cfg.data))
    specs = {
        "net": _plain(cfg.model),
        "loss": _plain(cfg.loss),
        "optimizer": _plain(cfg.optimizer),
        "scheduler": _plain(cfg.scheduler),
    }
    built = {}
    for key, group in (("net", "model"), ("loss", "loss"), ("optimizer", "optimizer")):
        with _group(group, cfg[group]):
            built[key] = make(specs[key])
    with _group("scheduler", cfg.scheduler):
        built["scheduler"] = make(specs["scheduler"])
    options = _plain(cfg.classifier)
    with _group("classifier", cfg.classifier):
        module = Classifier(**built, **options)
    module.save_hyperparameters({**specs, **options}, logger=False)
    return datamodule, module


def prepare(datamodule: MNISTDataModule) -> None:
    """The MNIST files checked (downloaded if allowed); missing or broken ones refused in one
    line that says how to point losslab-train at them."""
    try:
        datamodule.prepare_data()
    except FileNotFoundError as err:
        raise UsageError(f"{' '.join(str(err).split())} {DATA_HINT}") from err
    except RuntimeError as err:
        raise UsageError(" ".join(str(err).split())) from err


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


def _logger(spec: Mapping[str, Any], purge_step: int | None) -> Any:
    """A logger from its config; resumed in place (``purge_step``: the step after the
    checkpoint's), TensorBoard hides what the interrupted start wrote past the checkpoint."""
    if purge_step is not None and issubclass(target(spec), TensorBoardLogger):
        return make(spec, purge_step=purge_step)
    return make(spec)


def build(
    cfg: DictConfig,
    choices: Mapping[str, Any],
    swept: Mapping[str, list[str]],
    *,
    resume_step: int | None = None,
    replay: bool = False,
    console: bool = True,
) -> tuple[MNISTDataModule, Classifier, Trainer, dict[str, Any]]:
    """Every object of the run and its HPARAMS row; the MNIST files checked (downloaded if
    allowed).

    Args:
        cfg: the run's checked config.
        choices: the chosen config of each group (HPARAMS columns ``loss``, ``optimizer``).
        swept: the keys and values of the sweep this run belongs to (HPARAMS ``differs``).
        resume_step: the optimizer steps of the checkpoint this start restores, if any (the
            Trainer then skips epoch 0's sanity pass: the first start measured it).
        replay: the run starts in a new folder from another run's checkpoint: that run's
            curves are written into this folder first (else a restored checkpoint is a resume
            in place, and TensorBoard hides what the interrupted start wrote past it).
        console: the epoch lines go to the console too (a single run; a sweep's jobs print one
            line each when they end).
    """
    datamodule, module = parts(cfg)
    prepare(datamodule)
    if cfg.init_from is not None:
        _load_weights(module, cfg.init_from)
    hparams = tb.run_hparams(cfg, choices, list(swept))
    derived = tb.derived_columns(cfg, swept)
    columns, differs, domains = tb.hparams_layout(hparams, swept, derived)
    progress = cfg.trainer.enable_progress_bar and console and sys.stdout.isatty()
    callbacks = [make(c) for c in (_plain(cfg.callbacks) or {}).values()]
    callbacks += [TensorBoardSummary(hparams, columns, differs, domains, replay)]
    callbacks += [EpochLog(console and not progress)]
    if progress:
        callbacks.append(RichProgressBar())
    purge_step = None if resume_step is None or replay else resume_step + 1
    loggers = [_logger(c, purge_step) for c in (_plain(cfg.logger) or {}).values()]
    with _group("trainer", cfg.trainer):
        trainer = make(
            _plain(cfg.trainer),
            logger=loggers,
            callbacks=callbacks,
            # callbacks=null switches checkpoints off too (Lightning would add a default one)
            enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
            enable_progress_bar=progress,
            # a resumed run measured its epoch 0 already: skip the full sanity pass
            **({"num_sanity_val_steps": 0} if resume_step is not None else {}),
        )
    return datamodule, module, trainer, hparams

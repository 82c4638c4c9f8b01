"""The checks of a composed config that span several keys or need the whole config: keys no
schema knows (what a ``+key=value`` forces in), a group switched off that a run needs, a GPU that
is not there, a DDP batch that does not divide, a study stage without a validation split, both
``init_from`` and ``ckpt_path``. The per-key ranges are the schemas' and the constructors'."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from losslab.errors import UsageError
from losslab.run.config import GROUPS, REQUIRED_GROUPS, SCHEMAS, TrainConfig

__all__ = ["check"]


def _unknown_keys(cfg: DictConfig) -> list[str]:
    """Keys that no schema knows, at the top level and in the typed groups: what a ``+key=value``
    adds (Hydra's ``+`` forces a key into a typed config)."""
    allowed = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = [str(k) for k in cfg if k not in allowed]
    for group, schema in SCHEMAS.items():
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            fields = {f.name for f in dataclasses.fields(schema)}
            unknown += [f"{group}.{k}" for k in node if k not in fields]
    return unknown


def _world_size(trainer: DictConfig) -> int | None:
    """Processes of a DDP run, when the config says how many (None: decided at run time)."""
    devices = trainer.devices
    count = len(devices) if isinstance(devices, list | ListConfig) else devices  # [0, 1]: 2
    if not str(trainer.strategy).startswith("ddp") or not isinstance(count, int) or count < 1:
        return None
    return count * trainer.num_nodes


def check(cfg: DictConfig, choices: Mapping[str, Any]) -> None:
    """Every check of a composed config that needs no object: types and the ranges of the keys no
    losslab constructor takes (the schemas), unknown keys, and the rules that span several keys.
    ``choices``: the chosen config of each group (Hydra's ``runtime.choices``).

    Raises:
        UsageError: naming the key and what it allows.
    """
    for group in GROUPS:  # keys forced into a group that has no config chosen: a '+' override
        node = cfg.get(group)
        if choices.get(group) in (None, "none") and isinstance(node, DictConfig) and len(node):
            key = f"{group}.{next(iter(node))}"
            raise UsageError(
                f"{key}: no such key ({group}={choices.get(group)}); choose a config of "
                f"conf/{group}/ instead, e.g. {group}=<name>"
            )
    unknown = _unknown_keys(cfg)
    if unknown:
        raise UsageError(
            f"{unknown[0]}: no such key (a '+' override may add keys under callbacks and logger "
            f"only); allowed top-level keys: {', '.join(f.name for f in dataclasses.fields(TrainConfig))}"
        )
    for group in REQUIRED_GROUPS:
        if cfg.get(group) is None:
            raise UsageError(
                f"{group}=null: a run needs a {group} config; choose one of conf/{group}/"
            )
    OmegaConf.to_object(cfg)  # the schemas' range checks
    trainer, data = cfg.trainer, cfg.data
    if str(trainer.accelerator) in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(
                f"trainer.accelerator={trainer.accelerator!r} needs a CUDA GPU, but none is visible "
                f"(torch.cuda.is_available() is False): use trainer=cpu or trainer=ddp"
            )
    world = _world_size(trainer)
    if world is not None and data.batch_size % world:
        raise UsageError(
            f"data.batch_size={data.batch_size} must be divisible by the {world} DDP processes "
            f"(trainer.devices={trainer.devices}, trainer.num_nodes={trainer.num_nodes}): each "
            f"takes an equal share of every global batch"
        )
    if cfg.study is not None and not data.val_size:
        raise UsageError(
            f"data.val_size={data.val_size}: the study's {cfg.study} stage chooses on a "
            f"validation split; set data.val_size > 0 (the study presets hold out 10000)"
        )
    if cfg.init_from is not None and cfg.ckpt_path is not None:
        raise UsageError(
            f"init_from={cfg.init_from} and ckpt_path={cfg.ckpt_path}: choose one. ckpt_path "
            f"resumes a run (its config, optimizer state and epoch); init_from starts a new run "
            f"from a checkpoint's weights only"
        )

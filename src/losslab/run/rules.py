"""The checks of a composed config that span several keys or need the whole config: keys no
schema knows (what a ``+key=value`` forces in), a group switched off that a run needs, a GPU that
is not there, a batch that does not divide among processes, a study stage without a validation
split, a callback or logger config with nothing to build, a callback that monitors a metric the
run does not log, both ``init_from`` and ``ckpt_path``. The per-key ranges are the schemas' and
the constructors'."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from losslab.errors import UsageError
from losslab.names import logged_tags
from losslab.run.config import GROUPS, REQUIRED_GROUPS, SCHEMAS, TrainConfig, TrainerConfig

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


def _monitored(cfg: DictConfig) -> None:
    """A callback's ``monitor`` must be a metric the run logs (its evaluated splits)."""
    data = cfg.data
    splits = [s for s in data.eval_splits if s != "val" or data.val_size]
    logged = logged_tags(splits, data.label_noise > 0)
    for name, node in (cfg.callbacks or {}).items():
        metric = node.get("monitor") if isinstance(node, DictConfig) else None
        if metric is not None and metric not in logged:
            raise UsageError(
                f"callbacks.{name}.monitor={metric}: this run does not log it; it logs "
                f"{', '.join(logged)} (acc/val needs data.val_size > 0)"
            )


def _built(cfg: DictConfig, choices: Mapping[str, Any]) -> None:
    """Each callback and logger config names what it builds: keys set under one whose config
    was not chosen (an experiment's ``callbacks.model_checkpoint.every_n_epochs`` with
    ``callbacks=null``) are refused by name rather than failing in the constructor."""
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if isinstance(node, DictConfig) and "_target_" not in node:
                keys = ", ".join(f"{group}.{name}.{k}" for k in node)
                chosen = choices.get(group) or "null"
                raise UsageError(
                    f"{keys}: set, but {group}.{name} has no _target_ to build ({group}={chosen} "
                    f"holds no {name}); choose a {group} config that holds it, e.g. "
                    f"{group}=default, or leave these keys out"
                )


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
    # the trainer's schema, also for a resume's config (read back from its file, untyped)
    trainer_schema = OmegaConf.to_object(OmegaConf.merge(TrainerConfig, cfg.trainer))
    trainer, data = cfg.trainer, cfg.data
    if str(trainer.accelerator) in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            instead = (
                "trainer.accelerator=cpu (DDP over CPU processes), or trainer=cpu"
                if choices.get("trainer") == "ddp"
                else "trainer=cpu, or trainer=ddp trainer.accelerator=cpu"
            )
            raise UsageError(
                f"trainer.accelerator={trainer.accelerator!r} needs a CUDA GPU, but none is visible "
                f"(torch.cuda.is_available() is False): use {instead}"
            )
    world = trainer_schema.processes()
    if world is not None and world > 1 and data.batch_size % world:
        raise UsageError(
            f"data.batch_size={data.batch_size} must be divisible by the {world} DDP processes "
            f"(trainer.devices={trainer.devices}, trainer.num_nodes={trainer.num_nodes}): each "
            f"takes an equal share of every global batch"
        )
    if cfg.study.stage is not None and not data.val_size:
        raise UsageError(
            f"data.val_size={data.val_size}: the study's {cfg.study.stage} stage chooses on a "
            f"validation split; set data.val_size > 0 (the study presets hold out 10000)"
        )
    _built(cfg, choices)
    _monitored(cfg)
    if cfg.init_from is not None and cfg.ckpt_path is not None:
        raise UsageError(
            f"init_from={cfg.init_from} and ckpt_path={cfg.ckpt_path}: choose one. ckpt_path "
            f"resumes a run (its config, optimizer state and epoch); init_from starts a new run "
            f"from a checkpoint's weights only"
        )

"""What a start of ``losslab-train`` does, decided before anything is written: a new run, a
resume (with the run's own config), or nothing, for a run that already finished.

- ``ckpt_path=last`` (with ``hydra.run.dir=<run>``) or ``ckpt_path=<run>/checkpoints/<file>``
  resumes that run with the config it trained with. Overrides that would change what the run is
  are refused; those of :data:`~losslab.run.rundir.RESUMABLE_KEYS` are applied and recorded.
- A run that finished (``ok`` or ``diverged``) is left as it is, file for file, unless the
  resume trains longer (a larger ``trainer.max_epochs`` or ``trainer.max_steps``).
- ``ckpt_path=<file>`` into another folder starts a new run from that checkpoint (its optimizer
  state, epoch and curves), under the checkpoint's config; ``init_from=<file>`` starts a new run
  under this config from the checkpoint's weights only.
- A new run never reuses a folder that holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import Container, DictConfig, OmegaConf

from losslab.errors import UsageError
from losslab.lit.classifier import read_checkpoint
from losslab.run.build import parts
from losslab.run.rules import check
from losslab.run.rundir import RESUMABLE_KEYS, RunDir

__all__ = ["Start", "plan"]


@dataclass
class Start:
    """What this start does: ``cfg`` and ``choices`` to train with; ``ckpt_path`` to restore
    (a resume); ``changed``, the keys a resume changes; ``finished``, the result of a finished
    run this start leaves alone (then nothing else applies)."""

    cfg: DictConfig
    choices: dict[str, Any]
    ckpt_path: str | None = None
    source: RunDir | None = None
    changed: dict[str, tuple[Any, Any]] | None = None
    finished: dict[str, Any] | None = None


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value


def _resume_config(
    cfg: DictConfig, source: RunDir
) -> tuple[DictConfig, dict[str, Any], dict[str, tuple[Any, Any]]]:
    """The config ``source`` trained with, with the resumable keys this start changes; its group
    choices; and those changes ``{key: (old, new)}``.

    Raises UsageError when this start's overrides change what the run is (loss, model, data,
    optimizer, seed, ...): one run never mixes two configurations.
    """
    if not source.config_file.is_file():
        raise UsageError(
            f"ckpt_path={cfg.ckpt_path}: {source.path} holds no .hydra/config.yaml, so the config "
            f"it trained with is unknown; resume a folder that losslab-train wrote"
        )
    saved = OmegaConf.load(source.config_file)
    saved_choices = source.choices()
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
        if key in RESUMABLE_KEYS:
            changed[key] = (old, new)
        else:
            refused.append(f"{key}={new} (the run has {key}={old})")
    if refused:
        raise UsageError(
            f"ckpt_path={cfg.ckpt_path} resumes {source.path} with its own config; refused: "
            f"{'; '.join(refused)}. At resume only {', '.join(RESUMABLE_KEYS)} may change: "
            f"start a new run for another configuration (init_from=<checkpoint> starts one from "
            f"its weights)"
        )
    for key, (_, new) in changed.items():
        OmegaConf.update(saved, key, new, force_add=True)
    saved.ckpt_path = cfg.ckpt_path
    return saved, saved_choices, changed


def _checkpoint(cfg: DictConfig, run: RunDir) -> tuple[str | None, RunDir | None]:
    """The checkpoint to resume from and the run folder it belongs to (None: not a run's)."""
    ckpt = cfg.ckpt_path
    if ckpt is None:
        return None, None
    if ckpt == "last":
        last = run.checkpoint()
        if last is None:
            raise UsageError(
                f"ckpt_path=last: no checkpoint {run.last_checkpoint}. To resume a run, pass its "
                f"folder too: ckpt_path=last hydra.run.dir=logs/<task>/runs/<time>"
            )
        read_checkpoint(last, "ckpt_path")
        return str(last), run
    read_checkpoint(ckpt, "ckpt_path")
    source = RunDir(Path(ckpt).resolve().parent.parent)
    return str(ckpt), source if source.config_file.is_file() else None


def _check(cfg: DictConfig, choices: dict[str, Any]) -> None:
    """The config's checks, and its objects built once to let their constructors check their
    arguments (with the random state kept: the run builds them again, after seeding)."""
    check(cfg, choices)
    with torch.random.fork_rng(devices=[]):
        parts(cfg)


def plan(cfg: DictConfig, run: RunDir, rank_zero: bool) -> Start:
    """Every check that can refuse a start, and what the start does (see the module docstring).

    Raises:
        UsageError: a bad config, checkpoint or folder, in one line naming the key.
    """
    choices = dict(HydraConfig.get().runtime.choices)
    _check(cfg, choices)
    if cfg.init_from is not None:
        read_checkpoint(cfg.init_from, "init_from")
    ckpt_path, source = _checkpoint(cfg, run)
    if source is None:
        if rank_zero and run.holds_run():
            raise UsageError(
                f"hydra.run.dir={run.path} already holds a run: resume it with ckpt_path=last, "
                f"or choose a new hydra.run.dir (nothing was changed there)"
            )
        return Start(cfg, choices, ckpt_path)
    cfg, choices, changed = _resume_config(cfg, source)
    _check(cfg, choices)
    in_place = source.path.resolve() == run.path.resolve()
    if in_place and source.resume_action(changed) == "finished":
        return Start(cfg, choices, ckpt_path, source, changed, finished=source.result() or {})
    if not in_place and rank_zero and run.holds_run():
        raise UsageError(
            f"hydra.run.dir={run.path} already holds a run: ckpt_path={cfg.ckpt_path} starts a "
            f"new run from that checkpoint, so choose a new hydra.run.dir"
        )
    return Start(cfg, choices, ckpt_path, source, changed)

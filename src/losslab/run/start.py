"""What a start of ``losslab-train`` does, decided before anything is written: a new run, a
resume (with the run's own config), or nothing, for a run that already finished.

- ``ckpt_path=last`` (with ``hydra.run.dir=<run>``) or ``ckpt_path=<run>/checkpoints/<file>``
  resumes that run with the config it trained with. Overrides that would change what the run is
  are refused, and so is a resumable change (``trainer.max_epochs``) that would change another
  key through it (a cosine schedule's ``T_max``: the run's schedule is part of what it is); those
  of :data:`~losslab.run.rundir.RESUMABLE_KEYS` are applied and recorded.
- A run that finished (``ok`` or ``diverged``) is left as it is, file for file, unless the
  resume trains longer (a larger ``trainer.max_epochs`` or ``trainer.max_steps``).
- ``ckpt_path=<file>`` into another folder starts a new run from that checkpoint (its optimizer
  state, epoch and curves), under the checkpoint's config; ``init_from=<file or run folder>``
  starts a new run under this config from the checkpoint's weights only.
- A new run never reuses a folder that holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import Container, DictConfig, OmegaConf

from losslab.errors import UsageError
from losslab.run.checkpoints import find_checkpoint, read_checkpoint
from losslab.run.identity import NEUTRAL_KEYS, RESUMABLE_KEYS, differences
from losslab.run.rules import check
from losslab.run.rundir import RunDir

__all__ = ["Start", "plan", "write_start"]


@dataclass
class Start:
    """What this start does: ``cfg`` and ``choices`` to train with; ``ckpt_path`` to restore
    and its optimizer steps (``resume_step``); ``source``, the run folder the checkpoint belongs
    to; ``changed``, the keys a resume changes; ``finished``, the result of a finished run this
    start leaves alone (then nothing else applies)."""

    cfg: DictConfig
    choices: dict[str, Any]
    ckpt_path: str | None = None
    resume_step: int | None = None
    source: RunDir | None = None
    changed: dict[str, tuple[Any, Any]] | None = None
    finished: dict[str, Any] | None = None

    def in_place(self, run: RunDir) -> bool:
        """Whether this start resumes the run in ``run`` itself (not a new folder)."""
        return self.source is not None and self.source.path.resolve() == run.path.resolve()


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value


def _resume_config(
    cfg: DictConfig, source: RunDir
) -> tuple[DictConfig, dict[str, Any], dict[str, tuple[Any, Any]]]:
    """The config ``source`` trained with, with the resumable keys this start changes; its group
    choices; and those changes ``{key: (old, new)}``.

    Raises UsageError when this start's overrides change what the run is (loss, model, data,
    optimizer, seed, ...), directly or through an interpolation: one run never mixes two
    configurations.
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
    allowed = (
        f"At resume only {', '.join(RESUMABLE_KEYS)} may change: start a new run for another "
        f"configuration (init_from=<checkpoint> starts one from its weights)"
    )
    if refused:
        raise UsageError(
            f"ckpt_path={cfg.ckpt_path} resumes {source.path} with its own config; refused: "
            f"{'; '.join(refused)}. {allowed}"
        )
    for key, (_, new) in changed.items():
        OmegaConf.update(saved, key, new, force_add=True)
    trained = source.config()
    if changed and trained is not None:  # what the changes change through interpolations
        now = OmegaConf.to_container(saved, resolve=True)
        follows = differences(trained, now, (*NEUTRAL_KEYS, *RESUMABLE_KEYS))
        if follows:
            (key, (old, new)), *_ = follows.items()
            cause = ", ".join(f"{k}={v[1]}" for k, v in changed.items())
            raise UsageError(
                f"ckpt_path={cfg.ckpt_path}: {cause} would also change {key} ({old} -> {new}) "
                f"of {source.path}, which trained with {key}={old}: the run's schedule is part of "
                f"what it is. {allowed}"
            )
    saved.ckpt_path = cfg.ckpt_path
    return saved, saved_choices, changed


def _checkpoint(cfg: DictConfig, run: RunDir) -> tuple[str | None, RunDir | None]:
    """The checkpoint to resume from and the run folder it belongs to (None: not a run's)."""
    ckpt = cfg.ckpt_path
    if ckpt is None:
        return None, None
    if ckpt == "last":
        last = run.checkpoint()
        if last is None and run.holds_run():
            raise UsageError(
                f"ckpt_path=last: {run.path} holds a run but no checkpoint ({run.last_checkpoint} "
                f"is missing: it ran with callbacks=null, or stopped before its first epoch "
                f"ended), so there is nothing to resume from; start a new run"
            )
        if last is None:
            raise UsageError(
                f"ckpt_path=last: no run in {run.path} (no {run.last_checkpoint}). To resume a "
                f"run, pass its folder too: ckpt_path=last hydra.run.dir=logs/<task>/runs/<time>"
            )
        return str(last), run
    source = RunDir(Path(ckpt).resolve().parent.parent)
    return str(ckpt), source if source.config_file.is_file() else None


def plan(cfg: DictConfig, run: RunDir, rank_zero: bool) -> Start:
    """Every check that can refuse a start before its objects are built, and what the start
    does (see the module docstring).

    Raises:
        UsageError: a bad config, checkpoint or folder, in one line naming the key.
    """
    choices = dict(HydraConfig.get().runtime.choices)
    check(cfg, choices)
    if cfg.init_from is not None:
        found = find_checkpoint(cfg.init_from, "init_from")
        read_checkpoint(found, "init_from")
        if Path(cfg.init_from).is_dir():  # what ran: the checkpoint file the folder stood for
            cfg.init_from = str(found.resolve())
    ckpt_path, source = _checkpoint(cfg, run)
    step = None if ckpt_path is None else read_checkpoint(ckpt_path, "ckpt_path")["global_step"]
    if source is None:
        if rank_zero and run.holds_run():
            raise UsageError(
                f"hydra.run.dir={run.path} already holds a run: resume it with ckpt_path=last, "
                f"or choose a new hydra.run.dir (nothing was changed there)"
            )
        return Start(cfg, choices, ckpt_path, step)
    cfg, choices, changed = _resume_config(cfg, source)
    check(cfg, choices)
    start = Start(cfg, choices, ckpt_path, step, source, changed)
    if start.in_place(run) and source.resume_action(changed) == "finished":
        start.finished = source.result() or {}
    elif not start.in_place(run) and rank_zero and run.holds_run():
        raise UsageError(
            f"hydra.run.dir={run.path} already holds a run: ckpt_path={cfg.ckpt_path} starts a "
            f"new run from that checkpoint, so choose a new hydra.run.dir"
        )
    return start


def write_start(run: RunDir, start: Start) -> None:
    """``.hydra/`` of a new run, or one more record of a resume in place."""
    hc = HydraConfig.get()
    text, resolved = OmegaConf.to_yaml(start.cfg), OmegaConf.to_container(start.cfg, resolve=True)
    if start.in_place(run):
        run.record_resume(list(hc.overrides.task), start.changed or {}, text, resolved)
        return
    hydra_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(hc, resolve=False)})
    hydra_cfg.hydra.runtime.choices = start.choices
    hydra_cfg.hydra.runtime.pop("new_folders", None)  # the start's own bookkeeping
    run.write_config(text, resolved, OmegaConf.to_yaml(hydra_cfg), list(hc.overrides.task))

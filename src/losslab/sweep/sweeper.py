"""Hydra sweeps (``losslab-train -m ...``) the losslab way: the sweeper's logic and the
end-of-sweep report. The sweeper is ``hydra_plugins.losslab_sweeper.LosslabSweeper`` (Hydra
loads sweepers from that namespace only), selected by ``conf/hydra/default.yaml``.

Hydra's ``BasicSweeper`` runs the jobs; this one also

- **names each job folder by what the sweep varies**, in the order the sweep names it:
  ``-m loss=sse,cee data.batch_size=32,100 trainer.max_epochs=1`` gives ``loss=sse,data.batch_size=32``
  and three siblings (the constant ``trainer.max_epochs=1`` is in ``multirun.yaml``);
- **checks every job before the first one runs**: its config (types, ranges, keys), the MNIST
  files, and whether its folder already holds a run made with **another config** (a rerun into
  the same ``hydra.sweep.dir`` with changed settings). Any of these stops the sweep with one line
  naming the job and the keys that differ, exit status 2, nothing written. To train such jobs
  again, add ``hydra.sweeper.retrain=true`` (their folders are replaced), or choose a new
  ``hydra.sweep.dir``;
- **skips the jobs that finished with the same config**, so an interrupted sweep or study goes on
  where it stopped: a job with a checkpoint resumes from it (``ckpt_path=last``), one that had not
  finished an epoch starts over;
- **copies a run that finished elsewhere** with the same config (``hydra.sweeper.reuse``: other
  sweeps' folders) into the job's folder instead of training it again: the noise study's fixed-lr
  arm takes the final stage's run of the same loss, noise, lr and seed;
- **records a failed job instead of stopping**: Hydra would raise at the first failed job and skip
  ``on_multirun_end``, so the report would be lost. Here the error goes to ``<job>/error.txt``
  and the report lists the job as ``failed``; ``losslab-train`` still exits with status 1.

The seams are Hydra's ``BasicSweeper`` internals (``_parse_config``, ``split_arguments``) and
``HydraConfig.instance().cfg``: pyproject pins hydra-core below its next minor release, and
``tests/test_contracts.py`` names any symbol an upgrade removes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import logging
import os
import re
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from losslab.errors import UsageError, one_line
from losslab.run.build import parts, prepare
from losslab.run.identity import identity
from losslab.run.rules import check
from losslab.run.rundir import RunDir
from losslab.sweep import progress

__all__ = ["ComposedOnce", "ReportOnMultirunEnd", "job_names", "run_sweep"]

log = logging.getLogger(__name__)


def _key(override: Override) -> str:
    return override.key_or_group


def _named(override: Override) -> bool:
    """Whether a key can appear in a job folder name (Hydra's own keys and the checkpoint don't)."""
    return not _key(override).startswith("hydra") and _key(override) != "ckpt_path"


def job_names(overrides: Sequence[Override], jobs: Sequence[Sequence[str]]) -> list[str]:
    """One folder name per job: its values of the swept keys (``loss=sse,optimizer.lr=0.1``),
    or of all its overrides when nothing varies; a repeated name gets ``,#<n>``."""
    keys = [_key(o) for o in overrides if _named(o)]
    swept = [_key(o) for o in overrides if o.is_sweep_override() and _named(o)]
    shown = set(swept or keys)
    names, seen = [], {}
    for job in jobs:
        parts_ = [item for item in job if item.partition("=")[0].lstrip("+~") in shown]
        name = (",".join(parts_) or "job").replace("/", "_")
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name},#{seen[name]}")
    return names


class ComposedOnce:
    """The config loader a losslab sweep gives its launcher: each job's config is composed once.
    The sweeper composes every job to check it before any runs; an in-process launcher (Hydra's
    basic one) then gets a copy of that config instead of composing it a second time (Hydra's
    composition is most of a short run's fixed cost). Everything else goes to Hydra's loader;
    pickled for a launcher's worker process, the cache stays behind."""

    def __init__(self, loader: Any) -> None:
        self._loader, self._composed = loader, {}

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        key = tuple(sweep_overrides)
        if key not in self._composed:
            self._composed[key] = self._loader.load_sweep_config(
                master_config, list(sweep_overrides)
            )
        return copy.deepcopy(self._composed[key])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"_loader": self._loader, "_composed": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _quoted(value: str) -> str:
    """``value`` as a Hydra quoted string: in one, a backslash escapes only a quote or the
    backslashes before a quote or the end, so only those are doubled."""
    return "'" + re.sub(r"(\\+)(?='|$)", r"\1\1", value).replace("'", "\\'") + "'"


def _describe(diffs: dict[str, tuple[Any, Any]], limit: int = 3) -> str:
    shown = [f"{k}: {old} -> {new}" for k, (old, new) in list(diffs.items())[:limit]]
    more = f", and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(shown) + more


def run_sweep(sweeper: Any, arguments: list[str]) -> Any:
    """The ``sweep`` of ``hydra_plugins.losslab_sweeper.LosslabSweeper`` (a ``BasicSweeper``):
    readable job folders, every job checked first, finished jobs skipped, stale ones refused,
    failed jobs recorded rather than raised."""
    assert sweeper.config is not None
    assert sweeper.launcher is not None
    assert sweeper.hydra_context is not None
    params = sweeper._parse_config() + list(arguments)
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(params)
    _refuse_sampling(overrides)
    batches = sweeper.split_arguments(overrides, sweeper.max_batch_size)
    # as typed: an override such as hydra.sweep.subdir=${hydra.job.num} is not resolved here
    hydra_overrides = OmegaConf.to_container(sweeper.config.hydra.overrides.hydra, resolve=False)
    user_subdir = any(o.startswith("hydra.sweep.subdir=") for o in hydra_overrides)
    names = iter(job_names(overrides, [job for batch in batches for job in batch]))
    # one folder for the whole sweep, resolved once: a job's own config (another experiment's
    # task_name) must not send it elsewhere
    sweep_dir = Path(sweeper.config.hydra.sweep.dir)
    earlier = {} if user_subdir else _runs_by_identity(sweep_dir)
    elsewhere = {} if user_subdir else _finished_in(sweeper.reuse, sweep_dir)

    plan: list[list[tuple[list[str], str]]] = []
    stale, restarted, skipped, data_checked = [], [], [], set()
    copied: list[tuple[Path, Path]] = []  # (a finished run elsewhere, the job folder it goes to)
    number = itertools.count()  # the jobs' indices, as Hydra's launcher numbers them
    planned: dict[str, str] = {}  # identity -> the job of this sweep that trains it
    for batch in batches:
        jobs = []
        for job in batch:
            name, job = next(names), [*job, f"hydra.sweep.dir={_quoted(str(sweep_dir))}"]
            # compose and check every job before anything is written: a bad value stops here
            resolved, choices = _check_job(
                sweeper, job, sweep_dir / name, data_checked, next(number)
            )
            if user_subdir:
                jobs.append((job, name))
                continue
            same = identity(resolved, choices)
            if same in planned:  # the same run twice in one sweep: trained once
                skipped.append(f"{name} (the same run as {planned[same]})")
                continue
            planned[same] = name
            name = earlier.get(same, name)  # a finished or started run of it, named otherwise
            job.append(f"hydra.sweep.subdir={_quoted(name)}")
            run = RunDir(sweep_dir / name)
            action, differs = run.sweep_action(resolved, choices, sweeper.retrain)
            if action == "stale":
                stale.append(f"{name} ({_describe(differs)})")
            elif action == "skip":
                skipped.append(name)
            elif action == "resume":
                jobs.append(([*job, "ckpt_path=last"], name))
            else:
                if action == "restart":
                    restarted.append(run)
                if same in elsewhere:
                    copied.append((elsewhere[same], run.path))
                    skipped.append(f"{name} (copied from {elsewhere[same]})")
                else:
                    jobs.append((job, name))
        plan.append(jobs)
    if stale:
        raise UsageError(
            f"{len(stale)} job(s) of this sweep already hold runs made with another config, in "
            f"{sweep_dir}: {'; '.join(stale)}. Nothing was run: choose a new hydra.sweep.dir, or "
            f"add hydra.sweeper.retrain=true to train these jobs again (their folders are replaced)"
        )
    for run in restarted:
        shutil.rmtree(run.path)
    for source, folder in copied:
        shutil.copytree(source, folder, symlinks=True)  # last.ckpt stays a relative link
    for jobs in plan:
        for _, name in jobs:
            RunDir(sweep_dir / name).clear_error()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
    total = sum(len(jobs) for jobs in plan)
    study = OmegaConf.select(sweeper.config, "study.stage", default=None)
    progress.start(sweep_dir, total, study)
    print(_starting(sweep_dir, total, skipped), flush=True)

    outcome = getattr(sweeper.task_function, "outcome", None)  # losslab-train's, if it is
    returns, index = [], 0
    for jobs in plan:
        if not jobs:
            continue
        results = sweeper.launcher.launch([job for job, _ in jobs], initial_job_idx=index)
        for (_, name), result in zip(jobs, results, strict=True):
            if result.status == JobStatus.FAILED:
                _record_failure(name, result)
                if outcome is not None:
                    outcome.failed_jobs.append(name)
        index += len(jobs)
        returns.append(results)
    return returns


def _refuse_sampling(overrides: Sequence[Override]) -> None:
    """``interval(...)`` is a range to sample from (Optuna's, Nevergrad's sweepers): refused in
    one line, as no list of jobs comes out of it here."""
    for override in overrides:
        if override.is_interval_sweep():
            raise UsageError(
                f"{override.input_line}: interval() is a range for a sampling sweeper (Optuna, "
                f"Nevergrad); losslab's sweeper runs lists (a,b,c), choice(...), range(...) and "
                f"glob(...): list the values"
            )


def _runs_by_identity(sweep_dir: Path, finished: bool = False) -> dict[str, str]:
    """The job folders of ``sweep_dir`` that hold a run (``finished``: one that ended), by
    :func:`identity`: a rerun whose keys come in another order (other folder names) finds them."""
    found: dict[str, str] = {}
    for folder in sorted(sweep_dir.iterdir()) if sweep_dir.is_dir() else []:
        run = RunDir(folder)
        wanted = folder.is_dir() and (not finished or run.finished())
        same = run.identity() if wanted else None
        if same is not None:
            found.setdefault(same, folder.name)
    return found


def _finished_in(folders: Sequence[str], sweep_dir: Path) -> dict[str, Path]:
    """The finished runs of other sweeps' ``folders`` (relative ones: to the working folder), by
    :func:`identity`: what a job of the same run copies rather than trains."""
    found: dict[str, Path] = {}
    for folder in folders:
        where = Path(os.path.normpath(folder))  # <sweep>/../final: its ".." before <sweep> exists
        if where.resolve() == sweep_dir.resolve():
            continue  # this sweep's own runs are found by name
        for same, name in _runs_by_identity(where, finished=True).items():
            found.setdefault(same, where / name)
    return found


def _starting(sweep_dir: Path, total: int, skipped: list[str]) -> str:
    text = f"losslab-train: {total} job(s) into {sweep_dir}"
    if skipped:
        shown = ", ".join(skipped[:3]) + (
            f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        )
        text += f"; {len(skipped)} finished before or repeated, skipped: {shown}"
    return text


def _check_job(
    sweeper: Any, job: list[str], folder: Path, data_checked: set, num: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checks a job's run makes before it writes anything (types, ranges, keys, GPU, the
    MNIST files), made now; ``num``: the job's index, as Hydra's launcher numbers it. Returns
    the job's config, resolved, and its group choices."""
    config = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, job)
    with open_dict(config):
        config.hydra.job.num = num  # what a user's hydra.sweep.subdir=${hydra.job.num} reads
        config.hydra.runtime.output_dir = str(folder.resolve())
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        task = copy.deepcopy(config)  # the task config, typed as the job's run gets it
        with open_dict(task):
            del task["hydra"]
        choices = dict(config.hydra.runtime.choices)
        check(task, choices)
        with torch.device("meta"):  # the constructors' checks; the job builds its own objects
            datamodule, _ = parts(task)
        where = (str(datamodule.data_dir), datamodule.download)
        if where not in data_checked:  # the files once per data folder
            prepare(datamodule)
            data_checked.add(where)
        resolved = OmegaConf.to_container(task, resolve=True)
    except (UsageError, FileNotFoundError, RuntimeError) as err:
        message = one_line(err) or " ".join(str(err).split())
        raise UsageError(f"{message} (in the sweep's job {folder.name})") from err
    finally:
        HydraConfig.instance().cfg = previous
    return resolved, choices


def _record_failure(name: str, result: JobReturn) -> None:
    """Write the job's error into its folder (first line: the message) and say so on stderr."""
    try:  # Hydra's return_value raises the job's exception (and writes a line we don't want)
        with contextlib.redirect_stderr(io.StringIO()):
            result.return_value  # noqa: B018
    except Exception as err:
        usage = one_line(err)
        message = usage or f"{type(err).__name__}: {err}".split("\n")[0]
        text = "".join(traceback.format_exception(err))
    else:  # pragma: no cover - FAILED always holds an exception
        return
    RunDir(result.hydra_cfg.hydra.runtime.output_dir).write_error(message, text)
    print(f"losslab-train: job {name} failed: {message}", file=sys.stderr, flush=True)
    if usage is None:  # a crash, not a usage error: show where
        print(text, file=sys.stderr, flush=True)


class ReportOnMultirunEnd(Callback):
    """Hydra callback: after a sweep, write and print the summary table of its runs (failed
    and diverged jobs included)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from losslab.read.report import report

        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            try:
                report(sweep_dir)
            except ValueError as err:  # no run got as far as writing anything
                log.warning(f"no report: {err}")

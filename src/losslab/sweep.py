"""Hydra sweeps (``losslab-train -m ...``) the losslab way: the sweeper's logic and the
end-of-sweep report. The sweeper is ``hydra_plugins.losslab_sweeper.LosslabSweeper`` (Hydra
loads sweepers from that namespace only), selected by ``conf/hydra/default.yaml``.

Hydra's ``BasicSweeper`` runs the jobs; this one also

- **names each job folder by what the sweep varies**, in the order the sweep names it:
  ``-m loss=sse,cee data.batch_size=32,100 trainer.max_epochs=1`` gives ``loss=sse,data.batch_size=32``
  and three siblings (the constant ``trainer.max_epochs=1`` is in ``multirun.yaml``). Any key can
  vary, ``experiment`` included, so every job gets its own folder; TensorBoard shows these
  folder names as the run names;
- **skips the jobs that already finished** when a sweep is started again into the same folder
  (``hydra.sweep.dir=...``): an interrupted sweep or study goes on where it stopped. A job with a
  checkpoint resumes from it (``ckpt_path=last``); one that had not finished an epoch starts over;
- **records a failed job instead of stopping**: Hydra would raise at the first failed job and skip
  ``on_multirun_end``, so the report would be lost. Here the error goes to ``<job>/error.txt``
  and the report lists the job as ``failed``; ``losslab-train`` still exits with status 1.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

__all__ = ["FAILED_JOBS", "ReportOnMultirunEnd", "job_names", "run_sweep", "swept_keys"]

log = logging.getLogger(__name__)
ERROR_FILE = "error.txt"
# names of the jobs of this process's sweeps that failed (losslab.cli turns them into status 1)
FAILED_JOBS: list[str] = []


def _key(override: Override) -> str:
    return override.key_or_group


def _named(override: Override) -> bool:
    """Whether a key can appear in a job folder name (Hydra's own keys and the checkpoint don't)."""
    return not _key(override).startswith("hydra") and _key(override) != "ckpt_path"


def swept_keys(overrides: Sequence[str]) -> dict[str, list[str]]:
    """``key -> [value, ...]`` of the overrides that sweep (``loss=sse,cee``, ``range(...)``),
    in the order given; Hydra's own keys left out."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {
        _key(o): list(o.sweep_string_iterator())
        for o in parsed
        if o.is_sweep_override() and _named(o)
    }


def job_names(overrides: Sequence[Override], jobs: Sequence[Sequence[str]]) -> list[str]:
    """One folder name per job: its values of the swept keys (``loss=sse,optimizer.lr=0.1``),
    or of all its overrides when nothing varies; a repeated name gets ``,#<n>``."""
    keys = [_key(o) for o in overrides if _named(o)]
    swept = [_key(o) for o in overrides if o.is_sweep_override() and _named(o)]
    shown = set(swept or keys)
    names, seen = [], {}
    for job in jobs:
        parts = [item for item in job if item.partition("=")[0].lstrip("+~") in shown]
        name = (",".join(parts) or "job").replace("/", "_")
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name},#{seen[name]}")
    return names


def sweep_overrides(config: DictConfig) -> list[str]:
    """The overrides a sweep expands: ``hydra.sweeper.params`` (an experiment's), then the
    command line's, as ``BasicSweeper`` combines them."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    return [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)


def this_sweep() -> dict[str, list[str]]:
    """Inside a sweep's job: the swept keys and their values, from ``multirun.yaml`` (what the
    sweep wrote before its first job); ``{}`` outside a sweep."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return {}
    file = Path(hc.sweep.dir) / "multirun.yaml"
    return swept_keys(sweep_overrides(OmegaConf.load(file))) if file.is_file() else {}


def _job_state(folder: Path) -> str:
    """``finished`` (ended ok or diverged), ``resumable`` (holds a checkpoint), ``partial``
    (started, nothing to resume from) or ``new``."""
    from losslab.report import run_status  # reads event files only

    if not folder.is_dir() or not any(folder.iterdir()):
        return "new"
    if run_status(folder) in ("ok", "diverged"):
        return "finished"
    return "resumable" if (folder / "checkpoints" / "last.ckpt").is_file() else "partial"


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_sweep(sweeper: Any, arguments: list[str]) -> Any:
    """The ``sweep`` of ``hydra_plugins.losslab_sweeper.LosslabSweeper`` (a ``BasicSweeper``)
    with readable job folders, resumable sweeps and failed jobs recorded rather than raised."""
    assert sweeper.config is not None
    assert sweeper.launcher is not None
    assert sweeper.hydra_context is not None
    params = sweeper._parse_config() + list(arguments)
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(params)
    batches = sweeper.split_arguments(overrides, sweeper.max_batch_size)
    hydra_overrides = sweeper.config.hydra.overrides.hydra
    user_subdir = any(o.startswith("hydra.sweep.subdir=") for o in hydra_overrides)
    names = job_names(overrides, [job for batch in batches for job in batch])
    sweep_dir = Path(sweeper.config.hydra.sweep.dir)

    plan: list[list[tuple[list[str], str]]] = []
    for batch in batches:
        jobs = []
        for job in batch:
            name = names.pop(0)
            job = list(job)
            if not user_subdir:
                job.append(f"hydra.sweep.subdir={_quoted(name)}")
                state = _job_state(sweep_dir / name)
                if state == "finished":
                    log.info(f"{name}: finished before, skipped")
                    continue
                if state == "resumable":
                    job.append("ckpt_path=last")
                elif state == "partial":  # nothing of it can be reused: start it over
                    shutil.rmtree(sweep_dir / name)
                (sweep_dir / name / ERROR_FILE).unlink(missing_ok=True)
            jobs.append((job, name))
        plan.append(jobs)
    # compose and check every job before anything is written: a bad value stops the sweep here
    for jobs in plan:
        for job, name in jobs:
            _check_job(sweeper, job, sweep_dir / name)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")

    returns, index = [], 0
    for jobs in plan:
        if not jobs:
            continue
        results = sweeper.launcher.launch([job for job, _ in jobs], initial_job_idx=index)
        for (_, name), result in zip(jobs, results, strict=True):
            if result.status == JobStatus.FAILED:
                _record_failure(name, result)
        index += len(jobs)
        returns.append(results)
    return returns


def _check_job(sweeper: Any, job: list[str], folder: Path) -> None:
    """The checks a job's run makes before it writes anything (types, ranges, GPU), made now."""
    from losslab.config import UsageError, check

    config = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, job)
    with open_dict(config):
        config.hydra.runtime.output_dir = str(folder.resolve())
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        task = copy.deepcopy(config)  # the task config, typed as the job's run gets it
        with open_dict(task):
            del task["hydra"]
        check(task)
    except UsageError as err:
        raise UsageError(f"{err} (in the sweep's job {folder.name})") from err
    finally:
        HydraConfig.instance().cfg = previous


def _record_failure(name: str, result: JobReturn) -> None:
    """Write the job's error into its folder (first line: the message) and say so on stderr."""
    from losslab.cli import one_line

    try:  # Hydra's return_value raises the job's exception (and writes a line we don't want)
        with contextlib.redirect_stderr(io.StringIO()):
            result.return_value  # noqa: B018
    except Exception as err:
        usage = one_line(err)
        message = usage or f"{type(err).__name__}: {err}".split("\n")[0]
        text = "".join(traceback.format_exception(err))
    else:  # pragma: no cover - FAILED always holds an exception
        return
    folder = Path(result.hydra_cfg.hydra.runtime.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ERROR_FILE).write_text(f"{message}\n\n{text}")
    FAILED_JOBS.append(name)
    print(f"losslab-train: job {name} failed: {message}", file=sys.stderr, flush=True)
    if usage is None:  # a crash, not a usage error: show where
        print(text, file=sys.stderr, flush=True)


class ReportOnMultirunEnd(Callback):
    """Hydra callback: after a sweep, write and print the summary table of its runs (failed
    and diverged jobs included)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from losslab.report import report

        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            try:
                report(sweep_dir)
            except ValueError as err:  # no run got as far as writing anything
                log.warning(f"no report: {err}")

"""A run folder: its layout and its life cycle. The one module that knows them.

Training, the sweeper, the report, the study and ``losslab-eval`` ask it ("finished with this
config?", "which checkpoint?", "status?") instead of looking at files themselves. It imports
neither torch nor Hydra: it reads and writes YAML and JSON.

Layout of ``<run>/``::

    .hydra/config.yaml     the config as composed (interpolations kept, as Hydra saves it)
    .hydra/resolved.yaml   every value resolved: what the run trains with (compared on reruns)
    .hydra/hydra.yaml      Hydra's config; runtime.choices names the chosen group configs
    .hydra/overrides.yaml  the overrides of the first start
    .hydra/resumes.yaml    one record per resume: time, overrides, changed keys
    train.log              what the console showed
    events.out.tfevents.*  the TensorBoard curves
    checkpoints/           epoch=<n>-step=<s>.ckpt (after n epochs) and last.ckpt, a link to it
    reliability.json       the last evaluation's reliability bins
    result.json            written when training ends: status, epochs, final metrics, HPARAMS
    error.txt              a sweep job that raised: its message, then the traceback

Status: ``new`` (no run), ``ok`` / ``diverged`` (ended: ``result.json``), ``failed`` (raised:
``error.txt``), ``incomplete`` (started, not ended: still running, or killed).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "FINISHED",
    "NEUTRAL_KEYS",
    "RESUMABLE_KEYS",
    "RunDir",
    "differences",
    "find_runs",
    "flatten",
]

EVENTS = "events.out.tfevents.*"
FINISHED = ("ok", "diverged")
# Keys that do not change what a run computes (where the data lies, how it is shown or logged,
# how fast it runs): two configs that differ only in these are the same run.
NEUTRAL_KEYS = (
    "ckpt_path",
    "threads",
    "task_name",
    "paths",
    "logger",
    "callbacks.model_checkpoint",
    "data.data_dir",
    "data.download",
    "data.eval_batch_size",
    "trainer.enable_progress_bar",
    "trainer.steps_per_call",
    "trainer.default_root_dir",
)
# Keys a resume may change: how long the run trains and how it runs, never what it is.
RESUMABLE_KEYS = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.enable_progress_bar",
    "trainer.steps_per_call",
    "threads",
    "data.data_dir",
    "data.download",
)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"batch_size": 32}}`` -> ``{"data.batch_size": 32}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def differences(
    saved: Mapping[str, Any], wanted: Mapping[str, Any], neutral: Iterable[str] = NEUTRAL_KEYS
) -> dict[str, tuple[Any, Any]]:
    """``key -> (saved value, wanted value)`` for every key, nested or not, whose values differ,
    the ``neutral`` ones left out. A key missing on one side has the value None there."""
    a, b = flatten(saved), flatten(wanted)
    return {
        k: (a.get(k), b.get(k))
        for k in sorted(set(a) | set(b))
        if not _under(k, neutral) and a.get(k) != b.get(k)
    }


def find_runs(path: Path) -> list[Path]:
    """Every run folder under ``path`` (``path`` included): folders with event files, a config
    or an error file."""
    path = Path(path)
    if not path.is_dir():
        return []
    found = {e.parent for e in path.rglob(EVENTS)}
    found |= {c.parent.parent for c in path.rglob(".hydra/config.yaml")}
    found |= {e.parent for e in path.rglob("error.txt")}
    return sorted(found)


def _write_whole(file: Path, text: str) -> None:
    """Write ``file`` whole or not at all: a reader (a sweep that decides what finished) never
    sees half of it, even if the run is killed while writing."""
    partial = file.with_name(f".{file.name}.partial")
    partial.write_text(text)
    os.replace(partial, file)


def _load_yaml(file: Path) -> Any:
    return yaml.safe_load(file.read_text()) if file.is_file() else None


class RunDir:
    """One run folder (it need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        hydra = self.path / ".hydra"
        self.config_file = hydra / "config.yaml"
        self.resolved_file = hydra / "resolved.yaml"
        self.hydra_file = hydra / "hydra.yaml"
        self.overrides_file = hydra / "overrides.yaml"
        self.resumes_file = hydra / "resumes.yaml"
        self.log_file = self.path / "train.log"
        self.checkpoints = self.path / "checkpoints"
        self.last_checkpoint = self.checkpoints / "last.ckpt"
        self.reliability_file = self.path / "reliability.json"
        self.result_file = self.path / "result.json"
        self.error_file = self.path / "error.txt"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- what it holds --------------------------------------------------------------------------

    def event_files(self) -> list[Path]:
        return sorted(self.path.glob(EVENTS)) if self.path.is_dir() else []

    def holds_run(self) -> bool:
        """Whether anything of a run is here (a config, curves, a result or an error)."""
        return (
            self.config_file.is_file()
            or self.result_file.is_file()
            or self.error_file.is_file()
            or bool(self.event_files())
        )

    def result(self) -> dict[str, Any] | None:
        """What the run wrote when it ended, or None (also for a file it could not finish
        writing: it is written whole or not at all, but a copy may be cut)."""
        try:
            return json.loads(self.result_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def error_line(self) -> str | None:
        """The first line of ``error.txt``: the message of what a sweep job raised."""
        if not self.error_file.is_file():
            return None
        return self.error_file.read_text().split("\n", 1)[0]

    def status(self) -> str:
        """``new``, ``ok``, ``diverged``, ``failed`` or ``incomplete`` (running or killed)."""
        result = self.result()
        if result is not None:
            return str(result["status"])
        if self.error_file.is_file():
            return "failed"
        return "incomplete" if self.holds_run() else "new"

    def finished(self) -> bool:
        return self.status() in FINISHED

    def checkpoint(self) -> Path | None:
        """The checkpoint a resume starts from (``checkpoints/last.ckpt``), if there is one."""
        return self.last_checkpoint if self.last_checkpoint.is_file() else None

    def config(self) -> dict[str, Any] | None:
        """The config the run trains with, every value resolved (None: no record of it)."""
        return _load_yaml(self.resolved_file)

    def choices(self) -> dict[str, Any]:
        """The chosen config of each group (``{"loss": "sse", ...}``), from ``hydra.yaml``."""
        saved = _load_yaml(self.hydra_file) or {}
        return dict(saved.get("hydra", {}).get("runtime", {}).get("choices", {}) or {})

    def overrides(self) -> list[str]:
        return list(_load_yaml(self.overrides_file) or [])

    # -- decisions ------------------------------------------------------------------------------

    def differences(
        self, config: Mapping[str, Any], choices: Mapping[str, Any]
    ) -> dict[str, tuple[Any, Any]]:
        """What differs between the run saved here and ``config`` (resolved) with its group
        ``choices``: every key that changes results, and the chosen group configs. A run with no
        record of its resolved config differs in everything: ``{"config": ("unknown", ...)}``."""
        saved = self.config()
        if saved is None:
            return {"config": ("unknown (no .hydra/resolved.yaml)", "this sweep's")}
        groups = {k: v for k, v in choices.items() if not k.startswith("hydra")}
        saved_groups = {k: v for k, v in self.choices().items() if not k.startswith("hydra")}
        found = differences(saved, config)
        found.update(differences(saved_groups, groups, neutral=("logger",)))
        return found

    def sweep_action(
        self, config: Mapping[str, Any], choices: Mapping[str, Any], retrain: bool = False
    ) -> tuple[str, dict[str, tuple[Any, Any]]]:
        """What a sweep does with this job folder, for a job of ``config`` (resolved) and group
        ``choices``, and the keys that differ:

        - ``run``: nothing of a run here;
        - ``skip``: it finished (ok or diverged) with this config;
        - ``resume``: it started with this config and has a checkpoint;
        - ``restart``: it started, but left nothing to reuse (no result, no checkpoint), or it
          holds another config's run and ``retrain`` is set: its folder is replaced;
        - ``stale``: it holds a run of another config, finished or resumable (refused).
        """
        status = self.status()
        if status == "new":
            return "run", {}
        if status not in FINISHED and self.checkpoint() is None:
            return "restart", {}
        differs = self.differences(config, choices)
        if differs:
            return ("restart" if retrain else "stale"), differs
        return ("skip" if status in FINISHED else "resume"), {}

    def resume_action(self, changed: Mapping[str, tuple[Any, Any]]) -> str:
        """What a resume in place does: ``finished`` (leave every file as it is: the run ended,
        and ``changed`` does not train it longer; a diverged run is never continued) or
        ``continue``."""
        if not self.finished():
            return "continue"
        if self.status() == "diverged" or not self.extends(changed):
            return "finished"
        return "continue"

    def extends(self, changed: Mapping[str, tuple[Any, Any]]) -> bool:
        """Whether a resume with these ``changed`` keys trains past where the run ended: a larger
        ``trainer.max_epochs``, or a ``trainer.max_steps`` that allows more steps."""
        old_epochs, new_epochs = changed.get("trainer.max_epochs", (0, 0))
        if new_epochs > old_epochs:
            return True
        old_steps, new_steps = changed.get("trainer.max_steps", (-1, -1))
        limit = math.inf if new_steps == -1 else new_steps
        return old_steps != -1 and limit > old_steps

    # -- writing --------------------------------------------------------------------------------

    def write_config(
        self, config_yaml: str, resolved: Mapping[str, Any], hydra_yaml: str, overrides: list[str]
    ) -> None:
        """The ``.hydra/`` files of a new run."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config_yaml)
        self._write_resolved(resolved)
        self.hydra_file.write_text(hydra_yaml)
        self.overrides_file.write_text(yaml.safe_dump(list(overrides), sort_keys=False))

    def _write_resolved(self, resolved: Mapping[str, Any]) -> None:
        self.resolved_file.write_text(yaml.safe_dump(dict(resolved), sort_keys=False))

    def record_resume(
        self,
        overrides: list[str],
        changed: Mapping[str, tuple[Any, Any]],
        config_yaml: str,
        resolved: Mapping[str, Any],
    ) -> None:
        """A resume: one more record in ``resumes.yaml``; with changed keys (``trainer.max_epochs``,
        ...) the run's config files now say what it trains with."""
        record = {
            "time": datetime.now().isoformat(timespec="seconds"),
            "overrides": list(overrides),
            "changed": {k: list(v) for k, v in changed.items()},
        }
        with self.resumes_file.open("a") as f:
            yaml.safe_dump([record], f, sort_keys=False)
        if changed:
            self.config_file.write_text(config_yaml)
            self._write_resolved(resolved)

    def write_result(
        self,
        status: str,
        epochs: int,
        metrics: Mapping[str, float],
        hparams: Mapping[str, Any],
        seconds: float,
    ) -> None:
        """``result.json``: the run ended (``ok`` or ``diverged``) after ``epochs`` epochs."""
        result = {
            "status": status,
            "epochs": epochs,
            "seconds": round(seconds, 3),
            "metrics": dict(metrics),
            "hparams": dict(hparams),
        }
        _write_whole(self.result_file, json.dumps(result, indent=1) + "\n")

    def write_reliability(self, epoch: int, bins: Mapping[str, Any]) -> None:
        self.reliability_file.write_text(json.dumps({"epoch": epoch, "bins": bins}, indent=1))

    def reliability(self) -> dict[str, Any] | None:
        if not self.reliability_file.is_file():
            return None
        return json.loads(self.reliability_file.read_text())

    def write_error(self, message: str, details: str) -> None:
        """``error.txt``: the message on the first line, then the details (a traceback)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.error_file.write_text(f"{message}\n\n{details}")

    def clear_error(self) -> None:
        self.error_file.unlink(missing_ok=True)

    def remove_if_empty(self, stop: Path) -> None:
        """A refused start leaves nothing: this folder, and the empty folders above it up to
        ``stop`` (excluded), go again if they are empty."""
        folder, stop = self.path.resolve(), Path(stop).resolve()
        while (
            folder != stop
            and stop in folder.parents
            and folder.is_dir()
            and not any(folder.iterdir())
        ):
            folder.rmdir()
            folder = folder.parent

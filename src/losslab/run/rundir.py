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
    hits.json              the last evaluation's right (1) and wrong (0) samples per split
    result.json            written when training ends: status, epochs, final metrics, HPARAMS
    error.txt              a sweep job that raised: its message, then the traceback

Status: ``new`` (no run), ``ok`` / ``diverged`` (ended: ``result.json``), ``failed`` (raised:
``error.txt``), ``incomplete`` (started, not ended: still running, or killed).
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from losslab.errors import UsageError
from losslab.run.identity import differences, group_choices, identity

__all__ = ["FINISHED", "RunDir", "find_runs", "missing_folders", "remove_made"]

EVENTS = "events.out.tfevents.*"
FINISHED = ("ok", "diverged")
# libyaml's safe loader where PyYAML was built with it: the same documents, several times faster
# (a study reads every run's hydra.yaml and resolved.yaml more than once)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def _pack(bits: list[bool]) -> dict[str, Any]:
    """Booleans as base64 of their bits (60,000 samples: 10 KB)."""
    number = int("".join("1" if b else "0" for b in bits) or "0", 2)
    data = number.to_bytes((len(bits) + 7) // 8, "big")
    return {"n": len(bits), "bits": base64.b64encode(data).decode()}


def _unpack(packed: Mapping[str, Any]) -> list[bool]:
    n = int(packed["n"])
    number = int.from_bytes(base64.b64decode(packed["bits"]), "big")
    return [c == "1" for c in format(number, f"0{n}b")] if n else []


def _load_yaml(file: Path) -> Any:
    """A YAML file of the run (None if it is missing); a file that is not YAML is refused by
    name, as a :class:`~losslab.errors.UsageError`."""
    if not file.is_file():
        return None
    try:
        return yaml.load(file.read_text(), Loader=SAFE_LOADER)
    except yaml.YAMLError as err:
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise UsageError(
            f"{file}: not valid YAML ({problem}); losslab-train wrote it, so the run folder was "
            f"changed or cut since: restore it, or move the run away"
        ) from err


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
        self.hits_file = self.path / "hits.json"
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
        found = differences(saved, config)
        found.update(differences(group_choices(self.choices()), group_choices(choices), neutral=()))
        return found

    def identity(self, ignore: Iterable[str] = ()) -> str | None:
        """:func:`identity` of the run saved here (None: no record of its resolved config)."""
        saved = self.config()
        return None if saved is None else identity(saved, self.choices(), ignore)

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
        history: Iterable[Mapping[str, float]] = (),
    ) -> None:
        """``result.json``: the run ended (``ok`` or ``diverged``) after ``epochs`` epochs; its
        HPARAMS metrics and row, and every epoch's metrics (``history``: the curves, also for a
        run that logged nothing)."""
        result = {
            "status": status,
            "epochs": epochs,
            "seconds": round(seconds, 3),
            "metrics": dict(metrics),
            "hparams": dict(hparams),
            "history": [dict(h) for h in history],
        }
        _write_whole(self.result_file, json.dumps(result, indent=1) + "\n")

    def write_reliability(self, epoch: int, bins: Mapping[str, Any]) -> None:
        self.reliability_file.write_text(json.dumps({"epoch": epoch, "bins": bins}, indent=1))

    def write_hits(self, epoch: int, hits: Mapping[str, Iterable[bool]]) -> None:
        """``hits.json``: per split, which samples the last evaluation got right, in the split's
        fixed order (the data seed's): two runs of one seed are paired image by image."""
        packed = {split: _pack(list(values)) for split, values in hits.items()}
        self.hits_file.write_text(json.dumps({"epoch": epoch, "hits": packed}))

    def hits(self) -> dict[str, list[bool]] | None:
        """What :meth:`write_hits` wrote (None: no such file)."""
        if not self.hits_file.is_file():
            return None
        return {s: _unpack(v) for s, v in json.loads(self.hits_file.read_text())["hits"].items()}

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


def missing_folders(path: str | Path) -> list[str]:
    """``path`` and the folders above it that do not exist yet, deepest first: what creating
    ``path`` will make (and a refused start must take away again)."""
    path = Path(path).absolute()
    return [str(p) for p in (path, *path.parents) if not p.exists()]


def remove_made(folders: Iterable[str | Path]) -> None:
    """A refused start leaves nothing: the ``folders`` it made (:func:`missing_folders`, taken
    before they were), deepest first, each removed if it is empty."""
    for folder in map(Path, folders):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

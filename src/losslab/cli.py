"""The console scripts and how they talk to the user: one line for a user error, a traceback
for a crash, an exit status that tells them apart.

- A user error (a bad value, key, group, folder or checkpoint, missing data, ``trainer=gpu``
  without a GPU) prints ``<prog>: error: <message naming the key and the allowed values>`` on
  stderr, nothing else, and exits with status 2. Nothing has been written by then.
- A crash keeps its traceback (status 1); ``HYDRA_FULL_ERROR=1`` shows the full traceback of
  user errors too.
- A sweep whose jobs failed writes its report, then exits with status 1.
- Without the training extras, ``losslab-train`` / ``losslab-report`` / ``losslab-study`` say
  in one line what to install.

This module imports nothing heavy at the top, so the last point holds.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

__all__ = ["one_line", "quote_path_overrides", "report_main", "study_main", "train_main"]

USAGE_EXIT = 2
TRAIN_EXTRA = 'pip install "losslab[train]"'
# the top-level modules the `train` extra installs
TRAIN_MODULES = {
    "hydra", "omegaconf", "lightning", "torchvision", "tensorboard", "torchmetrics",
    "matplotlib", "yaml", "scipy", "rich",
}  # fmt: skip
# override keys whose values are paths: losslab's own folder and checkpoint names hold "=" and
# "," (logs/.../loss=sse,data.batch_size=32/checkpoints/epoch=1-step=8.ckpt), which Hydra's
# override grammar reads as syntax unless the value is quoted
PATH_KEYS = ("ckpt_path", "hydra.run.dir", "hydra.sweep.dir", "data.data_dir")
_PLAIN = re.compile(r"[\w./:@+-]*")


def _error(prog: str, message: str, status: int = USAGE_EXIT) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def _import(prog: str, module: str) -> Any:
    """Import a training module, or stop with one line saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        package = (err.name or "").split(".")[0]
        if package not in TRAIN_MODULES:
            raise
        _error(prog, f"{prog} needs the training extras ({package!r} is missing): {TRAIN_EXTRA}")


def quote_path_overrides(args: Sequence[str]) -> list[str]:
    """``ckpt_path=<path>`` etc. with the path single-quoted when Hydra would misread it."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        plain = _PLAIN.fullmatch(value) or value[:1] in "'\"" or "${" in value
        if sep and key in PATH_KEYS and not plain and "'" not in value and "\\" not in value:
            arg = f"{key}='{value}'"
        out.append(arg)
    return out


def _flat(text: str) -> str:
    return " ".join(str(text).split())


def one_line(err: BaseException) -> str | None:
    """The one-line message of a user error, or None for a crash (which keeps its traceback)."""
    from hydra.errors import (
        ConfigCompositionException,
        HydraException,
        MissingConfigException,
        OverrideParseException,
    )
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import OmegaConfBaseException

    from losslab.config import UsageError

    if isinstance(err, UsageError | MisconfigurationException):
        return _flat(str(err))
    if isinstance(err, MissingConfigException) and err.options is not None:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        if group:
            allowed = ", ".join(sorted(err.options))
            return f"{group}={name}: no such config in conf/{group}/; allowed values: {allowed}"
        return _flat(str(err))
    if isinstance(err, OverrideParseException):
        return f"{err.override}: cannot parse this override: {_flat(err.message)}"
    cause = err.__cause__
    if isinstance(err, ConfigCompositionException) and isinstance(cause, OmegaConfBaseException):
        override = re.search(r"(?:override|Error merging override) '?([^'\s]+)'?", str(err))
        what = override.group(1) if override else cause.full_key
        reason = _flat((cause.msg or str(cause)).split("\n")[0])
        if "not in" in reason or "is not in struct" in reason:
            keys = _allowed_keys(cause)
            reason = f"no such key{f'; allowed keys: {keys}' if keys else ''}"
        return f"{what}: {reason}"
    if isinstance(err, OmegaConfBaseException):
        key = f"{err.full_key}: " if err.full_key else ""
        return key + _flat((err.msg or str(err)).split("\n")[0])
    if isinstance(err, HydraException):
        text = re.sub(
            r"\s*Set the environment variable HYDRA_FULL_ERROR.*", "", str(err), flags=re.S
        )
        return _flat(text)
    return None


def _allowed_keys(err: Any) -> str:
    """The keys of the config node a ConfigKeyError was raised in (from its dataclass schema)."""
    import dataclasses

    schema = getattr(err, "object_type", None)
    if dataclasses.is_dataclass(schema):
        return ", ".join(f.name for f in dataclasses.fields(schema) if not f.name.startswith("_"))
    node = getattr(err, "parent_node", None)
    return ", ".join(map(str, node.keys())) if hasattr(node, "keys") else ""


def _run(prog: str, func: Callable[[], Any]) -> Any:
    """Run a Hydra entry point: Hydra re-raises (``HYDRA_FULL_ERROR=1`` for this process), and
    user errors become one line unless the user asked for the full traceback."""
    user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return func()
    except Exception as err:
        message = one_line(err)
        if message is None or user_full_error:
            raise
        _error(prog, message)
    finally:
        if not user_full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def train_main() -> None:
    """``losslab-train [overrides]`` (also ``python -m losslab.train``)."""
    train = _import("losslab-train", "losslab.train")
    sweep = _import("losslab-train", "losslab.sweep")
    sys.argv[1:] = quote_path_overrides(sys.argv[1:])
    _run("losslab-train", train.main)
    if train.REFUSED:  # a single run refused before it wrote anything
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise train.REFUSED[0]
        _error("losslab-train", str(train.REFUSED[0]))
    if sweep.FAILED_JOBS:
        jobs = ", ".join(sweep.FAILED_JOBS)
        _error("losslab-train", f"{len(sweep.FAILED_JOBS)} job(s) of the sweep failed: {jobs}", 1)


def report_main() -> None:
    """``losslab-report PATH [--out DIR]``."""
    report = _import("losslab-report", "losslab.report")
    raise SystemExit(report.main())


def study_main() -> None:
    """``losslab-study [--dir DIR] [overrides]``."""
    study = _import("losslab-study", "losslab.study")
    raise SystemExit(study.main())

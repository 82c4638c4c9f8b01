"""User errors and how they reach the user: one line, exit status 2, nothing written.

A leaf: it imports no other losslab module, and Hydra, OmegaConf, Lightning and YAML only inside
:func:`one_line`, so every module (the torch-only losses excepted) may import it.

- :class:`UsageError`: a bad command, value, key, folder or checkpoint. Its message names the key
  and what is allowed.
- :func:`one_line`: the one-line message of any user error (ours, Hydra's, OmegaConf's,
  Lightning's misconfiguration, a broken YAML file), or None for a crash, which keeps its
  traceback.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = [
    "USAGE_EXIT",
    "UsageError",
    "check_out_dir",
    "exit_with",
    "group_error",
    "one_line",
    "run_hydra",
    "user_main",
]

USAGE_EXIT = 2


class UsageError(ValueError):
    """A bad command, value or folder: printed as one line (``<prog>: error: ...``), exit 2."""


def exit_with(prog: str, message: str, status: int = USAGE_EXIT) -> NoReturn:
    """Print ``<prog>: error: <message>`` on stderr and exit with ``status``."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def _flat(text: object) -> str:
    return " ".join(str(text).split())


def group_error(group: str, err: Exception, keys: Any = ()) -> UsageError:
    """A constructor's ``ValueError``/``TypeError`` as a config error: the constructors name their
    argument first (``batch_size must be ...``), which is the key ``data.batch_size`` (a config
    group's keys are its constructor's arguments)."""
    message = _flat(err)
    first = re.match(r"[A-Za-z_]\w*", message)
    name = first.group() if first else ""
    if name in keys:
        return UsageError(f"{group}.{message}")
    return UsageError(f"{group}: {message}")


def one_line(err: BaseException) -> str | None:
    """The one-line message of a user error, or None for a crash (which keeps its traceback)."""
    import yaml
    from hydra.errors import (
        ConfigCompositionException,
        HydraException,
        MissingConfigException,
        OverrideParseException,
    )
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, UsageError | MisconfigurationException):
        return _flat(err)
    if isinstance(err, OSError) and err.errno in _FOLDER_ERRORS and err.filename:
        return f"cannot write {err.filename}: {err.strerror}"
    if isinstance(err, yaml.YAMLError) or isinstance(err.__cause__, yaml.YAMLError):
        bad = err if isinstance(err, yaml.YAMLError) else err.__cause__
        mark = getattr(bad, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
        problem = getattr(bad, "problem", None) or str(bad).split("\n")[0]
        return f"cannot read {where}: {_flat(problem)} (not valid YAML)"
    if isinstance(err, MissingConfigException) and err.options is not None:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        if group:
            allowed = ", ".join(sorted(err.options))
            return f"{group}={name}: no such config in conf/{group}/; allowed values: {allowed}"
        return _flat(err)
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


# errors of the file system a user can mend (a folder they may not write, a file where a folder
# should be, a full disk): one line, not a traceback
_FOLDER_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENOSPC,
    errno.EDQUOT,
}


def check_out_dir(folder: Any, option: str) -> None:
    """An output folder option (``--out``) must not name a file."""
    from pathlib import Path

    if Path(folder).exists() and not Path(folder).is_dir():
        raise UsageError(f"{option}={folder}: a file is there; {option} names a folder to write")


def user_main(prog: str, func: Callable[[], Any]) -> int:
    """Run a console command's body: 0, or 2 with one line ``<prog>: error: ...`` for a user
    error (ours, a missing path, a bad value, a folder that cannot be written); a crash keeps
    its traceback."""
    try:
        func()
    except Exception as err:
        message = one_line(err)
        if message is None and isinstance(err, ValueError | FileNotFoundError):
            message = _flat(err)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
        return USAGE_EXIT
    return 0


def _allowed_keys(err: Any) -> str:
    """The keys of the config node a ConfigKeyError was raised in (from its dataclass schema, or
    the node's own), ``_target_`` and its kind left out."""
    import dataclasses

    schema = getattr(err, "object_type", None)
    if dataclasses.is_dataclass(schema):
        keys = [f.name for f in dataclasses.fields(schema)]
    else:  # a plain YAML node: its keys
        node = getattr(err, "parent_node", None)
        keys = [str(k) for k in node] if hasattr(node, "keys") else []
    return ", ".join(k for k in keys if not k.startswith("_"))


def run_hydra(prog: str, func: Callable[[], Any]) -> Any:
    """Run a Hydra entry point: a user error becomes one line and exit 2 (Hydra is told to
    re-raise, ``HYDRA_FULL_ERROR=1``, for this process); a crash keeps its traceback, and
    ``HYDRA_FULL_ERROR=1`` set by the user shows the traceback of user errors too."""
    user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return func()
    except Exception as err:
        message = one_line(err)
        if message is None or user_full_error:
            raise
        exit_with(prog, message)
    finally:
        if not user_full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)

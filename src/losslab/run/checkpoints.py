"""Reading a checkpoint a user names (``ckpt_path``, ``init_from``, ``losslab-eval``): a
``.ckpt`` file, or a run folder standing for its ``checkpoints/last.ckpt``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from losslab.errors import UsageError
from losslab.run.rundir import RunDir

__all__ = ["find_checkpoint", "read_checkpoint"]


def find_checkpoint(path: str | Path, key: str) -> Path:
    """The checkpoint ``path`` names: the file itself, or a run folder's ``last.ckpt``.

    Raises:
        UsageError: nothing there, or a folder without a checkpoint (naming ``key``).
    """
    path = Path(path)
    if path.is_dir():
        checkpoint = RunDir(path).checkpoint()
        if checkpoint is None:
            raise UsageError(
                f"{key}={path}: this folder holds no checkpoints/last.ckpt; pass a run folder "
                f"that losslab-train wrote with checkpoints (not callbacks=null), or a .ckpt file"
            )
        return checkpoint
    if not path.exists():
        raise UsageError(f"{key}={path}: no such checkpoint file or run folder")
    return path


def read_checkpoint(path: str | Path, key: str) -> dict[str, Any]:
    """A Lightning checkpoint's contents (loaded with ``weights_only=True``).

    Raises:
        UsageError: ``path`` holds no checkpoint torch can load, or no Lightning one (naming
            ``key``).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{key}={path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, another format, ...: the reason in one line
        reason = " ".join(str(err).split())[:200]
        raise UsageError(f"{key}={path}: not a checkpoint torch can load ({reason})") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError(
            f"{key}={path}: not a Lightning checkpoint (no state_dict); pass a .ckpt file that "
            f"losslab-train wrote (<run>/checkpoints/last.ckpt)"
        )
    return checkpoint

"""DDP child processes that re-run this job, not the whole command line.

Lightning starts ranks > 0 by re-running ``sys.argv`` with ``hydra.run.dir=<run.dir>``. Inside a
sweep that re-launches the whole sweep into new folders (lightning #11300, hydra #2070). While
:func:`children_join_this_job` is active, a child gets this job's config folder and name
(``--config-dir``, ``--config-name``), its overrides, its Hydra overrides (``hydra.searchpath``,
...), its output folder, and ``hydra.mode=RUN``.

The seam is Lightning's private ``subprocess_script._hydra_subprocess_cmd``: pyproject pins
Lightning below its next major release, and ``tests/test_contracts.py`` fails with a clear
message when an upgrade removes the symbol.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import hydra
from hydra.core.hydra_config import HydraConfig

__all__ = ["children_join_this_job"]

DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# Hydra overrides a DDP child must not repeat: it runs this job alone, in this job's folder
_NOT_FOR_CHILDREN = ("hydra.mode", "hydra.run", "hydra.sweep", "hydra.launcher", "hydra/launcher")
_NOT_FOR_CHILDREN += ("hydra.sweeper", "hydra/sweeper", "hydra.callbacks", "hydra.job.name")


def child_command(local_rank: int) -> tuple[list[str], str]:
    """The command and working folder of the DDP child of rank ``local_rank``."""
    hc = HydraConfig.get()
    command = [sys.executable, "-m", "losslab.train", "--config-name", hc.job.config_name]
    for source in hc.runtime.config_sources:
        if source.provider == "command-line":
            command += ["--config-dir", source.path.removeprefix("file://")]
    command += list(hc.overrides.task)
    command += [o for o in hc.overrides.hydra if not o.startswith(_NOT_FOR_CHILDREN)]
    command += [
        f"hydra.run.dir='{hc.runtime.output_dir}'",  # quoted: job folders hold = and ,
        f"hydra.job.name=ddp_rank_{local_rank}",
        "hydra.mode=RUN",
        # no Hydra callback runs twice (`hydra.callbacks={}` would merge, not empty, the dict)
        *(f"~hydra.callbacks.{name}" for name in hc.callbacks),
    ]
    return command, hydra.utils.get_original_cwd()


@contextlib.contextmanager
def children_join_this_job() -> Iterator[None]:
    """Patch Lightning's DDP child command (see the module docstring) for the ``with`` block."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    original = subprocess_script._hydra_subprocess_cmd
    subprocess_script._hydra_subprocess_cmd = child_command
    # The launcher also writes LOCAL_RANK, MASTER_PORT, ... into this process's environment;
    # left there, the next job of a sweep would think it was started by a launcher and wait.
    env_before = {k: os.environ.get(k) for k in DDP_ENV}
    try:
        yield
    finally:
        subprocess_script._hydra_subprocess_cmd = original
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

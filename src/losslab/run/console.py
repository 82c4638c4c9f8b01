"""What a run prints: its ``losslab`` lines on the console and in ``<run>/train.log`` (with
Lightning's own lines and every warning, which the console does not get), and the summary at
its end."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from losslab.names import SPLITS, tag
from losslab.run.rundir import RunDir

__all__ = ["finished_before", "lightning_console", "log", "run_log", "shown", "summary"]

log = logging.getLogger("losslab")
# Lightning's advertising says nothing about the run
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "Tip:" not in record.getMessage()
)


class _ConsoleFilter(logging.Filter):
    """A record with ``extra={"console": False}`` goes to ``train.log`` only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)


@contextlib.contextmanager
def lightning_console(on: bool) -> Iterator[None]:
    """Lightning's own console lines ("GPU available: ...", "`Trainer.fit` stopped: ...") on, or
    off for the block (a sweep's job prints one line of its own; ``train.log`` keeps them)."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    removed = (
        []
        if on
        else [(lg, h) for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler]
    )
    for logger, handler in removed:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for logger, handler in removed:
            logger.addHandler(handler)


@contextlib.contextmanager
def run_log(run: RunDir | None, console: bool = True) -> Iterator[None]:
    """``losslab`` messages to stdout (``console``) and, on rank 0 (``run`` given), appended to
    ``<run>/train.log`` together with Lightning's own lines and every Python warning: the file
    keeps everything, the console only losslab's lines (a warning a user cannot act on in the
    middle of a sweep is noise there; the run's file has it)."""
    handlers: list[tuple[logging.Logger, logging.Handler]] = []
    if console:
        stream = logging.StreamHandler(sys.stdout)
        stream.addFilter(_ConsoleFilter())
        handlers.append((log, stream))
    if run is not None:
        file = logging.FileHandler(run.log_file)
        file.setFormatter(logging.Formatter("%(message)s"))
        handlers += [(log, file), (logging.getLogger("lightning.pytorch"), file)]
        handlers.append((logging.getLogger("py.warnings"), file))
    log.setLevel(logging.INFO)
    log.propagate = False
    lightning = logging.getLogger("lightning.pytorch")
    propagate = lightning.propagate
    lightning.propagate = (
        False  # its console lines (rank_zero_warn, "Trainer.fit stopped") go to the file
    )
    for logger, handler in handlers:
        logger.addHandler(handler)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # each warning once per place, into the file
        logging.captureWarnings(True)
        try:
            yield
        finally:
            logging.captureWarnings(False)
            lightning.propagate = propagate
            for logger, handler in handlers:
                logger.removeHandler(handler)
                handler.close()


def shown(path: Path) -> str:
    """``path`` as a user typed it: relative below the working folder, else absolute."""
    return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)


def finished_before(run: RunDir, result: Mapping[str, Any]) -> None:
    """A resume of a run that finished: say so (nothing was changed)."""
    status, epochs = result.get("status"), result.get("epochs")
    more = (
        "start a new run: it diverged"
        if status == "diverged"
        else f"ckpt_path=last trainer.max_epochs=<more than {epochs}>"
    )
    log.info(
        f"losslab: {shown(run.path)} finished before ({status} after {epochs} epochs); nothing "
        f"was changed. To train longer: {more}"
    )


def summary(status: str, last: Mapping[str, float], seconds: float, run: RunDir) -> str:
    """The lines a run ends with: status, each measured split's numbers, its folder and, when it
    wrote TensorBoard curves, the command that shows them."""

    def fmt(kind: str, split: str) -> str:
        value = last.get(tag(kind, split))
        return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"

    lines = [f"\nlosslab: {status} after {last.get('epoch', 0)} epochs in {seconds:.1f} s"]
    for split in SPLITS:
        if tag("acc", split) in last:
            numbers = "  ".join(
                f"{kind} {fmt(kind, split)}" for kind in ("acc", "loss", "nll", "ece")
            )
            lines.append(f"  {split:<5}  {numbers}")
    lines.append(f"  logs   {shown(run.path)}")
    if run.event_files():
        lines.append(f"  view   tensorboard --logdir {shown(run.path)}")
    return "\n".join(lines)

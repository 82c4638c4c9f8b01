"""A sweep's progress on the console: one line per job that ends, from the job itself (jobs run
in parallel worker processes), with the sweep's count and the time left.

The sweeper writes ``<sweep dir>/.progress`` before it launches anything: a header with the
number of jobs, the start time and the stage (a study's ``tune``, ``final`` or ``fixed``). Each
job appends one line when it ends and prints::

    tune  37/144  loss=cee,data.batch_size=32,optimizer.lr=0.1,seed=100  ok  val acc 0.9712  4.1 s  ETA 5 min 12 s

(appends of one short line are atomic, so parallel jobs never mix their records; a job's count
is the place of its own record).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from losslab.names import tag
from losslab.run.rundir import RunDir

__all__ = ["FILE", "duration", "job_ended", "line", "start"]

FILE = ".progress"


def start(sweep_dir: Path, total: int, stage: str | None) -> None:
    """A new launch of ``total`` jobs into ``sweep_dir`` (``stage``: a study's, or None); a
    launch of nothing leaves the folder as it is."""
    if not total:
        return
    header = {"total": total, "start": time.time(), "stage": stage or "sweep"}
    (Path(sweep_dir) / FILE).write_text(json.dumps(header) + "\n")


def duration(seconds: float) -> str:
    """``12 s``, ``5 min 12 s``, ``1 h 03 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def line(
    header: Mapping[str, Any],
    done: int,
    name: str,
    result: Mapping[str, Any] | None,
    seconds: float,
) -> str:
    """The console line of the ``done``-th job to end, ``name``, with what it wrote
    (``result.json``; None: it failed)."""
    total, elapsed = int(header["total"]), max(time.time() - float(header["start"]), 0.0)
    status, metric = "failed", ""
    if result is not None:
        status = str(result.get("status"))
        last = (result.get("history") or [{}])[-1]
        split = "val" if tag("acc", "val") in last else "test"
        if tag("acc", split) in last:
            metric = f"{split} acc {last[tag('acc', split)]:.4f}"
    left = elapsed / done * (total - done) if done else 0.0
    eta = f"ETA {duration(left)}" if done < total else f"all {total} in {duration(elapsed)}"
    count = f"{done}/{total}".rjust(2 * len(str(total)) + 1)
    parts = [f"{header['stage']} {count}", name, status, metric, f"{seconds:.1f} s", eta]
    return "  ".join(p for p in parts if p)


def job_ended(hc: Any, failed: bool, seconds: float) -> None:
    """In a sweep's job, once it ends: append its record and print its line (``hc``: the job's
    Hydra config). Nothing when the sweep did not start a progress file (another sweeper)."""
    file = Path(hc.sweep.dir) / FILE
    if not file.is_file():
        return
    name = Path(hc.runtime.output_dir).name
    record = f"{json.dumps({'job': name, 'pid': os.getpid(), 'time': time.time()})}\n"
    with file.open("a") as f:
        f.write(record)
    header, *records = file.read_text().splitlines()
    done = records.index(record.rstrip("\n")) + 1
    result = None if failed else RunDir(hc.runtime.output_dir).result()
    print(line(json.loads(header), done, name, result, seconds), flush=True)

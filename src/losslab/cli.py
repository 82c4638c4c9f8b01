"""The console scripts: ``losslab-train``, ``losslab-report``, ``losslab-study``, ``losslab-eval``.

They sit on top of everything and only start the command. What the user sees:

- A user error (a bad value, key, group, folder or checkpoint, missing data, ``trainer=gpu``
  without a GPU) prints ``<prog>: error: <message naming the key and the allowed values>`` on
  stderr, nothing else, and exits with status 2. Nothing has been written by then.
- A crash keeps its traceback (status 1); ``HYDRA_FULL_ERROR=1`` shows the full traceback of
  user errors too.
- A sweep whose jobs failed writes its report, then exits with status 1.
- Without the training extras, a command names, in one line, the first missing distribution and
  what to install. It finds it from the installed package metadata, before importing anything
  heavy (torch would first print its "Failed to initialize NumPy" warning).
"""

from __future__ import annotations

import re
from importlib import metadata

from losslab.errors import exit_with

__all__ = ["eval_main", "report_main", "study_main", "train_main"]

TRAIN_EXTRA = 'pip install "losslab[train]"'


def missing_distribution(extra: str = "train") -> str | None:
    """The first distribution of losslab's ``extra`` (in pyproject order) that is not installed,
    or None (also when losslab itself has no metadata, as in a plain source checkout)."""
    try:
        requirements = metadata.requires("losslab") or []
    except metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        if f'extra == "{extra}"' not in marker.replace("'", '"'):
            continue
        name = re.split(r"[\s<>=!~\[(;]", spec.strip(), maxsplit=1)[0]
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return name
    return None


def _needs_training_extras(prog: str) -> None:
    missing = missing_distribution()
    if missing is not None:
        exit_with(prog, f"{prog} needs the training extras ({missing!r} is missing): {TRAIN_EXTRA}")


def train_main() -> None:
    """``losslab-train [overrides]`` (also ``python -m losslab.train``)."""
    _needs_training_extras("losslab-train")
    from losslab.train import entry

    entry()


def report_main() -> None:
    """``losslab-report PATH [--out DIR]``."""
    _needs_training_extras("losslab-report")
    from losslab.read.report import main

    raise SystemExit(main())


def study_main() -> None:
    """``losslab-study {run,noise,choose,verdict} ...``."""
    _needs_training_extras("losslab-study")
    from losslab.study.stages import main

    raise SystemExit(main())


def eval_main() -> None:
    """``losslab-eval <checkpoint or run folder> [--out DIR]``."""
    _needs_training_extras("losslab-eval")
    from losslab.run.evaluate import main

    raise SystemExit(main())

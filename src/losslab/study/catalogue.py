"""A study's protocol: what it compares (the losses at each value of one key, its ``by``), the
margin of equivalence, its errors, and the finished runs its stages read (reading half)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from losslab.read.runs import read_runs
from losslab.run.rundir import FINISHED

__all__ = [
    "FAIR",
    "MARGIN",
    "NOISE",
    "Protocol",
    "StudyError",
    "check_margin",
    "finished_rows",
    "load_choices",
    "place",
    "value_key",
]

MARGIN = 0.005  # the equivalence margin: ±0.5 accuracy points, fixed before the runs


class StudyError(ValueError):
    """A bad study setting or an incomplete stage: one line naming the key."""


@dataclass(frozen=True)
class Protocol:
    """What a study varies and compares: ``by`` (the row key each loss is compared at),
    ``pairs`` (the comparisons, first minus second), ``metrics`` (row keys of the test
    accuracies compared: each is one family of tests)."""

    by: str
    pairs: tuple[tuple[str, str], ...]
    metrics: tuple[tuple[str, str], ...]  # (row key, what it is)
    title: str


FAIR = Protocol(
    by="batch_size",
    pairs=(("cee", "sse"), ("cee", "sse_logits")),
    metrics=(("test_acc", "test accuracy after the last epoch"),),
    title="each loss at its own lr, per batch size",
)
NOISE = Protocol(
    by="label_noise",
    pairs=(("cee", "sse"), ("cee", "mae"), ("sse", "mae")),
    metrics=(
        ("test_acc", "test accuracy after the last epoch"),
        ("test_at_best", "test accuracy at the epoch the noisy validation accuracy picks"),
    ),
    title="each loss at its own lr, per label-noise rate",
)


def finished_rows(folder: Path, stage: str) -> list[dict[str, Any]]:
    """The rows of the runs under ``folder``, each finished (ok or diverged): a run that failed
    or has not ended (still running, or killed) would be a hole the numbers do not show."""
    if not folder.is_dir():
        raise StudyError(f"{folder}: no such folder; run the stage that writes it first")
    rows = [r.row | {"folder": r.path} for r in read_runs(folder)]
    unfinished = [r for r in rows if r["status"] not in FINISHED]
    if unfinished:
        names = ", ".join(f"{r['run']} ({r['status']})" for r in unfinished[:3])
        more = f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else ""
        raise StudyError(
            f"{folder}: {len(unfinished)} {stage} run(s) did not finish: {names}{more}; run the "
            f"same losslab-study command again (it resumes the stage) first"
        )
    return rows


def check_margin(margin: float) -> None:
    """Refuse an equivalence margin outside (0, 1) (accuracy; NaN included)."""
    if not 0 < margin < 1:
        raise StudyError(
            f"--margin={margin}: the equivalence margin must be in (0, 1), in accuracy "
            f"(0.005 = 0.5 points)"
        )


def load_choices(study_dir: Path) -> tuple[Path, dict]:
    choices_file = study_dir / "tune" / "choices.yaml"
    if not choices_file.is_file():
        raise StudyError(
            f"{choices_file}: no such file; the verdict compares each loss at the lr chosen for "
            f"it: run losslab-study choose {study_dir / 'tune'} first"
        )
    return choices_file, yaml.safe_load(choices_file.read_text()) or {}


def value_key(value: Any) -> Any:
    return float(value) if isinstance(value, float) else value


def place(cell: dict, seed: Any, row: dict, by: str, keys: str) -> None:
    """``cell[seed] = row``, refusing a second run of the same ``keys`` and seed: the runs then
    differ in a key the study does not compare them by (another ``by``?), and one would hide
    the other."""
    if seed in cell:
        raise StudyError(
            f"{row['folder']} and {cell[seed]['folder']}: two runs of the same {keys} and "
            f"seed={seed}; they differ in a key other than {by} (choose --by label_noise for "
            f"the label-noise study?)"
        )
    cell[seed] = row

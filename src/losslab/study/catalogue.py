"""A study as data (reading half): what it compares, at which values, in which arms and on which
metrics, derived from what the user asked for and saved with the study (``<study>/study.yaml``).
The stages, the verdict and the figures read it and branch on nothing else: a user's own loss
goes through a study untouched, and a new metric or compared key is one entry here.

- **losses**, in the order given (tables, figures and colours follow it);
- **key**: the config key the losses are compared at (``data.batch_size``, ``data.label_noise``)
  and its **values**;
- **comparisons**: each loss against a **reference** loss, or every pair (reference None);
- **arms**: ``tuned`` (each loss at the lr its own seed's validation split prefers among stage
  2's ``top_k`` candidates) and ``fixed`` (each loss at the lr it got at the clean value,
  held as the noise grows); each arm has its **metrics**, and each metric of an arm is one
  family of tests;
- **margin**: the equivalence margin, fixed before the runs.
"""

from __future__ import annotations

import copy
import functools
import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from losslab.names import MEMORIZED, tag

__all__ = [
    "ARMS",
    "MARGIN",
    "METRICS",
    "Arm",
    "Catalogue",
    "Metric",
    "StudyError",
    "check_margin",
    "stage_file",
    "value_key",
]

MARGIN = 0.005  # the equivalence margin: ±0.5 accuracy points, fixed before the runs


class StudyError(ValueError):
    """A bad study setting or an incomplete stage: one line naming the key."""


@dataclass(frozen=True)
class Metric:
    """A number the verdict compares: a curve's value at the run's last epoch (``when="last"``)
    or at the epoch its validation accuracy picks (``"early"``: early stopping); ``higher``: more
    is better; ``word``: the verdict's word for the better loss; ``axis``: the figures' name of
    the curve (metrics of one curve share a panel)."""

    name: str
    curve: str
    when: str
    label: str
    short: str
    higher: bool = True
    word: str = "{} better"
    axis: str = "test accuracy"


METRICS = {
    m.name: m
    for m in (
        Metric("test_acc", tag("acc", "test"), "last", "test accuracy after the last epoch",
               "test acc (last)"),
        Metric("test_at_best", tag("acc", "test"), "early",
               "test accuracy at the epoch the validation accuracy picks (early stopping)",
               "test acc (early-stopped)"),
        Metric("memorized", MEMORIZED, "last",
               "fraction of the flipped training labels predicted as their wrong label after the "
               "last epoch (memorization)", "memorized", higher=False, word="{} memorizes less",
               axis="memorized: flipped training labels predicted as flipped"),
    )
}  # fmt: skip
# reported next to the compared metrics in each loss's table, compared by no test
REPORTED = {"test_ece": tag("ece", "test"), "test_nll": tag("nll", "test")}


@dataclass(frozen=True)
class Arm:
    """A way the final runs get their lr: the stage (sweep folder) that trains them and what it
    means (a study's catalogue says which metrics it compares in each)."""

    name: str
    stage: str
    title: str


ARMS = {
    "tuned": Arm(
        "tuned",
        "final",
        "each loss at its own lr: every seed trains the best lrs of stage 1 and keeps the one "
        "its own validation split prefers",
    ),
    "fixed": Arm(
        "fixed",
        "fixed",
        "each loss at the lr its seed chose on clean labels, held fixed as the noise grows",
    ),
}


def value_key(value: Any) -> Any:
    """A compared value as a plain Python number (numpy's floats become floats), so that YAML
    writes it and equal values meet in one dict key."""
    return float(value) if isinstance(value, float) else value


@dataclass(frozen=True)
class Catalogue:
    """One study: see the module docstring. ``clean``: the value of ``key`` the fixed arm takes
    each loss's lr from (the noise study's 0)."""

    study: str
    key: str
    label: str
    losses: tuple[str, ...]
    values: tuple[Any, ...]
    reference: str | None
    arms: tuple[str, ...]
    metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    top_k: int = 2
    margin: float = MARGIN
    clean: Any = None

    FILE = "study.yaml"

    def pairs(self) -> list[tuple[str, str]]:
        """The comparisons, first minus second: the reference against each other loss, or every
        pair in the losses' order."""
        if self.reference is not None:
            return [(self.reference, loss) for loss in self.losses if loss != self.reference]
        return list(itertools.combinations(self.losses, 2))

    def arm_metrics(self, arm: str) -> list[Metric]:
        """The metrics compared in ``arm``, each a family of tests."""
        return [METRICS[m] for m in self.metrics[arm]]

    def order(self, loss: str) -> int:
        """A loss's place in tables and figures (a loss not asked for goes last)."""
        return self.losses.index(loss) if loss in self.losses else len(self.losses)

    def save(self, study_dir: Path) -> None:
        data = asdict(self)
        data["losses"], data["values"], data["arms"] = (
            list(self.losses),
            list(self.values),
            list(self.arms),
        )
        data["metrics"] = {arm: list(ms) for arm, ms in self.metrics.items()}
        Path(study_dir).mkdir(parents=True, exist_ok=True)
        (Path(study_dir) / self.FILE).write_text(
            "# what this study compares (losslab-study); the verdict reads it\n"
            + yaml.safe_dump(data, sort_keys=False)
        )

    @classmethod
    def load(cls, study_dir: Path) -> Catalogue:
        """The catalogue saved with the study in ``study_dir``.

        Raises:
            StudyError: no study there.
        """
        file = Path(study_dir) / cls.FILE
        if not file.is_file():
            raise StudyError(
                f"{file}: no such file; {study_dir} is not a study folder (losslab-study run or "
                f"losslab-study noise writes it)"
            )
        data = yaml.safe_load(file.read_text())
        data["losses"] = tuple(data["losses"])
        data["values"] = tuple(value_key(v) for v in data["values"])
        data["arms"] = tuple(data["arms"])
        data["metrics"] = {arm: tuple(ms) for arm, ms in (data.get("metrics") or {}).items()}
        return cls(**data)


def stage_file(file: str | Path, missing: str) -> dict:
    """A stage's YAML file for a config resolver (``optimizer.lr``'s): its contents (a copy), or
    :class:`StudyError` ``optimizer.lr: <missing> at <file>`` when there is none. A sweep
    resolves it for every job, several times each; the parse is kept per text read, so a file
    written again is parsed again."""
    path = Path(file)
    if not path.is_file():
        raise StudyError(f"optimizer.lr: {missing.format(path=path)}")
    return copy.deepcopy(_parsed(path.read_text()))


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> dict:
    return yaml.safe_load(text) or {}


def check_margin(margin: float) -> None:
    """Refuse an equivalence margin outside (0, 1) (accuracy; NaN included)."""
    if not 0 < margin < 1:
        raise StudyError(
            f"--margin={margin}: the equivalence margin must be in (0, 1), in accuracy "
            f"(0.005 = 0.5 points)"
        )

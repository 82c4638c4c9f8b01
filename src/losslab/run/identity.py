"""One run counts once: what a run *is* — its resolved config and seed, whatever its folder is
called — and what differs between two configs. The run folder's owner
(:mod:`losslab.run.rundir`), the sweeper's skip, the report and the studies all compare runs
through it. Plain Python: no torch, no Hydra."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["NEUTRAL_KEYS", "RESUMABLE_KEYS", "differences", "flatten", "group_choices", "identity"]

# Keys that do not change what a run computes (where the data lies, how it is shown or logged,
# how fast it runs): two configs that differ only in these are the same run.
NEUTRAL_KEYS = (
    "ckpt_path",
    "threads",
    "task_name",
    "paths",
    "logger",
    "callbacks.model_checkpoint",
    "data.data_dir",
    "data.download",
    "data.eval_batch_size",
    "trainer.enable_progress_bar",
    "trainer.steps_per_call",
    "trainer.default_root_dir",
    "study",  # which stage of a study a run belongs to: bookkeeping, not what it computes
    "verbose",
)
# Keys a resume may change: how long the run trains and how it runs, never what it is.
RESUMABLE_KEYS = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.enable_progress_bar",
    "trainer.steps_per_call",
    "threads",
    "verbose",
    "data.data_dir",
    "data.download",
)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"batch_size": 32}}`` -> ``{"data.batch_size": 32}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def differences(
    saved: Mapping[str, Any], wanted: Mapping[str, Any], neutral: Iterable[str] = NEUTRAL_KEYS
) -> dict[str, tuple[Any, Any]]:
    """``key -> (saved value, wanted value)`` for every key, nested or not, whose values differ,
    the ``neutral`` ones left out. A key missing on one side has the value None there."""
    a, b = flatten(saved), flatten(wanted)
    return {
        k: (a.get(k), b.get(k))
        for k in sorted(set(a) | set(b))
        if not _under(k, neutral) and a.get(k) != b.get(k)
    }


def group_choices(choices: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen group configs that make a run what it is (Hydra's own and the logger's left
    out: where a run is logged is not what it computes; so is the experiment, a preset of other
    keys whose values the resolved config holds: the noise study's final and fixed-lr stages
    train the same run when their loss, noise rate, lr and seed agree)."""
    return {
        k: v
        for k, v in choices.items()
        if not k.startswith("hydra") and k not in ("logger", "experiment")
    }


def identity(
    config: Mapping[str, Any], choices: Mapping[str, Any], ignore: Iterable[str] = ()
) -> str:
    """What a run *is*, as one text: its resolved config without the neutral keys, and its chosen
    group configs. Two runs with the same identity compute the same numbers, whatever their
    folders are called: one run (the report, the sweeper and the studies count it once).
    Equal identities are exactly the configs :func:`differences` finds nothing between.
    ``ignore``: more keys to leave out (``seed``: the runs that differ only in their seed)."""
    left_out = (*NEUTRAL_KEYS, *ignore)
    kept = {k: v for k, v in flatten(config).items() if not _under(k, left_out)}
    return json.dumps(
        {"config": kept, "groups": group_choices(choices)}, sort_keys=True, default=str
    )

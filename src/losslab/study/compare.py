"""The comparisons of one arm of a study's verdict (reading half): per family (an arm's metric)
every pair of losses at every value, by seed-paired t-test and TOST, Holm over the family, the
power behind each result and its word (:func:`losslab.read.stats.decide`); and in an arm that
chooses lrs, the rule that a word must point the same way with a loss held at each lr its seeds
kept."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from losslab.read.stats import (
    ALPHA,
    POWER,
    decide,
    detectable_difference,
    holm,
    paired,
    power,
    seeds_to_decide,
    tost,
    tost_power,
)
from losslab.study.catalogue import Catalogue, Metric, StudyError
from losslab.study.selection import Choice

__all__ = ["Cells", "Pinned", "compare"]

Cells = dict[tuple[Any, str], dict[int, Choice]]
Pinned = dict[tuple[Any, str, float], dict[int, Choice]]


def _flags(choices: dict[int, Choice], metric: Metric, cell: dict[str, Any]) -> tuple[bool, bool]:
    """``(near-tie, edge)`` of one loss's cell: stage 2's near-tie; a seed's chosen lr at the
    edge of the tuning grid."""
    grid = cell.get("grid") or []
    edge = bool(grid) and any(c.lrs[metric.name] in (grid[0], grid[-1]) for c in choices.values())
    return bool(cell.get("near_tie")), edge


def compare(
    cells: Cells,
    catalogue: Catalogue,
    metric: Metric,
    candidates: dict,
    clean: bool,
    pinned: Pinned | None = None,
) -> list[dict[str, Any]]:
    """One family of tests: every pair of losses at every value, on ``metric``. With ``pinned``
    (:func:`~losslab.study.selection.choose_pinned`), a word is stated only where it also points
    the same way with either loss held at each lr one of its seeds kept (:func:`_not_held_at`)."""
    rows = _judged(cells, catalogue, metric)
    alpha = ALPHA / max(len(rows), 1)  # the strictest step of Holm's correction
    for r in rows:
        flags = []
        for loss in (r["first"], r["second"]):
            where = catalogue.clean if clean else r["value"]
            choices = cells[(r["value"], loss)]
            flags.append(_flags(choices, metric, (candidates.get(loss) or {}).get(where, {})))
        r["near_tie"], r["edge"] = any(f[0] for f in flags), any(f[1] for f in flags)
        r["not_held_at"] = ""
        if pinned is not None and r["word"] != "inconclusive":
            r["not_held_at"] = _not_held_at(r, cells, pinned, catalogue.margin, metric.name)
            if r["not_held_at"]:
                r["word"] = "inconclusive"
        r["detectable"] = detectable_difference(r["sd"], r["seeds"], alpha, POWER)
        r["seeds_to_decide"] = (
            None
            if r["word"] != "inconclusive" or r["not_held_at"]
            else seeds_to_decide(r["diff"], r["sd"], catalogue.margin, alpha)
        )
    return rows


def _judged(cells: Cells, catalogue: Catalogue, metric: Metric) -> list[dict[str, Any]]:
    """Every pair of losses at every value on ``metric``: the paired test and TOST by seed, Holm
    over the family, the power behind each and its word."""
    rows = []
    for value in sorted({v for v, _ in cells}):
        for first, second in catalogue.pairs():
            a, b = cells.get((value, first)), cells.get((value, second))
            if not a or not b:
                continue
            seeds = sorted(set(a) & set(b))
            if len(seeds) < 2:
                raise StudyError(
                    f"seed: {first} and {second} at {catalogue.key}={value:g} share "
                    f"{len(seeds)} seed(s) ({sorted(a)} and {sorted(b)}); a paired comparison "
                    f"needs at least 2 seeds run with both losses"
                )
            x = [a[s].values[metric.name] for s in seeds]
            y = [b[s].values[metric.name] for s in seeds]
            rows.append(
                {
                    "value": value,
                    "first": first,
                    "second": second,
                    "seeds": len(seeds),
                    **paired(x, y),
                    "p_tost": tost([i - j for i, j in zip(x, y, strict=True)], catalogue.margin),
                }
            )
    for key, adjusted in (("p", "p_holm"), ("p_tost", "p_tost_holm")):
        for row, p in zip(rows, holm([r[key] for r in rows]), strict=True):
            row[adjusted] = p
    alpha = ALPHA / max(len(rows), 1)  # the strictest step of Holm's correction
    for r in rows:
        names = (r["first"], r["second"])
        args = (r["diff"], r["p_holm"], r["p_tost_holm"], names, catalogue.margin)
        r["replication"] = power(r["diff"], r["sd"], r["seeds"], alpha)
        r["replication_tost"] = tost_power(r["diff"], r["sd"], r["seeds"], catalogue.margin, alpha)
        r["word"] = decide(
            *args, metric.higher, metric.word, (r["replication"], r["replication_tost"])
        )
    return rows


def _not_held_at(
    row: dict[str, Any], cells: Cells, pinned: Pinned, margin: float, name: str
) -> str:
    """Where ``row``'s word does not point the same way with every seed of one loss (or of both)
    held at an lr one of its seeds kept — the lrs the data could not tell apart: the mean
    difference there has the other sign (or none) for a better loss, lies outside ``±margin``
    for an equivalence. ``"mae at lr 0.3"``; ``""`` where the word holds at every such lr."""
    value, pair = row["value"], (row["first"], row["second"])
    kept = [sorted({c.lrs[name] for c in cells[(value, loss)].values()}) for loss in pair]
    options = [[None, *lrs] if len(lrs) > 1 else [None] for lrs in kept]  # None: own choice
    for pins in itertools.product(*options):
        held = [(loss, lr) for loss, lr in zip(pair, pins, strict=True) if lr is not None]
        if not held:
            continue
        a, b = (
            cells[(value, loss)] if lr is None else pinned[(value, loss, lr)]
            for loss, lr in zip(pair, pins, strict=True)
        )
        diff = statistics.fmean(
            a[s].values[name] - b[s].values[name] for s in sorted(set(a) & set(b))
        )
        if row["word"].startswith("equivalent"):
            holds = abs(diff) < margin
        else:
            holds = diff * row["diff"] > 0
        if not holds:
            return " and ".join(f"{loss} at lr {lr:g}" for loss, lr in held)
    return ""

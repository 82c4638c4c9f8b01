"""Stage 2 of a study: each loss's candidate lrs at each compared value, from the tuning runs'
validation accuracy (reading half).

The lrs are ranked by their mean final validation accuracy over the tuning seeds (a diverged run
ranks last); the ``top_k`` best are the **candidates** the final seeds choose among
(:mod:`losslab.study.selection`), so which of two close lrs ranks first here decides nothing by
itself. Neither does a close ranking at the cut: every lower-ranked lr that is a near-tie of the
k-th candidate (below) is a candidate too (``tied``), so two lrs the validation images cannot tell
apart are both in or both out, whichever way a machine ranks them. ``tune/candidates.yaml`` holds
them (what the final stage trains), ``tune/candidates.md`` the whole grid.

**Near-tie**, from enough evidence: the best lr and the runner-up are compared on the same
validation images (a seed's validation split is the same for every lr), every tuning seed's
together, 20,000 paired predictions in the fair study. Their difference in accuracy counts as a
near-tie when it is within 1.96 paired (McNemar) standard errors: the validation data cannot tell
them apart. Another seed adds training noise on top, so this is the least the uncertainty can
be; the verdict marks a comparison that rests on a near-tie, and the nested selection carries the
rest. An lr at the edge of the grid among the candidates is flagged too: the best one may lie
outside.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from losslab.names import tag
from losslab.read.tables import markdown_table
from losslab.run.rundir import RunDir
from losslab.study.catalogue import Catalogue, StudyError, stage_file, value_key
from losslab.study.selection import StageRun, grid, stage_runs

__all__ = ["CANDIDATES", "candidate_lr", "choose", "load_candidates", "mcnemar_se"]

CANDIDATES = "candidates.yaml"
Z95 = 1.959963984540054  # two-sided 95%


def mcnemar_se(pairs: list[tuple[list[bool], list[bool]]]) -> tuple[float, float]:
    """``(difference, standard error)`` of the mean over seeds of ``acc(a) - acc(b)``, each seed's
    ``(hits of a, hits of b)`` on the same images: the paired (McNemar) variance of a seed's
    difference is ``((n10 + n01) / n - d**2) / n``, and the seeds are independent.

    Example:
        >>> d, se = mcnemar_se([([1, 1, 0, 1], [1, 0, 0, 1])])
        >>> round(d, 4), round(se, 4)
        (0.25, 0.2165)
    """
    diffs, variance = [], 0.0
    for a, b in pairs:
        n = len(a)
        n10 = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
        n01 = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
        d = (n10 - n01) / n
        diffs.append(d)
        variance += ((n10 + n01) / n - d * d) / n
    s = len(pairs)
    return sum(diffs) / s, math.sqrt(variance) / s


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf


def _near_tie(best: dict[int, StageRun], other: dict[int, StageRun]) -> tuple[bool | None, float]:
    """Whether ``other`` is a near-tie of ``best`` on their validation images (None: no
    predictions were recorded), and the standard error of their difference."""
    pairs = []
    for seed in sorted(set(best) & set(other)):
        a, b = RunDir(best[seed].folder).hits(), RunDir(other[seed].folder).hits()
        if not a or not b or "val" not in a or "val" not in b or len(a["val"]) != len(b["val"]):
            return None, math.nan
        pairs.append((a["val"], b["val"]))
    if not pairs:
        return None, math.nan
    diff, se = mcnemar_se(pairs)
    return diff <= Z95 * se, se


def _cell(by_lr: dict[float, dict[int, StageRun]], top_k: int) -> dict[str, Any]:
    val = tag("acc", "val")
    grid = sorted(by_lr)
    means = {  # a diverged run ranks last, whatever it measured with its non-finite weights
        lr: sum(_finite(r.last(val)) if r.status == "ok" else -math.inf for r in seeds.values())
        / len(seeds)
        for lr, seeds in by_lr.items()
    }
    ranked = sorted(grid, key=lambda lr: (-means[lr], lr))  # a tie: the smaller lr first
    finite = [lr for lr in ranked if math.isfinite(means[lr])]
    candidates = finite[:top_k]
    tied = []  # the cut falls inside a near-tie: the lrs the images cannot tell from the k-th
    if len(candidates) == top_k:
        tied = [lr for lr in finite[top_k:] if _near_tie(by_lr[candidates[-1]], by_lr[lr])[0]]
    candidates += tied
    out: dict[str, Any] = {
        "lrs": candidates,
        "tied": tied,
        "best": ranked[0],
        "val_acc": {lr: means[lr] if math.isfinite(means[lr]) else None for lr in grid},
        "grid": grid,
        "edge": sorted({lr for lr in candidates if lr in (grid[0], grid[-1])}),
        "seeds": sorted(by_lr[ranked[0]]),
        "runner_up": ranked[1] if len(ranked) > 1 else None,
        "margin": None,
        "near_tie": None,
        "se": None,
    }
    if len(ranked) > 1 and math.isfinite(means[ranked[1]]):
        near, se = _near_tie(by_lr[ranked[0]], by_lr[ranked[1]])
        out.update(
            margin=means[ranked[0]] - means[ranked[1]],
            near_tie=near,
            se=None if math.isnan(se) else se,
        )
    return out


def choose(study_dir: Path, catalogue: Catalogue) -> dict[str, dict[Any, dict[str, Any]]]:
    """The candidates of every loss at every value (see the module docstring); writes
    ``candidates.yaml`` and ``candidates.md`` into ``<study_dir>/tune`` and prints the table."""
    tune = Path(study_dir) / "tune"
    runs = stage_runs(tune, catalogue, "tuning")
    no_val = [r.name for r in runs if r.status == "ok" and r.last(tag("acc", "val")) is None]
    if no_val:
        raise StudyError(
            f"data.val_size: the tuning runs {', '.join(no_val[:3])} hold no validation split, "
            f"so no lr can be chosen fairly; tune with data.val_size > 0"
        )
    cells = grid(runs)
    if not cells:
        raise StudyError(f"{tune}: no finished tuning run to choose from")
    chosen: dict[str, dict[Any, dict[str, Any]]] = {}
    for (loss, value), by_lr in sorted(
        cells.items(), key=lambda kv: (catalogue.order(kv[0][0]), kv[0][0], kv[0][1])
    ):
        cell = _cell(by_lr, catalogue.top_k)
        if not cell["lrs"]:
            raise StudyError(
                f"optimizer.lr: every lr of the grid {cell['grid']} diverged for loss={loss} at "
                f"{catalogue.key}={value:g}: add smaller lrs to the grid"
            )
        chosen.setdefault(loss, {})[value] = cell
    _write(tune, chosen, catalogue)
    return chosen


def load_candidates(study_dir: Path) -> dict[str, dict[Any, dict[str, Any]]]:
    """What :func:`choose` wrote for the study in ``study_dir``.

    Raises:
        StudyError: stage 2 has not run.
    """
    file = Path(study_dir) / "tune" / CANDIDATES
    if not file.is_file():
        raise StudyError(
            f"{file}: no such file; the verdict compares each loss at the lrs chosen for it: "
            f"run losslab-study choose {study_dir} first"
        )
    return yaml.safe_load(file.read_text()) or {}


def candidate_lr(loss: str, value: Any, rank: int, file: str) -> float:
    """``${losslab_candidate_lr:<loss>,<value>,<rank>,<tune>/candidates.yaml}``: the lr of this
    rank among the loss's candidates at this value (0: the best); a rank past the last candidate
    names the last one again (the sweeper trains that run once).

    Raises:
        StudyError: no such file, or no candidates for this loss and value there.
    """
    choices = stage_file(file, "no tuning candidates at {path}: run the study's stage 1 first")
    try:
        lrs = choices[str(loss)][value_key(value)]["lrs"]
    except (KeyError, TypeError) as err:
        found = ", ".join(f"{k}: {sorted(v)}" for k, v in choices.items())
        raise StudyError(
            f"optimizer.lr: {file} holds no lr for loss={loss} at {value} (it has: {found})"
        ) from err
    return float(lrs[min(int(rank), len(lrs) - 1)])


def _write(tune: Path, chosen: dict, catalogue: Catalogue) -> None:
    (tune / CANDIDATES).write_text(
        f"# each loss's best {catalogue.top_k} lr(s) per {catalogue.key} on the validation split, "
        f"and any lr tied with the last of them (losslab-study choose)\n"
        + yaml.safe_dump(chosen, sort_keys=False)
    )
    lrs = sorted(
        {lr for cells in chosen.values() for cell in cells.values() for lr in cell["grid"]}
    )
    header = [
        "loss",
        catalogue.label,
        *(f"lr {lr:g}" for lr in lrs),
        "candidates",
        "best - runner-up",
    ]
    body = []
    for loss, cells in chosen.items():
        for value, cell in cells.items():
            shown = []
            for lr in lrs:
                score = cell["val_acc"].get(lr, "-")
                text = "-" if score == "-" else "diverged" if score is None else f"{score:.4f}"
                shown.append(f"**{text}**" if lr in cell["lrs"] else text)
            margin = "-"
            if cell["margin"] is not None:
                se = "" if cell["se"] is None else f" ± {Z95 * cell['se']:.4f}"
                tie = {True: ", near-tie", False: "", None: ""}[cell["near_tie"]]
                margin = f"{cell['margin']:+.4f}{se} vs {cell['runner_up']:g}{tie}"
            edge = " (edge of the grid)" if cell["edge"] else ""
            lrs_text = ", ".join(
                f"{lr:g}" + (" (tied)" if lr in cell.get("tied", ()) else "") for lr in cell["lrs"]
            )
            body.append([loss, f"{value:g}", *shown, lrs_text + edge, margin])
    table = markdown_table(header, body, [True, False, *([False] * len(lrs)), False, True])
    edges = [f"{loss} at {v:g}" for loss, c in chosen.items() for v, x in c.items() if x["edge"]]
    ties = [f"{loss} at {v:g}" for loss, c in chosen.items() for v, x in c.items() if x["near_tie"]]
    notes = [
        f"**A candidate lies on the edge of the grid for {', '.join(edges)}**: the best lr may "
        f"lie outside; widen the grid."
        if edges
        else "Every candidate lies strictly inside the grid.",
        f"Near-ties (best minus runner-up within 1.96 paired standard errors on the same "
        f"validation images: the data cannot tell them apart): {', '.join(ties) if ties else 'none'}. "
        f"Each final seed chooses among the candidates (bold) on its own validation split; "
        f'"(tied)": below the best {catalogue.top_k}, but a near-tie of the last of them, so a '
        f"candidate too.",
    ]
    (tune / "candidates.md").write_text(
        f"# Stage 2: mean final validation accuracy over the tuning seeds, per lr ({tune})\n\n"
        f"{table}\n\n" + "\n\n".join(notes) + "\n"
    )
    print(
        f"{table}\n\n"
        + "\n".join(notes)
        + f"\nlosslab-study: candidates.yaml, candidates.md in {tune}"
    )

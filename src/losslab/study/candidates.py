"""Stage 2 of a study: the lr each loss gets at each compared value, chosen on the validation
split over the tuning seeds, with its margin to the runner-up (reading half)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from losslab.read.stats import summarize
from losslab.read.tables import markdown_table
from losslab.study.catalogue import StudyError, finished_rows, place, value_key

__all__ = ["choose"]


def choose(tune_dir: Path, by: str = "batch_size") -> dict[str, dict[Any, dict[str, Any]]]:
    """Per loss and value of ``by``, the lr chosen on the mean final *validation* accuracy over
    the tuning seeds, the runner-up and the margin between them; writes ``choices.yaml`` and
    ``choices.md`` into ``tune_dir``. Another lr is a **near-tie** of the best mean when their
    difference is not larger than the standard deviation of their per-seed differences: another
    seed, or another machine, could rank them the other way. The choice is then the smallest lr
    of the tied set (see ``_choice``), so that it does not hang on that ranking."""
    tune_dir = Path(tune_dir)
    rows = finished_rows(tune_dir, "tuning")
    missing_val = [r["run"] for r in rows if r["status"] == "ok" and r["val_acc"] is None]
    if missing_val:
        raise StudyError(
            f"data.val_size: the tuning runs {', '.join(missing_val[:3])} hold no validation split, "
            f"so no lr can be chosen fairly; tune with data.val_size > 0"
        )
    grid: dict[tuple[str, Any], dict[float, dict[int, float]]] = {}
    seen: dict[tuple[str, Any, float], dict[int, dict]] = {}
    for r in rows:
        if None in (r["loss"], r[by], r["lr"]):
            continue
        ok = r["status"] == "ok" and r["val_acc"] is not None
        place(
            seen.setdefault((r["loss"], value_key(r[by]), r["lr"]), {}),
            r["seed"],
            r,
            by,
            f"loss, {by} and lr",
        )
        cell = grid.setdefault((r["loss"], value_key(r[by])), {})
        cell.setdefault(r["lr"], {})[r["seed"]] = r["val_acc"] if ok else -math.inf
    if not grid:
        raise StudyError(f"{tune_dir}: no finished tuning run to choose from")
    choices: dict[str, dict[Any, dict[str, Any]]] = {}
    for (loss, value), by_lr in sorted(grid.items()):
        if all(math.isinf(v) for seeds in by_lr.values() for v in seeds.values()):
            raise StudyError(
                f"optimizer.lr: every lr of the grid {sorted(by_lr)} diverged for loss={loss} at "
                f"{by}={value:g}: add smaller lrs to the grid"
            )
        choices.setdefault(loss, {})[value] = _choice(by_lr)
    _write_choices(tune_dir, choices, grid, by)
    return choices


def _choice(by_lr: dict[float, dict[int, float]]) -> dict[str, Any]:
    """The best mean lr, unless other lrs are within the seeds' noise of it (near-ties): then
    the smallest of them, the most cautious setting the data cannot tell from the best (the
    "one-standard-error rule"). Which of two tied lrs has the higher mean is up to noise, and
    differs from machine to machine; the smallest of the tied set does not."""
    lrs = sorted(by_lr)
    scores = {lr: sum(v.values()) / len(v) for lr, v in by_lr.items()}
    ranked = sorted(lrs, key=lambda lr: (-scores[lr], lr))  # an exact tie: the smaller lr first
    best = ranked[0]
    spreads = {lr: _spread(by_lr[best], by_lr[lr]) for lr in ranked[1:]}
    tied = [
        lr
        for lr in ranked[1:]
        if math.isfinite(scores[lr])
        and spreads[lr] is not None
        and scores[best] - scores[lr] <= spreads[lr]
    ]
    chosen = min([best, *tied])
    others = [lr for lr in ranked if lr != chosen]
    runner = others[0] if others else None  # the strongest lr not chosen
    out: dict[str, Any] = {
        "lr": chosen,
        "best_mean_lr": best,
        "val_acc": scores[chosen] if math.isfinite(scores[chosen]) else None,
        "inside_grid": lrs[0] < min(chosen, best) and max(chosen, best) < lrs[-1],
        "grid": lrs,
        "seeds": sorted(by_lr[chosen]),
        "runner_up": runner,
        "margin": None,
        "near_tie": None,
    }
    if runner is not None and math.isfinite(scores[runner]):
        noise_known = any(s is not None for s in spreads.values())  # more than one seed
        out.update(
            margin=scores[chosen] - scores[runner], near_tie=bool(tied) if noise_known else None
        )
    elif runner is not None:
        out.update(margin=math.inf, near_tie=False)
    return out


def _spread(a: dict[int, float], b: dict[int, float]) -> float | None:
    """The standard deviation of the per-seed differences of two lrs (None from one seed)."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    if not all(math.isfinite(d) for d in diffs):
        return None
    return summarize(diffs)["std"]


def _write_choices(tune_dir: Path, choices: dict, grid: dict, by: str) -> None:
    (tune_dir / "choices.yaml").write_text(
        f"# lr chosen on the validation split per loss and {by} (losslab-study choose)\n"
        + yaml.safe_dump(choices, sort_keys=True)
    )
    lrs = sorted({lr for cell in grid.values() for lr in cell})
    header = ["loss", by.replace("_", " "), *(f"lr {lr:g}" for lr in lrs), "chosen lr", "margin"]
    body = []
    for (loss, value), by_lr in sorted(grid.items()):
        choice = choices[loss][value]
        cells = []
        for lr in lrs:
            values = list(by_lr.get(lr, {}).values())
            score = sum(values) / len(values) if values else None
            text = (
                "-" if score is None else "diverged" if not math.isfinite(score) else f"{score:.4f}"
            )
            cells.append(f"**{text}**" if lr == choice["lr"] else text)
        edge = "" if choice["inside_grid"] else " (edge of the grid!)"
        margin = choice["margin"]
        shown = "-" if margin is None else "∞" if math.isinf(margin) else f"{margin:+.4f}"
        tie = {True: " near-tie", False: "", None: " (1 seed: noise unknown)"}[choice["near_tie"]]
        if choice["lr"] != choice["best_mean_lr"]:
            tie += ": the smaller lr"
        body.append(
            [
                loss,
                f"{value:g}",
                *cells,
                f"{choice['lr']:g}{edge}",
                f"{shown} vs {choice['runner_up']:g}{tie}" if choice["runner_up"] else "-",
            ]
        )
    table = markdown_table(header, body, [True, False, *([False] * len(lrs)), False, True])
    edges = [
        f"{loss} at {v:g}"
        for loss, c in choices.items()
        for v, x in c.items()
        if not x["inside_grid"]
    ]
    ties = [
        f"{loss} at {v:g}" for loss, c in choices.items() for v, x in c.items() if x["near_tie"]
    ]
    notes = [
        f"**The best lr lies on the edge of the grid for {', '.join(edges)}**: widen the grid."
        if edges
        else "Every chosen lr lies strictly inside the grid.",
        f"Near-ties (another lr is within the seed-to-seed spread of its difference to the best "
        f"mean, so another seed or machine could rank them the other way; the smallest of the "
        f"tied lrs is chosen): {', '.join(ties) if ties else 'none'}.",
    ]
    (tune_dir / "choices.md").write_text(
        f"# Stage 1: mean final validation accuracy over the tuning seeds, per lr ({tune_dir})\n\n"
        f"{table}\n\n" + "\n\n".join(notes) + "\n"
    )
    print(
        f"{table}\n\n"
        + "\n".join(notes)
        + f"\nlosslab-study: choices.yaml, choices.md in {tune_dir}"
    )

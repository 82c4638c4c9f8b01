"""Stage 4 of a study, its verdict: each loss at its chosen lr, compared on the test set by
seed-paired tests, Holm over each table, equivalence (TOST) within the margin, the detectable
difference and the seeds that would decide (reading half: it reads run folders only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from losslab.read.figures import plot_noise, plot_reliability, pooled_bins
from losslab.read.stats import (
    ALPHA,
    POWER,
    decide,
    detectable_difference,
    holm,
    paired,
    seeds_to_decide,
    summarize,
    tost,
)
from losslab.read.tables import markdown_table, mean_ci, write_csv
from losslab.run.rundir import RunDir
from losslab.study.catalogue import (
    FAIR,
    MARGIN,
    NOISE,
    Protocol,
    StudyError,
    check_margin,
    finished_rows,
    load_choices,
    place,
    value_key,
)

__all__ = ["verdict"]


def _cells(
    study_dir: Path, protocol: Protocol, choices_file: Path, choices: dict
) -> dict[tuple[Any, str], dict[int, dict]]:
    """``(value of by, loss) -> {seed: row}`` of the final runs (a diverged run counts, with the
    accuracy it last measured: leaving it out would flatter its loss), each checked against
    ``tune/choices.yaml``: a run trained with another lr than the current choice is stale."""
    cells: dict[tuple[Any, str], dict[int, dict]] = {}
    for r in finished_rows(study_dir / "final", "final"):
        value = value_key(r[protocol.by])
        chosen = (choices.get(r["loss"]) or {}).get(value, {}).get("lr")
        if chosen is None:
            raise StudyError(
                f"{r['folder']}: {choices_file} holds no lr for loss={r['loss']} at "
                f"{protocol.by}={value}: run the tuning stage for it (losslab-study run) first"
            )
        if chosen != r["lr"]:
            raise StudyError(
                f"{r['folder']}: trained with optimizer.lr={r['lr']:g}, but {choices_file} now "
                f"chooses {chosen:g}: run the final stage again (losslab-study run resumes it) "
                f"before the verdict"
            )
        missing = [m for m, _ in protocol.metrics if not _finite(r[m])]
        if missing:
            raise StudyError(f"{r['folder']}: holds no {missing[0]} (acc/test curve) to compare")
        place(
            cells.setdefault((value, r["loss"]), {}),
            r["seed"],
            r,
            protocol.by,
            f"loss and {protocol.by}",
        )
    few = {k: len(v) for k, v in cells.items() if len(v) < 2}
    if not cells or few:
        found = (
            ", ".join(f"{loss} at {v:g}: {n}" for (v, loss), n in sorted(few.items())) or "no run"
        )
        raise StudyError(
            f"seed: the verdict needs at least 2 finished seeds per loss and {protocol.by} (e.g. "
            f"seed=0,1,2,3,4) to give a spread; found {found}"
        )
    return cells


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _compare(
    cells: dict, protocol: Protocol, metric: str, margin: float, ties: dict
) -> list[dict[str, Any]]:
    """One family of tests: every pair of losses at every value of ``by``, on ``metric``."""
    rows = []
    for value in sorted({v for v, _ in cells}):
        for first, second in protocol.pairs:
            a, b = cells.get((value, first)), cells.get((value, second))
            if not a or not b:
                continue
            seeds = sorted(set(a) & set(b))
            if len(seeds) < 2:
                raise StudyError(
                    f"seed: {first} and {second} at {protocol.by}={value:g} share "
                    f"{len(seeds)} seed(s) ({sorted(a)} and {sorted(b)}); a paired comparison "
                    f"needs at least 2 seeds run with both losses"
                )
            x, y = [a[s][metric] for s in seeds], [b[s][metric] for s in seeds]
            differences = [i - j for i, j in zip(x, y, strict=True)]
            rows.append(
                {
                    protocol.by: value,
                    "first": first,
                    "second": second,
                    "seeds": len(seeds),
                    **paired(x, y),
                    "p_tost": tost(differences, margin),
                    "lr_ratio": b[seeds[0]]["lr"] / a[seeds[0]]["lr"],
                    "near_tie": bool(ties.get((first, value)) or ties.get((second, value))),
                }
            )
    for key, adjusted in (("p", "p_holm"), ("p_tost", "p_tost_holm")):
        for row, p in zip(rows, holm([r[key] for r in rows]), strict=True):
            row[adjusted] = p
    alpha = ALPHA / max(len(rows), 1)  # the strictest step of Holm's correction
    for r in rows:
        r["word"] = decide(
            r["diff"], r["p_holm"], r["p_tost_holm"], (r["first"], r["second"]), margin
        )
        r["detectable"] = detectable_difference(r["sd"], r["seeds"], alpha, POWER)
        decided = r["word"] != "inconclusive"
        r["seeds_to_decide"] = (
            None if decided else seeds_to_decide(r["diff"], r["sd"], margin, alpha)
        )
    return rows


def verdict(study_dir: Path, protocol: Protocol = FAIR, margin: float = MARGIN) -> list[dict]:
    """The verdict of a study folder's final stage (see the module docstring); writes
    ``verdict.md``, ``verdict.csv`` (the comparisons), ``losses.csv`` (each loss's mean ± CI)
    and a figure into ``study_dir``; returns the comparison rows."""
    check_margin(margin)
    study_dir = Path(study_dir)
    choices_file, choices = load_choices(study_dir)
    cells = _cells(study_dir, protocol, choices_file, choices)
    ties = {(loss, v): c.get("near_tie") for loss, by_v in choices.items() for v, c in by_v.items()}
    losses = sorted({loss for _, loss in cells}, key=lambda x: ({"cee": 0, "sse": 1}.get(x, 2), x))
    per_loss = []
    for value, loss in sorted(cells, key=lambda k: (k[0], losses.index(k[1]))):
        members = list(cells[(value, loss)].values())
        row = {
            protocol.by: value,
            "loss": loss,
            "lr": members[0]["lr"],
            "n": len(members),
            "diverged": sorted(x["run"] for x in members if x["status"] == "diverged"),
        }
        for m in ("test_acc", "test_at_best", "test_ece", "test_nll"):
            row[m] = summarize([x[m] for x in members])
        per_loss.append(row)
    families = {m: _compare(cells, protocol, m, margin, ties) for m, _ in protocol.metrics}
    _write(study_dir, protocol, per_loss, families, margin)
    if protocol is NOISE:
        lines = {
            label: {
                loss: [(r[protocol.by], r[m]) for r in per_loss if r["loss"] == loss]
                for loss in losses
            }
            for m, label in (("test_acc", "last epoch"), ("test_at_best", "early-stopped"))
        }
        plot_noise(lines, study_dir / "noise.png")
    else:
        panels = {
            value: {
                loss: pooled_bins(
                    [RunDir(r["folder"]).reliability() for r in cells[(value, loss)].values()]
                )
                for loss in losses
                if (value, loss) in cells
            }
            for value in sorted({v for v, _ in cells})
        }
        plot_reliability(
            panels,
            "Reliability of the final models on the test set (seeds pooled)",
            study_dir / "reliability.png",
        )
    return [r for rows in families.values() for r in rows]


def _family_table(rows: Sequence[dict], by: str, margin: float) -> str:
    header = [
        by.replace("_", " "),
        "comparison",
        "n",
        "difference",
        "95% CI (paired)",
        "p",
        "p Holm",
        "p TOST Holm",
        "verdict",
        f"detectable ({POWER:.0%} power)",
        "seeds to decide",
    ]
    body = [
        [
            f"{r[by]:g}",
            f"{r['first']} - {r['second']}" + (" (lr near-tie)" if r["near_tie"] else ""),
            str(r["seeds"]),
            f"{r['diff']:+.4f}",
            f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
            f"{r['p']:.3g}",
            f"{r['p_holm']:.3g}",
            f"{r['p_tost_holm']:.3g}",
            r["word"],
            "-" if math.isnan(r["detectable"]) else f"{r['detectable']:.4f}",
            "-" if r["word"] != "inconclusive" else str(r["seeds_to_decide"] or "> 10000"),
        ]
        for r in rows
    ]
    return markdown_table(
        header, body, [False, True, False, False, False, False, False, False, True, False, False]
    )


def _write(
    study_dir: Path, protocol: Protocol, per_loss: list, families: dict, margin: float
) -> None:
    by = protocol.by
    metrics = ["test_acc", "test_at_best"] if protocol is NOISE else ["test_acc"]
    header = [
        by.replace("_", " "),
        "loss",
        "chosen lr",
        "n",
        *("test acc (last)" if m == "test_acc" else "test acc (early-stopped)" for m in metrics),
        "test ECE",
        "test NLL",
    ]
    body = [
        [
            f"{r[by]:g}",
            r["loss"],
            f"{r['lr']:g}",
            str(r["n"]),
            *(mean_ci(r[m]) for m in metrics),
            mean_ci(r["test_ece"]),
            mean_ci(r["test_nll"]),
        ]
        for r in per_loss
    ]
    table = markdown_table(header, body, [False, True] + [False] * (len(header) - 2))
    sections = [
        f"### {label}\n\n{_family_table(families[m], by, margin)}" for m, label in protocol.metrics
    ]
    figure = "noise.png" if protocol is NOISE else "reliability.png"
    diverged = [run for r in per_loss for run in r["diverged"]]
    text = f"""# losslab study: the verdict ({study_dir}): {protocol.title}

Each loss at the lr chosen for it on the validation split (`tune/choices.md`), trained with every
seed and measured on the **test** set. Cells: mean ± half-width of the 95% confidence interval
(Student's t), sd = standard deviation over the seeds, n = seeds.

{table}

Final runs that diverged (counted with the accuracy they last measured; leaving them out would
flatter their loss): {", ".join(diverged) if diverged else "none"}.

## Comparisons

Seed k gives every loss the same initial weights and the same batch order, so the runs are
paired by seed: each difference (first loss minus second, in test accuracy) comes with its paired
95% CI and the two-sided p of the paired t-test (`scipy.stats.ttest_rel`). Each table below is a
family: its p-values are Holm-adjusted, and so are those of the equivalence tests (TOST, margin
±{100 * margin:g} accuracy points, fixed before the runs). Verdict: **equivalent within the
margin** when TOST's adjusted p < {ALPHA}; else **<loss> better** when the paired test's adjusted
p < {ALPHA}; else **inconclusive**. "Detectable" is the smallest true difference this design finds
with {POWER:.0%} power at the strictest Holm level ({ALPHA} / number of tests); "seeds to decide"
is how many seeds would decide an inconclusive comparison if the observed difference and spread
held. "(lr near-tie)": for one of the two losses another lr did as well within the seeds' noise
(the smallest of such tied lrs is the one chosen, `tune/choices.md`).

{(chr(10) * 2).join(sections)}

![figure]({figure})
"""
    (study_dir / "verdict.md").write_text(text)
    fields = [
        by,
        "first",
        "second",
        "seeds",
        "diff",
        "sd",
        "ci_low",
        "ci_high",
        "p",
        "p_holm",
        "p_tost",
        "p_tost_holm",
        "word",
        "detectable",
        "seeds_to_decide",
        "lr_ratio",
        "near_tie",
    ]
    write_csv(
        [r | {"metric": m} for m, rows in families.items() for r in rows],
        ["metric", *fields],
        study_dir / "verdict.csv",
    )
    flat = [
        {
            by: r[by],
            "loss": r["loss"],
            "lr": r["lr"],
            "n": r["n"],
            **{
                f"{m}_{k}": r[m][k]
                for m in ("test_acc", "test_at_best", "test_ece", "test_nll")
                for k in ("mean", "std", "ci_low", "ci_high")
            },
        }
        for r in per_loss
    ]
    write_csv(flat, list(flat[0]), study_dir / "losses.csv")
    print(
        f"{table}\n\n"
        + "\n\n".join(sections)
        + f"\n\nlosslab-study: verdict.md, verdict.csv, losses.csv, {figure} in {study_dir}"
    )

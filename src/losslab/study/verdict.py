"""The last stage of a study, its verdict (reading half: it reads run folders only): in each arm,
every seed's own choice (:mod:`losslab.study.selection`), then each pair of losses compared at
each value on each metric (:mod:`losslab.study.compare`: seed-paired tests, Holm over each
family, TOST within the margin, the detectable difference and the seeds that would decide; in the
tuned arm a word must also hold with a loss held at each lr its seeds kept); written as
``verdict.md``, ``verdict.csv``, ``losses.csv`` and the figures. What is compared, how and in
which order comes from the study's catalogue alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from losslab.read.figures import Series, ValuePanel, plot_noise, plot_reliability, pooled_bins
from losslab.read.stats import ALPHA, POWER, summarize
from losslab.read.tables import markdown_table, mean_ci, write_csv
from losslab.run.rundir import RunDir
from losslab.study.candidates import load_candidates
from losslab.study.catalogue import ARMS, REPORTED, Catalogue, Metric, StudyError
from losslab.study.compare import Cells, compare
from losslab.study.selection import (
    Choice,
    StageRun,
    check_lrs,
    choose_per_seed,
    choose_pinned,
    stage_runs,
)
from losslab.study.views import views_text

__all__ = ["verdict"]


def _cells(runs: list[StageRun], catalogue: Catalogue, metrics: list[Metric]) -> Cells:
    cells = choose_per_seed(runs, metrics)
    missing = [(run.folder, m.name) for run in runs for m in metrics if run.last(m.curve) is None]
    if missing:
        folder, name = missing[0]
        raise StudyError(f"{folder}: holds no {name} curve to compare")
    few = {k: len(v) for k, v in cells.items() if len(v) < 2}
    if not cells or few:
        found = (
            ", ".join(f"{loss} at {v:g}: {n}" for (v, loss), n in sorted(few.items())) or "no run"
        )
        raise StudyError(
            f"seed: the verdict needs at least 2 finished seeds per loss and {catalogue.key} (e.g. "
            f"seed=0,1,2,3,4) to give a spread; found {found}"
        )
    return cells


def _lrs(choices: dict[int, Choice], name: str) -> str:
    """The lrs the seeds chose, ``0.1`` (all of them) or ``0.1 (3 seeds), 0.3 (2 seeds)``."""
    counts: dict[float, int] = {}
    for choice in choices.values():
        counts[choice.lrs[name]] = counts.get(choice.lrs[name], 0) + 1
    return ", ".join(
        f"{lr:g}" + (f" ({n} seed{'s' * (n > 1)})" if len(counts) > 1 else "")
        for lr, n in sorted(counts.items())
    )


def _per_loss(cells: Cells, catalogue: Catalogue, metrics: list[Metric]) -> list[dict[str, Any]]:
    rows = []
    first = metrics[0].name  # the reported numbers are the first metric's runs (the last epoch)
    for value, loss in sorted(cells, key=lambda k: (k[0], catalogue.order(k[1]), k[1])):
        choices = cells[(value, loss)]
        row: dict[str, Any] = {
            "value": value,
            "loss": loss,
            "lrs": _lrs(choices, first),
            "n": len(choices),
            "diverged": sorted(
                {c.runs[first].name for c in choices.values() if c.runs[first].status == "diverged"}
            ),
        }
        for m in metrics:
            row[m.name] = summarize([c.values[m.name] for c in choices.values()])
        for name, curve in REPORTED.items():
            row[name] = summarize([c.runs[first].last(curve) for c in choices.values()])
        rows.append(row)
    return rows


def verdict(study_dir: Path, catalogue: Catalogue | None = None) -> list[dict[str, Any]]:
    """The verdict of the study in ``study_dir`` (its saved catalogue unless one is given):
    writes ``verdict.md``, ``verdict.csv`` (every comparison, with its arm and metric),
    ``losses.csv`` (each loss's numbers) and the figures; returns the comparison rows."""
    study_dir = Path(study_dir)
    catalogue = catalogue or Catalogue.load(study_dir)
    candidates = load_candidates(study_dir)
    arms = []
    for name in catalogue.arms:
        arm, metrics = ARMS[name], catalogue.arm_metrics(name)
        runs = stage_runs(study_dir / arm.stage, catalogue, arm.stage)
        check_lrs(runs, name, study_dir, candidates)
        cells = _cells(runs, catalogue, metrics)
        # the fixed arm chooses no lr at its values: each seed holds the one it chose when clean
        pinned = None if name == "fixed" else choose_pinned(runs, metrics)
        families = {
            m.name: [
                {"arm": name, "metric": m.name, **r}
                for r in compare(cells, catalogue, m, candidates, name == "fixed", pinned)
            ]
            for m in metrics
        }
        arms.append((arm, metrics, cells, _per_loss(cells, catalogue, metrics), families))
    _write(study_dir, catalogue, arms)
    _figures(study_dir, catalogue, arms)
    return [r for *_, families in arms for rows in families.values() for r in rows]


def _shown(r: dict[str, Any]) -> str:
    notes = [
        n for n, on in (("lr near-tie", r["near_tie"]), ("lr at the grid's edge", r["edge"])) if on
    ]
    if r.get("not_held_at"):
        notes.append(f"not held with {r['not_held_at']}")
    return f"{r['first']} - {r['second']}" + (f" ({', '.join(notes)})" if notes else "")


def _family_table(rows: Sequence[dict], catalogue: Catalogue) -> str:
    header = [
        catalogue.label,
        "comparison",
        "n",
        "difference",
        "95% CI (paired)",
        "p",
        "p Holm",
        "p TOST Holm",
        "again",
        "verdict",
        f"detectable ({POWER:.0%} power)",
        "seeds to decide",
    ]
    body = [
        [
            f"{r['value']:g}",
            _shown(r),
            str(r["seeds"]),
            f"{r['diff']:+.4f}",
            f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
            f"{r['p']:.3g}",
            f"{r['p_holm']:.3g}",
            f"{r['p_tost_holm']:.3g}",
            _again(r),
            f"**{r['word']}**",
            "-" if math.isnan(r["detectable"]) else f"{r['detectable']:.4f}",
            "-"
            if r["word"] != "inconclusive" or r.get("not_held_at")
            else str(r["seeds_to_decide"] or "> 10000"),
        ]
        for r in rows
    ]
    return markdown_table(header, body, [False, True, *([False] * 7), True, False, False])


def _again(r: dict[str, Any]) -> str:
    """The chance the design reaches the significant result again (of the equivalence when
    TOST's adjusted p is below alpha, else of the difference), "-" when neither is significant."""
    if r["p_tost_holm"] < ALPHA:
        return f"{r['replication_tost']:.0%}"
    return f"{r['replication']:.0%}" if r["p_holm"] < ALPHA else "-"


def _loss_table(rows: list[dict[str, Any]], catalogue: Catalogue, metrics: list[Metric]) -> str:
    header = [catalogue.label, "loss", "lr chosen by the seeds", "n", *(m.short for m in metrics)]
    header += ["test ECE", "test NLL"]
    body = [
        [f"{r['value']:g}", r["loss"], r["lrs"], str(r["n"])]
        + [mean_ci(r[m.name]) for m in metrics]
        + [mean_ci(r["test_ece"]), mean_ci(r["test_nll"])]
        for r in rows
    ]
    return markdown_table(header, body, [False, True, True] + [False] * (len(header) - 3))


def _write(study_dir: Path, catalogue: Catalogue, arms: list) -> None:
    sections, printed = [], []
    for arm, metrics, _, per_loss, families in arms:
        table = _loss_table(per_loss, catalogue, metrics)
        diverged = [run for r in per_loss for run in r["diverged"]]
        tests = "\n\n".join(
            f"#### {m.label}\n\n{_family_table(families[m.name], catalogue)}" for m in metrics
        )
        sections.append(
            f"## Arm `{arm.name}`: {arm.title} ({arm.stage}/)\n\n{table}\n\nFinal runs that "
            f"diverged (counted with the value they last measured; leaving them out would flatter "
            f"their loss): {', '.join(diverged) if diverged else 'none'}.\n\n### Comparisons\n\n{tests}"
        )
        printed += [f"arm {arm.name}", table, tests]
    text = f"""# losslab study: the verdict ({study_dir})

The losses {", ".join(catalogue.losses)} compared at each {catalogue.label} ({catalogue.key}),
{"each against " + catalogue.reference if catalogue.reference else "every pair"}. Cells: mean ±
half-width of the 95% confidence interval (Student's t), sd = standard deviation over the seeds,
n = seeds. In the `tuned` arm each final seed trained the best {catalogue.top_k} lr(s) of stage 2
and any lr tied with the last of them (`tune/candidates.md`), and
keeps the run its own validation split prefers (the last epoch's validation accuracy; for the
early-stopped numbers, the run and epoch with the best one): the choice is part of what the
seeds replicate, and test chooses nothing. Where a loss's seeds kept different lrs, the data
could not tell those lrs apart, and a word must not rest on how many seeds went which way: it is
stated only if the mean difference also points its way with every seed of that loss held at each
of them (early stopping still choosing the epoch; for an equivalence, stays within the margin);
where it does not, the word is **inconclusive** and the comparison says "(not held with *loss* at
lr *x*)".

Seed k gives every loss the same initial weights and the same batch order, so the runs are paired
by seed: each difference (first loss minus second) comes with its paired 95% CI and the two-sided
p of the paired t-test (`scipy.stats.ttest_rel`). Each table of comparisons is a family: its
p-values are Holm-adjusted, and so are those of the equivalence tests (TOST, margin
±{100 * catalogue.margin:g} points, fixed before the runs). Verdict: **equivalent within the
margin** when TOST's adjusted p < {ALPHA}; else **the better loss** when the paired test's adjusted
p < {ALPHA}; else **inconclusive** — and a significant result is stated only when it would come
out again: "again" is the power of its test at the observed difference and spread (at the
strictest Holm level, {ALPHA} / number of tests), the chance that the same design on new noise —
other seeds, or another machine's rounding — reaches it again; below {POWER:.0%} the word is
**inconclusive**. "Detectable" is the smallest true difference this design finds with {POWER:.0%}
power at that level; "seeds to decide" is how many seeds would decide an inconclusive comparison
if the observed difference and spread held. "(lr near-tie)": stage 2 could not tell one loss's two best lrs apart on the validation
images; "(lr at the grid's edge)": a seed chose an lr at the edge of the tuning grid (a better one
may lie outside it).

{(chr(10) * 2).join(sections)}

{_figure_links(catalogue)}
"""
    views = views_text(study_dir, catalogue)
    if views:
        text += f"\n## TensorBoard\n\n```\n{views}\n```\n"
    (study_dir / "verdict.md").write_text(text)
    fields = [
        "arm", "metric", "value", "first", "second", "seeds", "diff", "sd", "ci_low", "ci_high",
        "p", "p_holm", "p_tost", "p_tost_holm", "replication", "replication_tost", "word",
        "detectable", "seeds_to_decide", "near_tie", "edge", "not_held_at",
    ]  # fmt: skip
    write_csv(
        [r for *_, families in arms for rows in families.values() for r in rows],
        fields,
        study_dir / "verdict.csv",
    )
    flat = [
        {
            "arm": arm.name,
            "value": r["value"],
            "loss": r["loss"],
            "lrs": r["lrs"],
            "n": r["n"],
            **{
                f"{m}_{k}": r[m][k]
                for m in (*(x.name for x in metrics), *REPORTED)
                for k in ("mean", "std", "ci_low", "ci_high")
            },
        }
        for arm, metrics, _, per_loss, _ in arms
        for r in per_loss
    ]
    write_csv(flat, list(dict.fromkeys(k for r in flat for k in r)), study_dir / "losses.csv")
    print(
        "\n\n".join([*printed, *([views] if views else [])])
        + f"\n\nlosslab-study: verdict.md, verdict.csv, losses.csv in {study_dir}"
    )


def _figure_links(catalogue: Catalogue) -> str:
    if "fixed" in catalogue.arms or catalogue.clean is not None:
        return "![test accuracy against the compared value](noise.png)"
    return "![reliability of the final models](reliability.png)"


def _figures(study_dir: Path, catalogue: Catalogue, arms: list) -> None:
    if catalogue.clean is not None:  # a noise-like study: each arm's metrics against the value
        arms_said = "; ".join(f"{arm.name}: {arm.title}" for arm, *_ in arms)
        plot_noise(
            _value_panels(catalogue, arms), catalogue.label, study_dir / "noise.png", arms_said
        )
        return
    _, metrics, cells, _, _ = arms[0]
    first = metrics[0].name
    panels = {
        value: {
            loss: pooled_bins(
                [RunDir(c.runs[first].folder).reliability() for c in cells[(value, loss)].values()]
            )
            for loss in catalogue.losses
            if (value, loss) in cells
        }
        for value in sorted({v for v, _ in cells})
    }
    plot_reliability(
        panels,
        "Reliability of the final models on the test set (seeds pooled)",
        study_dir / "reliability.png",
        catalogue.label,
    )


def _value_panels(catalogue: Catalogue, arms: list) -> list[ValuePanel]:
    """Per arm (in the study's order), a panel per curve its metrics read: the test accuracy
    (last epoch and early-stopped in one panel), then memorization; each seed's value."""
    panels = []
    for arm, metrics, cells, _, _ in arms:
        for curve in dict.fromkeys(m.curve for m in metrics):
            same = [m for m in metrics if m.curve == curve]
            what = same[0].axis.split(":")[0]
            panel = ValuePanel(f"{arm.name} arm: {what}", curve, same[0].axis)
            for m in same:
                for loss in catalogue.losses:
                    points = {
                        value: [c.values[m.name] for c in cells[(value, lo)].values()]
                        for value, lo in sorted(cells)
                        if lo == loss
                    }
                    if points:
                        panel.series.append(Series(loss, m.when, points))
            panels.append(panel)
    return panels

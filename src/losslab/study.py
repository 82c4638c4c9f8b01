"""``losslab-study``: the fair SSE vs CEE verdict in one command (``make study``).

The protocol (``docs`` of the method: GUIDE section 3, README "The fair verdict"):

1. **tune** (``losslab-train experiment=study_tune``): every loss x batch size over a log-spaced
   lr grid, 5 epochs, one seed, on a training split with 10,000 images held out for validation;
2. **choose** (``losslab-study choose <dir>/tune``): per loss and batch size, the lr with the best
   final *validation* accuracy, written to ``<dir>/tune/choices.yaml`` (and ``choices.md``, the
   validation accuracy of every grid point; a best lr on the edge of the grid is flagged);
3. **final** (``losslab-train experiment=study_final``): every loss x batch size at its chosen lr,
   read from ``choices.yaml``, 5 seeds, reported on the *test* set;
4. **verdict** (``losslab-study verdict <dir>``): per batch size, each loss's test accuracy, ECE
   and NLL as mean ± 95% CI over the seeds, its chosen lr, the ratio of chosen lrs SSE / CEE next
   to the C = 10 the gradient analysis predicts, and the difference CEE - other loss in test
   accuracy with its 95% CI and p-value from **Welch's t-test** (unequal variances,
   ``scipy.stats.ttest_ind(equal_var=False)``). Writes ``verdict.md``, ``verdict.csv`` and
   ``reliability.png`` (confidence vs accuracy per bin, one line per loss, the seeds pooled).

Each stage reads the previous one's files, so an interrupted study started again with the same
command and folder goes on where it stopped: the sweeper skips the jobs that finished.

    losslab-study run                              # everything, into logs/study
    losslab-study run --dir logs/s2 --losses cee,sse --batch-sizes 100 --seeds 0,1,2 \\
        trainer.max_epochs=3                       # any losslab-train override goes to every run
    losslab-study choose logs/study/tune
    losslab-study verdict logs/study
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from scipy import stats

from losslab.report import markdown_table, mean_ci, read_runs, summarize

__all__ = ["choose", "main", "run", "verdict"]

NUM_CLASSES = 10  # the C of the gradient analysis: g_SSE = g_CEE / C at a uniform start
# verdict.csv's second table: one row per batch size and loss compared with CEE
COMPARISON_FIELDS = [
    "batch_size",
    "versus",
    "lr_ratio",
    "cee_minus_other",
    "ci_low",
    "ci_high",
    "p_welch",
    "excludes_zero",
]


class StudyError(ValueError):
    """A bad study setting or an incomplete stage: one line naming the key."""


def _stage_runs(folder: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        raise StudyError(f"{folder}: no such folder; run the stage that writes it first")
    return [r.row | {"folder": folder / r.name} for r in read_runs(folder)]


# -- stage 2: choose ----------------------------------------------------------------------------


def choose(tune_dir: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """Per loss and batch size, the lr whose runs reached the best mean final validation
    accuracy; writes ``choices.yaml`` and ``choices.md`` into ``tune_dir``."""
    tune_dir = Path(tune_dir)
    rows = _stage_runs(tune_dir)
    missing_val = [r["run"] for r in rows if r["status"] == "ok" and r["val_acc"] is None]
    if missing_val:
        raise StudyError(
            f"data.val_size: the tuning runs {', '.join(missing_val[:3])} hold no validation split, "
            f"so no lr can be chosen fairly; tune with data.val_size > 0"
        )
    grid: dict[tuple[str, int], dict[float, list[float]]] = {}
    for r in rows:
        if r["loss"] is None or r["batch_size"] is None or r["lr"] is None:
            continue
        cell = grid.setdefault((r["loss"], r["batch_size"]), {})
        ok = r["status"] == "ok" and r["val_acc"] is not None
        cell.setdefault(r["lr"], []).append(r["val_acc"] if ok else -math.inf)  # diverged: worst
    if not grid:
        raise StudyError(f"{tune_dir}: no finished tuning run to choose from")
    choices: dict[str, dict[int, dict[str, Any]]] = {}
    for (loss, batch_size), by_lr in sorted(grid.items()):
        lrs = sorted(by_lr)
        scores = {lr: sum(v) / len(v) for lr, v in by_lr.items()}
        best = max(lrs, key=lambda lr: (scores[lr], -lr))  # a tie goes to the smaller lr
        choices.setdefault(loss, {})[batch_size] = {
            "lr": best,
            "val_acc": scores[best] if math.isfinite(scores[best]) else None,
            "inside_grid": lrs[0] < best < lrs[-1],
            "grid": lrs,
        }
    _write_choices(tune_dir, choices, grid)
    return choices


def _write_choices(tune_dir: Path, choices: dict, grid: dict) -> None:
    file = tune_dir / "choices.yaml"
    final_dir = tune_dir.parent / "final"
    if (
        file.is_file()
        and yaml.safe_load(file.read_text()) != choices
        and any(final_dir.glob("*/.hydra"))
    ):
        raise StudyError(
            f"{file}: the tuning results changed, but {final_dir} already holds final runs trained "
            f"with the old choices; remove {final_dir} or study into a new --dir"
        )
    file.write_text(
        "# lr chosen on the validation split per loss and batch size (losslab-study choose)\n"
        + yaml.safe_dump(choices, sort_keys=True)
    )
    lrs = sorted({lr for cell in grid.values() for lr in cell})
    header = ["loss", "batch size", *(f"lr {lr:g}" for lr in lrs), "chosen lr"]
    body = []
    for (loss, batch_size), by_lr in sorted(grid.items()):
        choice = choices[loss][batch_size]
        cells = []
        for lr in lrs:
            values = by_lr.get(lr)
            score = sum(values) / len(values) if values else None
            text = (
                "-" if score is None else "diverged" if not math.isfinite(score) else f"{score:.4f}"
            )
            cells.append(f"**{text}**" if lr == choice["lr"] else text)
        edge = "" if choice["inside_grid"] else " (edge of the grid!)"
        body.append([loss, str(batch_size), *cells, f"{choice['lr']:g}{edge}"])
    table = markdown_table(header, body, [True, False, *([False] * len(lrs)), False])
    edges = [
        f"{loss} at batch {bs}"
        for loss, cells in choices.items()
        for bs, c in cells.items()
        if not c["inside_grid"]
    ]
    note = (
        f"**The best lr lies on the edge of the grid for {', '.join(edges)}**: widen the grid."
        if edges
        else "Every chosen lr lies strictly inside the grid."
    )
    (tune_dir / "choices.md").write_text(
        f"# Stage 1: final validation accuracy per lr ({tune_dir})\n\n{table}\n\n{note}\n"
    )
    print(f"{table}\n\n{note}\nlosslab-study: choices.yaml, choices.md in {tune_dir}", flush=True)


# -- stage 4: the verdict -----------------------------------------------------------------------


def _welch(a: list[float], b: list[float]) -> dict[str, float]:
    """mean(a) - mean(b), its 95% confidence interval and p-value by Welch's t-test."""
    test = stats.ttest_ind(a, b, equal_var=False)
    diff = sum(a) / len(a) - sum(b) / len(b)
    if not math.isfinite(test.statistic):  # both constant: no spread to test against
        return {"diff": diff, "ci_low": diff, "ci_high": diff, "p": 0.0 if diff else 1.0}
    ci = test.confidence_interval(0.95)
    return {
        "diff": diff,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p": float(test.pvalue),
    }


def verdict(study_dir: Path) -> list[dict[str, Any]]:
    """The verdict of a study folder's final stage; writes ``verdict.md``, ``verdict.csv`` and
    ``reliability.png`` into ``study_dir`` and returns the per-batch-size comparison rows."""
    study_dir = Path(study_dir)
    runs = [r for r in _stage_runs(study_dir / "final") if r["status"] == "ok"]
    cells: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault((r["batch_size"], r["loss"]), []).append(r)
    few = {
        k: len({r["seed"] for r in v}) for k, v in cells.items() if len({r["seed"] for r in v}) < 2
    }
    if not cells or few:
        found = (
            ", ".join(f"{loss} at batch {bs}: {n}" for (bs, loss), n in sorted(few.items()))
            or "no run"
        )
        raise StudyError(
            f"seed: the verdict needs at least 2 finished seeds per loss and batch size "
            f"(e.g. seed=0,1,2,3,4) to give a spread; found {found}"
        )
    batch_sizes = sorted({bs for bs, _ in cells})
    losses = [loss for loss in ("cee", "sse", "sse_logits") if any(k[1] == loss for k in cells)]
    losses += sorted({loss for _, loss in cells} - set(losses))

    per_loss, comparisons = [], []
    for bs in batch_sizes:
        lrs = {}
        for loss in losses:
            members = cells.get((bs, loss), [])
            if not members:
                continue
            lrs[loss] = members[0]["lr"]
            row = {"batch_size": bs, "loss": loss, "lr": lrs[loss], "n": len(members)}
            for metric in ("test_acc", "test_ece", "test_nll", "val_acc"):
                row[metric] = summarize([m[metric] for m in members])
            per_loss.append(row)
        if "cee" in lrs:
            for other in (loss for loss in losses if loss != "cee" and (bs, loss) in cells):
                a = [m["test_acc"] for m in cells[(bs, "cee")]]
                b = [m["test_acc"] for m in cells[(bs, other)]]
                welch = _welch(a, b)
                comparisons.append(
                    {
                        "batch_size": bs,
                        "versus": other,
                        "lr_ratio": lrs[other] / lrs["cee"],
                        **welch,
                        "excludes_zero": welch["ci_low"] > 0 or welch["ci_high"] < 0,
                    }
                )
    _write_verdict(study_dir, per_loss, comparisons)
    _plot_reliability(study_dir, batch_sizes, losses, cells)
    return comparisons


def _write_verdict(study_dir: Path, per_loss: list[dict], comparisons: list[dict]) -> None:
    header = ["batch size", "loss", "chosen lr", "n", "test acc", "test ECE", "test NLL"]
    body = [
        [
            str(r["batch_size"]),
            r["loss"],
            f"{r['lr']:g}",
            str(r["n"]),
            mean_ci(r["test_acc"]),
            mean_ci(r["test_ece"]),
            mean_ci(r["test_nll"]),
        ]
        for r in per_loss
    ]
    table = markdown_table(header, body, [False, True, False, False, False, False, False])
    header = [
        "batch size",
        "CEE vs",
        "lr ratio (vs / CEE; C = 10)",
        "CEE - other, test acc",
        "95% CI (Welch)",
        "p",
        "CI excludes 0",
    ]
    body = [
        [
            str(c["batch_size"]),
            c["versus"],
            f"{c['lr_ratio']:.2g}",
            f"{c['diff']:+.4f}",
            f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]",
            f"{c['p']:.3g}",
            "yes" if c["excludes_zero"] else "no",
        ]
        for c in comparisons
    ]
    diffs = markdown_table(header, body, [False, True, False, False, False, False, True])
    text = f"""# losslab study: the verdict ({study_dir})

Each loss at the lr chosen for it on the validation split (stage 1, `tune/choices.md`), then
trained with every seed and measured on the **test** set. Cells: mean ± half-width of the 95%
confidence interval (Student's t), sd = standard deviation over the seeds, n = seeds.

{table}

The difference in test accuracy, CEE minus each other loss: its 95% confidence interval and
p-value come from Welch's t-test (two-sided, unequal variances, `scipy.stats.ttest_ind(
equal_var=False)`); a difference is a finding when its interval excludes 0. The lr ratio is the
other loss's chosen lr over CEE's; the gradient analysis predicts C = {NUM_CLASSES} for SSE on softmax
outputs at a uniform start (`scripts/gradients.py`).

{diffs}

![reliability](reliability.png)
"""
    (study_dir / "verdict.md").write_text(text)
    with (study_dir / "verdict.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "batch_size",
                "loss",
                "lr",
                "n",
                *(
                    f"{m}_{k}"
                    for m in ("test_acc", "test_ece", "test_nll")
                    for k in ("mean", "std", "ci_low", "ci_high")
                ),
            ]
        )
        for r in per_loss:
            writer.writerow(
                [
                    r["batch_size"],
                    r["loss"],
                    r["lr"],
                    r["n"],
                    *(
                        r[m][k]
                        for m in ("test_acc", "test_ece", "test_nll")
                        for k in ("mean", "std", "ci_low", "ci_high")
                    ),
                ]
            )
        writer.writerow([])
        writer.writerow(COMPARISON_FIELDS)
        for c in comparisons:
            writer.writerow(
                [
                    c["batch_size"],
                    c["versus"],
                    c["lr_ratio"],
                    c["diff"],
                    c["ci_low"],
                    c["ci_high"],
                    c["p"],
                    c["excludes_zero"],
                ]
            )
    print(
        f"{table}\n\n{diffs}\n\nlosslab-study: verdict.md, verdict.csv, reliability.png in {study_dir}",
        flush=True,
    )


def _plot_reliability(
    study_dir: Path, batch_sizes: list[int], losses: list[str], cells: dict
) -> None:
    """Reliability diagram of the final runs: per batch size, one line per loss (the test bins of
    every seed pooled): accuracy against mean confidence per bin; the diagonal is calibrated."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(batch_sizes), 4.2), layout="constrained")
    axes = fig.subplots(1, len(batch_sizes), squeeze=False)[0]
    for ax, bs in zip(axes, batch_sizes, strict=True):
        ax.plot([0, 1], [0, 1], ":", color="gray", label="calibrated")
        for loss in losses:
            pooled = _pooled_bins([m["folder"] for m in cells.get((bs, loss), [])])
            if pooled:
                ax.plot(pooled["confidence"], pooled["accuracy"], "o-", ms=3, label=loss)
        ax.set(
            title=f"batch size {bs}", xlabel="confidence (max softmax)", xlim=(0, 1), ylim=(0, 1)
        )
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Reliability of the final models on the test set (seeds pooled, 15 bins)")
    fig.savefig(study_dir / "reliability.png", dpi=100)


def _pooled_bins(folders: list[Path]) -> dict[str, list[float]] | None:
    count, confidence, correct = None, None, None
    for folder in folders:
        file = folder / "reliability.json"
        if not file.is_file():
            continue
        bins = json.loads(file.read_text())["bins"]["test"]
        n = bins["count"]
        if count is None:
            count, confidence, correct = [0.0] * len(n), [0.0] * len(n), [0.0] * len(n)
        for i, k in enumerate(n):
            count[i] += k
            confidence[i] += k * bins["confidence"][i]
            correct[i] += k * bins["accuracy"][i]
    if count is None:
        return None
    kept = [i for i, k in enumerate(count) if k > 0]
    return {
        "confidence": [confidence[i] / count[i] for i in kept],
        "accuracy": [correct[i] / count[i] for i in kept],
    }


# -- the whole protocol -------------------------------------------------------------------------


def _values(flag: str, text: str | None, kind: type, check: Any = None) -> list[Any] | None:
    if text is None:
        return None
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise StudyError(
            f"{flag}={text}: expected a comma-separated list of {kind.__name__}s"
        ) from err
    if not values or (check is not None and not all(check(v) for v in values)):
        raise StudyError(f"{flag}={text}: {check.__doc__ if check else 'empty'}")
    return values


def _positive(v: float) -> bool:
    """every value must be > 0"""
    return v > 0


def _seed(v: int) -> bool:
    """every seed must be in [0, 2**32)"""
    return 0 <= v < 2**32


def _train(args: list[str]) -> None:
    command = [sys.executable, "-m", "losslab.train", *args]
    print(f"\nlosslab-study: {' '.join(['losslab-train', *args])}", flush=True)
    status = subprocess.run(command, check=False).returncode
    if status != 0:
        raise SystemExit(status)


def run(
    study_dir: Path,
    overrides: list[str],
    losses: list[str] | None = None,
    batch_sizes: list[int] | None = None,
    lrs: list[float] | None = None,
    seeds: list[int] | None = None,
) -> list[dict[str, Any]]:
    """The four steps, into ``study_dir/tune``, ``study_dir/final`` and ``study_dir``."""
    if seeds is not None and len(set(seeds)) < 2:
        raise StudyError(
            f"seed={','.join(map(str, seeds))}: the verdict needs at least 2 distinct seeds"
        )
    for key in ("data.val_size=0", "hydra.sweep.dir="):
        bad = [o for o in overrides if o.replace(" ", "").startswith(key)]
        if bad:
            why = "the study chooses on a validation split" if "val_size" in key else "use --dir"
            raise StudyError(f"{bad[0]}: {why}")
    common = [f"loss={','.join(losses)}"] if losses else []
    common += [f"data.batch_size={','.join(map(str, batch_sizes))}"] if batch_sizes else []
    tune = ["experiment=study_tune", f"hydra.sweep.dir={study_dir / 'tune'}", *common]
    tune += [f"optimizer.lr={','.join(map(repr, lrs))}"] if lrs else []
    final = ["experiment=study_final", f"hydra.sweep.dir={study_dir / 'final'}", *common]
    final += [f"seed={','.join(map(str, seeds))}"] if seeds else []
    _train([*tune, *overrides])
    choose(study_dir / "tune")
    _train([*final, *overrides])
    return verdict(study_dir)


def main(argv: list[str] | None = None) -> int:
    """``losslab-study {run,choose,verdict} ...``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="losslab-study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="tune, choose, final, verdict (what `make study` runs)")
    p_run.add_argument(
        "--dir", type=Path, default=Path("logs/study"), help="study folder (default logs/study)"
    )
    p_run.add_argument("--losses", help="e.g. cee,sse (default: cee,sse,sse_logits)")
    p_run.add_argument("--batch-sizes", help="e.g. 32,100 (default: 32,100,256,1024)")
    p_run.add_argument("--lrs", help="the tuning grid, e.g. 0.01,0.1,1 (default: 0.003 ... 10)")
    p_run.add_argument("--seeds", help="final-stage seeds, at least 2 (default: 0,1,2,3,4)")
    p_run.add_argument("overrides", nargs="*", help="losslab-train overrides for every run")
    p_choose = sub.add_parser(
        "choose", help="stage 2: the lr per loss and batch size, on validation"
    )
    p_choose.add_argument("tune_dir", type=Path)
    p_verdict = sub.add_parser("verdict", help="the verdict of a study folder's final stage")
    p_verdict.add_argument("study_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "choose":
            choose(args.tune_dir)
        elif args.command == "verdict":
            verdict(args.study_dir)
        else:
            run(
                args.dir,
                args.overrides,
                losses=_values("--losses", args.losses, str),
                batch_sizes=_values("--batch-sizes", args.batch_sizes, int, _positive),
                lrs=_values("--lrs (optimizer.lr)", args.lrs, float, _positive),
                seeds=_values("--seeds (seed)", args.seeds, int, _seed),
            )
    except (ValueError, FileNotFoundError) as err:  # StudyError, and the report's "no runs"
        print(f"losslab-study: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

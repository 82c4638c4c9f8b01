"""The verdict (losslab.study.verdict): each seed's own choice, then paired tests by seed against
scipy with Holm over each family, TOST and power, the four words and their notes (near-tie, the
grid's edge); the words that do not move when a close pair of stage 1 ranks the other way; the
fixed-lr arm and its memorization (lower is better); a word that must hold at every lr a loss's
seeds kept; what it refuses; and the paired design itself (a seed gives every loss the same
initial weights and batch order)."""

from __future__ import annotations

import csv
import math
import re
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from conftest import train
from fakeruns import stage_run
from scipy import stats

from losslab.study.candidates import choose, load_candidates
from losslab.study.catalogue import Catalogue, StudyError
from losslab.study.selection import drop_stale
from losslab.study.verdict import verdict

FAIR = Catalogue("study", "data.batch_size", "batch size", ("cee", "sse", "sse_logits"),
                 (100, 1000), "cee", ("tuned",), {"tuned": ("test_acc",)}, 2)  # fmt: skip
SEED_EFFECT = np.array([0.0, 0.004, -0.003, 0.002, -0.001])
LRS = {"cee": (0.3, 0.1), "sse": (3.0, 1.0), "sse_logits": (1.0, 0.3)}  # the kept lr first
# (batch size, second loss) -> test accuracy of cee minus that of the second loss, per seed
DESIGN = {
    (100, "sse"): [0.020, 0.022, 0.019, 0.021, 0.018],  # cee better
    (100, "sse_logits"): [0.0005, -0.0003, 0.0002, 0.0001, -0.0004],  # equivalent
    (1000, "sse"): [-0.030, -0.028, -0.033, -0.031, -0.029],  # sse better
    (1000, "sse_logits"): [0.012, -0.008, 0.010, -0.004, 0.010],  # inconclusive
}
WORDS = {
    (100, "sse"): "cee better",
    (100, "sse_logits"): "equivalent within ±0.5 points",
    (1000, "sse"): "sse better",
    (1000, "sse_logits"): "inconclusive",
}


def f32(values) -> np.ndarray:
    """Values as the event files hold them: float32, read back as float."""
    return np.float32(values).astype(float)


def hand_holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out: sorted, times m, m-1, ..., running max, cap 1."""
    p = np.asarray(p)
    order = np.argsort(p, kind="stable")
    steps = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    out = np.empty(len(p))
    out[order] = np.maximum.accumulate(steps)
    return list(out)


def candidates(study: Path, cells: dict) -> None:
    """``tune/candidates.yaml`` as stage 2 writes it: ``(loss, value) -> its fields``."""
    out: dict = {}
    for (loss, value), cell in cells.items():
        out.setdefault(loss, {})[value] = {"near_tie": False, "edge": [], **cell}
    (study / "tune").mkdir(parents=True, exist_ok=True)
    (study / "tune" / "candidates.yaml").write_text(yaml.safe_dump(out))


def fair_study(study: Path, near_tie: bool = False, edge: bool = False) -> dict:
    """A fair study's final stage by design: ``{(batch size, loss): test accuracy over seeds 0..4}``
    at the kept lr; each seed's other candidate ends with a worse validation accuracy and a
    better test accuracy (test must choose nothing)."""
    FAIR.save(study)
    acc = {}
    for bs, base in ((100, 0.960), (1000, 0.930)):
        acc[(bs, "cee")] = base + SEED_EFFECT
        for second in ("sse", "sse_logits"):
            acc[(bs, second)] = acc[(bs, "cee")] - np.array(DESIGN[(bs, second)])
    for (bs, loss), values in acc.items():
        kept, other = LRS[loss]
        for seed, value in enumerate(values):
            stage_run(
                study / "final", loss, kept, seed, bs, val=[0.1, 0.5, 0.90], test=[0.1, 0.5, value]
            )
            stage_run(
                study / "final", loss, other, seed, bs, val=[0.1, 0.5, 0.85], test=[0.1, 0.5, 0.99]
            )
    grid = [0.03, 0.1, 0.3, 1.0, 3.0, 10.0] if not edge else [0.1, 0.3, 1.0, 3.0]
    candidates(study, {
        (loss, bs): {"lrs": list(LRS[loss]), "grid": grid,
                     "near_tie": near_tie and loss == "sse" and bs == 100}
        for loss in LRS for bs in (100, 1000)
    })  # fmt: skip
    return acc


def test_the_verdict_equals_scipys_paired_test_holm_and_tost_on_each_seeds_own_choice(tmp_path):
    acc = fair_study(tmp_path, near_tie=True)
    rows = verdict(tmp_path)
    assert [(r["arm"], r["metric"], r["value"], r["first"], r["second"]) for r in rows] == [
        ("tuned", "test_acc", 100, "cee", "sse"), ("tuned", "test_acc", 100, "cee", "sse_logits"),
        ("tuned", "test_acc", 1000, "cee", "sse"), ("tuned", "test_acc", 1000, "cee", "sse_logits"),
    ]  # fmt: skip
    pairs = [(f32(acc[(r["value"], "cee")]), f32(acc[(r["value"], r["second"])])) for r in rows]
    p = [stats.ttest_rel(a, b).pvalue for a, b in pairs]
    p_tost = [
        max(stats.ttest_1samp(a - b + 0.005, 0, alternative="greater").pvalue,
            stats.ttest_1samp(a - b - 0.005, 0, alternative="less").pvalue)
        for a, b in pairs
    ]  # fmt: skip
    for row, (a, b), p_raw, p_holm, t_raw, t_holm in zip(
        rows, pairs, p, hand_holm(p), p_tost, hand_holm(p_tost), strict=True
    ):
        ci = stats.ttest_rel(a, b).confidence_interval(0.95)
        assert row["seeds"] == 5
        assert row["diff"] == pytest.approx((a - b).mean(), abs=1e-12)
        assert row["sd"] == pytest.approx((a - b).std(ddof=1), rel=1e-9)
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
        assert row["p"] == pytest.approx(p_raw, rel=1e-9)
        assert row["p_holm"] == pytest.approx(p_holm, rel=1e-9)
        assert row["p_tost"] == pytest.approx(t_raw, rel=1e-9)
        assert row["p_tost_holm"] == pytest.approx(t_holm, rel=1e-9)
        assert row["word"] == WORDS[(row["value"], row["second"])]
        # detectable at the strictest Holm step, 0.05 / 4: the paired test's power there is 80%
        sd, crit = row["sd"], stats.t.isf(0.05 / 8, 4)
        nc = row["detectable"] / (sd / math.sqrt(5))
        assert stats.nct.sf(crit, 4, nc) + stats.nct.sf(crit, 4, -nc) == pytest.approx(
            0.8, abs=1e-6
        )
        assert (row["seeds_to_decide"] is None) == (row["word"] != "inconclusive")
        assert row["near_tie"] == (row["value"] == 100 and row["second"] == "sse")
        assert row["edge"] is False
    assert rows[3]["seeds_to_decide"] > 5

    text = (tmp_path / "verdict.md").read_text()
    for word in WORDS.values():
        assert f"**{word}**" in text
    assert "cee - sse (lr near-tie)" in text
    assert "| 0.3 " in text  # the lr every seed kept, never the decoy with the better test
    for needle in (
        "ttest_rel",
        "Holm",
        "TOST",
        "n=5",
        "keeps the run its own validation split prefers",
    ):
        assert needle in text
    with (tmp_path / "verdict.csv").open() as f:
        written = list(csv.DictReader(f))
    assert [r["word"] for r in written] == [r["word"] for r in rows]
    assert {r["arm"] for r in written} == {"tuned"}
    assert float(written[0]["p_holm"]) == rows[0]["p_holm"]  # repr: read back exactly
    with (tmp_path / "losses.csv").open() as f:
        losses = {(int(r["value"]), r["loss"]): r for r in csv.DictReader(f)}
    for key, values in acc.items():
        assert float(losses[key]["test_acc_mean"]) == pytest.approx(f32(values).mean())
        assert losses[key]["lrs"] == f"{LRS[key[1]][0]:g}"
        assert losses[key]["n"] == "5"
    assert (tmp_path / "reliability.png").stat().st_size > 5_000


def test_a_comparison_on_an_lr_at_the_grids_edge_says_so_next_to_its_word(tmp_path):
    fair_study(tmp_path, edge=True)  # sse keeps 3, the grid's largest lr
    rows = verdict(tmp_path)
    assert [r["edge"] for r in rows] == [True, False, True, False]
    text = (tmp_path / "verdict.md").read_text()
    assert "cee - sse (lr at the grid's edge)" in text
    assert "a seed chose an lr at the edge of the tuning grid" in text


# -- the choice's uncertainty inside the test ----------------------------------------------------


def study_from_tuning(study: Path, close_first: float, close_second: float) -> list[dict]:
    """Tuning runs where cee's lrs 0.1 and 0.3 are a close pair (``close_first`` and
    ``close_second`` their validation accuracies) and 1.0 is clearly worse, sse has a clear
    winner; stage 2; the final runs of every candidate (seed k of lr 0.1 and 0.3 end with
    validation accuracies the seeds disagree on); the verdict."""
    cat = Catalogue("study", "data.batch_size", "batch size", ("cee", "sse"), (100,), "cee",
                    ("tuned",), {"tuned": ("test_acc",)}, 2)  # fmt: skip
    cat.save(study)
    tune = {("cee", 0.1): close_first, ("cee", 0.3): close_second, ("cee", 1.0): 0.80,
            ("sse", 0.3): 0.90, ("sse", 1.0): 0.95, ("sse", 3.0): 0.70}  # fmt: skip
    for (loss, lr), val in tune.items():
        for seed in (7, 8):
            stage_run(study / "tune", loss, lr, seed, 100, val=[0.1, val])
    choose(study, cat)
    final_val = {0.1: [0.91, 0.89, 0.92, 0.88, 0.90], 0.3: [0.90, 0.91, 0.89, 0.92, 0.91]}
    final_test = {
        0.1: [0.950, 0.951, 0.949, 0.952, 0.950],
        0.3: [0.953, 0.948, 0.951, 0.950, 0.949],
    }
    for seed in range(5):
        for lr in (0.1, 0.3):
            stage_run(study / "final", "cee", lr, seed, 100, val=[0.1, final_val[lr][seed]],
                      test=[0.1, final_test[lr][seed]])  # fmt: skip
        for lr, val, test in ((1.0, 0.95, 0.945 + 0.001 * seed), (0.3, 0.90, 0.99)):
            stage_run(study / "final", "sse", lr, seed, 100, val=[0.1, val], test=[0.1, test])
    return verdict(study)


def test_a_close_pair_ranked_the_other_way_by_2e_4_in_stage_1_leaves_the_verdict_as_it_was(
    tmp_path,
):
    """The issue's case: a 1e-4 change flips which of two close lrs ranks first. The final
    seeds choose between both either way, so every number and word of the verdict stays."""
    one = study_from_tuning(tmp_path / "here", 0.9500, 0.9501)
    other = study_from_tuning(tmp_path / "there", 0.9501, 0.9500)
    first_here = yaml.safe_load((tmp_path / "here" / "tune" / "candidates.yaml").read_text())
    first_there = yaml.safe_load((tmp_path / "there" / "tune" / "candidates.yaml").read_text())
    assert first_here["cee"][100]["best"] == 0.3
    assert first_there["cee"][100]["best"] == 0.1  # stage 1 ranks them the other way...
    assert one == other  # ...and nothing of the verdict moves
    # the seeds' own choices: lr 0.1 where its final validation accuracy is higher
    text = (tmp_path / "here" / "verdict.md").read_text()
    assert "0.1 (2 seeds), 0.3 (3 seeds)" in text


def test_a_clear_winner_of_stage_1_is_what_every_seed_keeps(tmp_path):
    rows = study_from_tuning(tmp_path, 0.9500, 0.9501)
    text = (tmp_path / "verdict.md").read_text()
    # sse: 1.0 leads stage 1 by 0.05 and every final seed's validation: kept by all five; its
    # runner-up's better test accuracy (0.99) is never used
    assert re.search(r"\|\s+100 \| sse\s+\| 1\s+\|", text)
    sse = [0.945 + 0.001 * s for s in range(5)]
    cee = [0.950, 0.948, 0.949, 0.950, 0.949]  # each seed's own choice: 0.1, 0.3, 0.1, 0.3, 0.3
    assert rows[0]["diff"] == pytest.approx(np.mean(f32(cee)) - np.mean(f32(sse)))


# -- a word must hold at every lr the seeds kept ------------------------------------------------

PAIR = Catalogue("study", "data.batch_size", "batch size", ("cee", "sse"), (100,), "cee",
                 ("tuned",), {"tuned": ("test_acc",)}, 2)  # fmt: skip
SSE_TEST = [0.940, 0.941, 0.939, 0.942, 0.938]  # sse at lr 1, which every seed keeps
CEE_AT_03 = [0.960, 0.962, 0.959, 0.961, 0.960]


def kept_apart(
    study: Path, cee_at_01: list[float], seeds_at_01: set[int], sse_test: list[float] = SSE_TEST
) -> list[dict]:
    """cee's seeds in ``seeds_at_01`` keep lr 0.1 (the better validation accuracy there), the
    others 0.3; every seed of sse keeps 1.0; the verdict of the one comparison, cee - sse."""
    PAIR.save(study)
    candidates(study, {("cee", 100): {"lrs": [0.3, 0.1]}, ("sse", 100): {"lrs": [1.0, 3.0]}})
    for seed in range(5):
        at_01 = seed in seeds_at_01
        for lr, val, test in ((0.3, 0.90, CEE_AT_03[seed]), (0.1, 0.91 if at_01 else 0.85,
                                                               cee_at_01[seed])):  # fmt: skip
            stage_run(study / "final", "cee", lr, seed, 100, val=[0.1, val], test=[0.1, test])
        for lr, val, test in ((1.0, 0.90, sse_test[seed]), (3.0, 0.80, 0.99)):
            stage_run(study / "final", "sse", lr, seed, 100, val=[0.1, val], test=[0.1, test])
    return verdict(study)


def test_a_word_that_rests_on_which_lr_a_seed_kept_is_inconclusive_and_says_where(tmp_path):
    """Seed 4 keeps cee's lr 0.1, where cee is worse than sse: with its own choice cee wins
    (diffs 0.020, 0.021, 0.020, 0.019, 0.005), held at 0.1 it loses (mean -0.003); the data
    could not tell 0.1 from 0.3 apart, so the word is not stated."""
    at_01 = [0.935, 0.936, 0.934, 0.937, 0.943]
    (row,) = kept_apart(tmp_path, at_01, {4})
    nested = f32(CEE_AT_03[:4] + at_01[4:]) - f32(SSE_TEST)
    assert row["diff"] == pytest.approx(nested.mean(), abs=1e-12)
    assert stats.ttest_rel(f32(CEE_AT_03[:4] + at_01[4:]), f32(SSE_TEST)).pvalue < 0.01
    assert row["replication"] > 0.8  # on its own, a word that would come out again...
    assert (f32(at_01) - f32(SSE_TEST)).mean() == pytest.approx(-0.003, abs=1e-6)  # ...not at 0.1
    assert (row["word"], row["not_held_at"], row["seeds_to_decide"]) == (
        "inconclusive", "cee at lr 0.1", None
    )  # fmt: skip
    text = (tmp_path / "verdict.md").read_text()
    assert "| cee - sse (not held with cee at lr 0.1) |" in text
    assert "0.1 (1 seed), 0.3 (4 seeds)" in text
    with (tmp_path / "verdict.csv").open() as f:
        assert next(csv.DictReader(f))["not_held_at"] == "cee at lr 0.1"


@pytest.mark.parametrize(
    "at_01",
    [
        [0.955, 0.956, 0.954, 0.957, 0.953],  # cee better at 0.1 too
        [0.941, 0.940, 0.941, 0.941, 0.943],  # not significantly, but still the same way (+0.0012)
    ],
)
def test_a_word_that_points_the_same_way_at_every_lr_the_seeds_kept_is_stated(tmp_path, at_01):
    (row,) = kept_apart(tmp_path, at_01, {4})
    assert (row["word"], row["not_held_at"]) == ("cee better", "")


def test_an_lr_no_seed_kept_is_not_held_to(tmp_path):
    """Every seed keeps cee's lr 0.3: lr 0.1, where cee loses, was told apart by every seed."""
    (row,) = kept_apart(tmp_path, [0.935, 0.936, 0.934, 0.937, 0.943], set())
    assert (row["word"], row["not_held_at"]) == ("cee better", "")


def test_an_equivalence_must_stay_within_the_margin_at_every_lr_the_seeds_kept(tmp_path):
    """sse as good as cee: equivalent with each seed's own lr (diffs within 0.001); held at 0.1,
    cee is 0.54 points behind on average, outside the +-0.5 margin; 0.46 behind stays inside."""
    sse = [0.961, 0.961, 0.958, 0.962, 0.954]
    (row,) = kept_apart(tmp_path, [0.954, 0.954, 0.951, 0.955, 0.955], {4}, sse)
    (held,) = kept_apart(tmp_path / "held", [0.955, 0.955, 0.952, 0.956, 0.955], {4}, sse)
    assert (row["word"], row["not_held_at"]) == ("inconclusive", "cee at lr 0.1")
    assert (held["word"], held["not_held_at"]) == ("equivalent within ±0.5 points", "")


# -- the fixed-lr arm ---------------------------------------------------------------------------

NOISE = Catalogue("noise", "data.label_noise", "label noise", ("cee", "sse"), (0.0, 0.4), None,
                  ("tuned", "fixed"), {"tuned": ("test_acc",), "fixed": ("test_acc", "memorized")},
                  2, clean=0.0)  # fmt: skip
CLEAN = {"cee": ((0.3, 0.1), [1, 1, 0]), "sse": ((1.0, 3.0), [0, 1, 1])}  # lrs; seed keeps 1st?


def noise_study(study: Path, fixed_lr_of=None) -> None:
    NOISE.save(study)
    candidates(study, {(loss, p): {"lrs": list(lrs), "grid": [0.01, 0.1, 0.3, 1.0, 3.0, 10.0]}
                       for loss, (lrs, _) in CLEAN.items() for p in (0.0, 0.4)})  # fmt: skip
    for loss, (lrs, keeps_first) in CLEAN.items():
        for seed, first in enumerate(keeps_first):
            for lr in lrs:
                better = (lr == lrs[0]) == bool(first)
                for p in (0.0, 0.4):
                    stage_run(study / "final", loss, lr, seed, p, key="data.label_noise",
                              val=[0.1, 0.9 if better else 0.8], test=[0.1, 0.9 - p / 4])  # fmt: skip
            kept = lrs[0] if first else lrs[1]
            lr = fixed_lr_of(loss, seed, kept) if fixed_lr_of else kept
            memo = (0.30 if loss == "cee" else 0.05) + 0.01 * seed
            stage_run(study / "fixed", loss, lr, seed, 0.4, key="data.label_noise",
                      val=[0.1, 0.7], test=[0.1, 0.8 - 0.01 * seed],
                      curves={"memo/train": [0.0, memo]})  # fmt: skip
    from losslab.study.selection import choose_per_seed, stage_runs, write_selection

    tuned = choose_per_seed(stage_runs(study / "final", NOISE, "final"), NOISE.arm_metrics("tuned"))
    write_selection(study / "final", tuned, NOISE)


def test_the_fixed_arm_trains_each_seed_at_its_clean_lr_and_less_memorization_is_better(tmp_path):
    noise_study(tmp_path)
    rows = verdict(tmp_path)
    fixed = [r for r in rows if r["arm"] == "fixed"]
    assert [(r["metric"], r["value"], r["first"], r["second"]) for r in fixed] == [
        ("test_acc", 0.4, "cee", "sse"), ("memorized", 0.4, "cee", "sse")
    ]  # fmt: skip
    memo = fixed[1]
    assert memo["diff"] == pytest.approx(0.25, abs=1e-6)  # cee memorizes 25 points more
    assert memo["word"] == "sse memorizes less"  # lower is better: the word goes to sse
    assert fixed[0]["word"] == "equivalent within ±0.5 points"
    text = (tmp_path / "verdict.md").read_text()
    assert "## Arm `fixed`: each loss at the lr its seed chose on clean labels" in text
    assert "0.1 (1 seed), 0.3 (2 seeds)" in text  # cee's seeds' clean choices, held at p = 0.4
    assert (tmp_path / "noise.png").stat().st_size > 10_000


def test_a_fixed_arm_run_at_another_lr_than_its_seeds_clean_choice_is_refused(tmp_path):
    noise_study(
        tmp_path, fixed_lr_of=lambda loss, seed, kept: 10.0 if (loss, seed) == ("sse", 2) else kept
    )
    with pytest.raises(StudyError, match=r"loss=sse,data.label_noise=0.4,optimizer.lr=10.0,seed=2: "
                       r"trained with optimizer.lr=10, but the study now trains 1 there: run the "
                       r"study again with --retrain \(it trains the fixed stage's changed jobs"):  # fmt: skip
        verdict(tmp_path)


# -- what the verdict refuses -------------------------------------------------------------------


def test_a_final_run_of_an_lr_that_is_no_longer_a_candidate_is_refused_by_name(tmp_path):
    fair_study(tmp_path)
    candidates(tmp_path, {("cee", 100): {"lrs": [0.3, 0.03]}, ("cee", 1000): {"lrs": [0.3, 0.1]},
                          ("sse", 100): {"lrs": [3.0, 1.0]}, ("sse", 1000): {"lrs": [3.0, 1.0]},
                          ("sse_logits", 100): {"lrs": [1.0, 0.3]},
                          ("sse_logits", 1000): {"lrs": [1.0, 0.3]}})  # fmt: skip
    with pytest.raises(StudyError, match=r"trained with optimizer.lr=0.1, but the study now trains "
                       r"0.3, 0.03 there: run the study again with --retrain"):  # fmt: skip
        verdict(tmp_path)
    # --retrain: stage 2 chose again, so the runs of an lr no longer chosen go (no job of the new
    # sweep would replace them), the others stay, and the verdict reads the current choice
    removed = drop_stale(tmp_path / "final", FAIR, load_candidates(tmp_path))
    assert removed == [f"loss=cee,data.batch_size=100,optimizer.lr=0.1,seed={s}" for s in range(5)]
    assert len(list((tmp_path / "final").iterdir())) == 55
    # ... and until the new candidate 0.03 has run, no seed chooses short of it
    with pytest.raises(StudyError, match=r"^loss=cee at 100, seed 0: no final run at "
                       r"optimizer.lr=0.03, one of its candidates: run the study again"):  # fmt: skip
        verdict(tmp_path)
    for seed in range(5):
        stage_run(tmp_path / "final", "cee", 0.03, seed, 100, val=[0.1, 0.5, 0.8],
                  test=[0.1, 0.5, 0.99])  # fmt: skip
    rows = verdict(tmp_path)
    assert {r["seeds"] for r in rows} == {5}


def test_a_diverged_final_run_counts_with_its_last_accuracy(tmp_path):
    fair_study(tmp_path)
    for seed in range(5):  # sse at 100: both candidates of every seed diverge
        for lr in LRS["sse"]:
            folder = (
                tmp_path / "final" / f"loss=sse,data.batch_size=100,optimizer.lr={lr},seed={seed}"
            )
            shutil.rmtree(folder)
            stage_run(tmp_path / "final", "sse", lr, seed, 100, val=[0.1, math.nan],
                      test=[0.1, 0.2], status="diverged", name=folder.name)  # fmt: skip
    rows = verdict(tmp_path)
    assert rows[0]["diff"] == pytest.approx(np.mean(f32(0.960 + SEED_EFFECT)) - 0.2, abs=1e-6)
    assert (
        "diverged (counted with the value they last measured"
        in (tmp_path / "verdict.md").read_text()
    )


@pytest.mark.parametrize(("seeds", "match"), [((0,), "at least 2 finished seeds"), ((0, 1), None)])
def test_the_verdict_needs_two_paired_seeds(tmp_path, seeds, match):
    FAIR.save(tmp_path)
    candidates(tmp_path, {(loss, 100): {"lrs": [0.1]} for loss in ("cee", "sse")})
    for seed in seeds:
        for loss in ("cee", "sse"):
            stage_run(
                tmp_path / "final",
                loss,
                0.1,
                seed,
                100,
                val=[0.1, 0.9],
                test=[0.1, 0.9 - seed / 100],
            )
    if match:
        with pytest.raises(StudyError, match=match):
            verdict(tmp_path)
    else:
        assert len(verdict(tmp_path)) == 1


def test_a_final_run_without_its_test_curve_is_refused_by_name(tmp_path):
    fair_study(tmp_path)
    run = stage_run(tmp_path / "final", "cee", 0.3, 9, 100, val=[0.1, 0.9])
    stage_run(tmp_path / "final", "cee", 0.1, 9, 100, val=[0.1, 0.8], test=[0.1, 0.8])
    with pytest.raises(StudyError, match=rf"^{run}: holds no test_acc curve to compare"):
        verdict(tmp_path)


def test_a_study_folder_without_its_catalogue_or_candidates_is_refused(tmp_path):
    with pytest.raises(StudyError, match=r"study.yaml: no such file; .* is not a study folder"):
        verdict(tmp_path)
    FAIR.save(tmp_path)
    with pytest.raises(
        StudyError, match=r"candidates.yaml: no such file; .* run losslab-study choose"
    ):
        verdict(tmp_path)


# -- the studies' presets refuse through losslab-train ------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["data.val_size=0"], "data.val_size=0: the study's tune stage chooses on a validation"),
     (["optimizer.lr=0,0.1"], "optimizer.lr"),
     (["study.stage=final2"], "study.stage")],
)  # fmt: skip
def test_the_study_presets_refuse_bad_settings_through_losslab_train(tmp_path, overrides, key):
    res = train("experiment=study_tune", *overrides, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert key in res.stderr
    assert list(tmp_path.iterdir()) == []


# -- the paired design --------------------------------------------------------------------------


def composed(*overrides: str):
    from hydra import compose, initialize_config_dir

    from losslab.train import CONF_DIR

    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides))


def start(loss: str, seed: int, lr: float, data_dir: Path) -> tuple[dict, list, tuple]:
    """What a run of ``loss`` with ``seed`` and ``lr`` starts from, as losslab.train builds it:
    the initial weights, the training batches' indices over two epochs, the training split."""
    from losslab.run.build import parts

    cfg = composed(f"loss={loss}", f"seed={seed}", f"optimizer.lr={lr}", "data.train_size=300",
                   "data.val_size=1000", f"data.data_dir={data_dir}", "data.label_noise=0.2")  # fmt: skip
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module = parts(cfg)
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    datamodule.setup("fit")
    orders = []
    for epoch in (0, 1):
        loader = datamodule.train_dataloader()
        loader.sampler.set_epoch(epoch)
        orders.append([idx.tolist() for idx in loader.sampler])
    return weights, orders, (*datamodule.splits["train"], *datamodule.splits["val"])


def test_a_seed_gives_every_loss_and_lr_the_same_initial_weights_and_batch_order(data_dir):
    """What pairs the runs by seed, for the losses and for a seed's candidate lrs alike."""
    runs = {
        (loss, lr): start(loss, 3, lr, data_dir)
        for loss in ("cee", "sse", "mae")
        for lr in (0.1, 1)
    }
    weights, orders, split = runs[("cee", 0.1)]
    assert len(orders[0]) == 3
    assert orders[0] != orders[1]
    for other_weights, other_orders, other_split in runs.values():
        assert weights.keys() == other_weights.keys()
        assert all(torch.equal(weights[k], other_weights[k]) for k in weights)
        assert other_orders == orders
        assert all(torch.equal(a, b) for a, b in zip(split, other_split, strict=True))
    other_weights, other_orders, _ = start("cee", 4, 0.1, data_dir)
    assert not any(torch.equal(weights[k], other_weights[k]) for k in weights if "weight" in k)
    assert other_orders != orders

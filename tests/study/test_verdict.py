"""The study's conclusions (losslab.study.verdict, losslab-study): the lr chosen on validation per loss
and compared value (margin to the runner-up, near-ties, the edge of the grid), the verdict's
paired comparisons by seed against scipy with Holm over each table, TOST and power, its four
words, the runs and settings it refuses, the paired design itself (a seed gives every loss the
same initial weights and batch order), and a tiny real study end to end."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from conftest import TESTS, child_env, command, ok, train, tree_digest, write_run
from scipy import stats

from losslab.run import config
from losslab.study import stages as study
from losslab.study.candidates import choose
from losslab.study.catalogue import NOISE, StudyError
from losslab.study.verdict import verdict


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


# -- choose: stage 2 ----------------------------------------------------------------------------


def tune_run(
    tune: Path,
    loss: str,
    lr: float,
    seed: int,
    val: float,
    test: float,
    status: str = "ok",
    batch_size: int = 100,
    label_noise: float = 0.0,
) -> None:
    hp = {"loss": loss, "batch_size": batch_size, "lr": lr, "seed": seed,
          "label_noise": label_noise, "status": status}  # fmt: skip
    curves = {"acc/val": [0.1, val], "acc/test": [0.1, test], "loss/test": [2.3, 1 - test]}
    name = f"loss={loss},data.batch_size={batch_size},data.label_noise={label_noise:g},"
    write_run(
        tune / f"{name}optimizer.lr={lr:g},seed={seed}", curves, hp, overrides=[f"loss={loss}"]
    )


def test_the_choice_follows_validation_flags_edges_near_ties_and_puts_a_diverged_lr_last(tmp_path):
    tune = tmp_path / "tune"
    # cee: 0.1 is best on validation (mean 0.945), 0.3 best on test: validation chooses.
    for seed, v01, v03, v1 in ((7, 0.95, 0.93, 0.20), (8, 0.94, 0.92, 0.30)):
        tune_run(tune, "cee", 0.1, seed, val=v01, test=0.90)
        tune_run(tune, "cee", 0.3, seed, val=v03, test=0.97)
        tune_run(tune, "cee", 1.0, seed, val=v1, test=0.25)
    # sse: 1.0 (mean 0.82) beats 0.3 (mean 0.81) by less than the seeds disagree
    # (per-seed differences +0.03 and -0.01): a near-tie, and the smaller lr, 0.3, is chosen;
    # 0.1 is clearly worse; 3.0 diverged after a high validation accuracy.
    for seed, v03, v1 in ((7, 0.80, 0.83), (8, 0.82, 0.81)):
        tune_run(tune, "sse", 0.1, seed, val=0.5, test=0.50)
        tune_run(tune, "sse", 0.3, seed, val=v03, test=0.80)
        tune_run(tune, "sse", 1.0, seed, val=v1, test=0.80)
        tune_run(tune, "sse", 3.0, seed, val=0.99, test=0.99, status="diverged")
    choices = choose(tune)

    cee, sse = choices["cee"][100], choices["sse"][100]
    assert (cee["lr"], cee["runner_up"], cee["inside_grid"]) == (0.1, 0.3, False)
    assert cee["grid"] == [0.1, 0.3, 1.0]
    assert cee["seeds"] == [7, 8]
    assert cee["val_acc"] == pytest.approx(f32([0.95, 0.94]).mean())
    # margin 0.945 - 0.925 = 0.02; the per-seed differences 0.02 and 0.02 agree: a clear choice
    assert cee["margin"] == pytest.approx(f32([0.95, 0.94]).mean() - f32([0.93, 0.92]).mean())
    assert cee["margin"] == pytest.approx(0.02, abs=1e-6)
    assert cee["near_tie"] is False
    # sse: 0.82 - 0.81 = 0.01 <= sd(0.03, -0.01) = 0.02 * sqrt(2) = 0.0283: a near-tie; the
    # smaller lr is chosen, 0.01 below the best mean (the runner-up)
    assert (sse["lr"], sse["best_mean_lr"], sse["runner_up"]) == (0.3, 1.0, 1.0)
    assert sse["inside_grid"] is True
    assert sse["val_acc"] == pytest.approx(f32([0.80, 0.82]).mean())
    assert sse["margin"] == pytest.approx(-0.01, abs=1e-6)
    assert sse["near_tie"] is True
    assert cee["best_mean_lr"] == 0.1
    assert f32([0.83, 0.81]).mean() - f32([0.80, 0.82]).mean() <= np.std(
        f32([0.83, 0.81]) - f32([0.80, 0.82]), ddof=1
    )

    assert yaml.safe_load((tune / "choices.yaml").read_text()) == choices
    table = (tune / "choices.md").read_text()
    assert "**0.9450**" in table  # the chosen cell, in bold
    assert "**0.8100**" in table
    assert "diverged" in table  # the 3.0 column of sse
    assert "0.1 (edge of the grid!)" in table
    assert "+0.0200 vs 0.3" in table
    assert "-0.0100 vs 1 near-tie: the smaller lr" in table
    assert "the grid for cee at 100**" in table
    assert "Near-ties" in table
    assert "sse at 100." in table


def test_a_near_tie_is_a_margin_not_larger_than_the_spread_of_the_differences(tmp_path):
    # margin 0.01 against per-seed differences (0.02, 0.0): sd 0.0141 -> near-tie;
    # margin 0.01 against (0.011, 0.009): sd 0.0014 -> clear.
    for name, pairs, tie in (("tie", ((0.92, 0.90), (0.90, 0.90)), True),
                             ("clear", ((0.921, 0.910), (0.909, 0.900)), False)):  # fmt: skip
        tune = tmp_path / name
        for seed, (best, runner) in zip((7, 8), pairs, strict=True):
            tune_run(tune, "cee", 0.1, seed, val=best, test=0.5)
            tune_run(tune, "cee", 0.3, seed, val=runner, test=0.5)
        choice = choose(tune)["cee"][100]
        assert choice["lr"] == 0.1
        assert choice["margin"] == pytest.approx(0.01, abs=1e-6)
        assert choice["near_tie"] is tie


def test_a_near_tie_chooses_the_smallest_tied_lr_whichever_of_them_ranks_first(tmp_path):
    """Two machines that rank two tied lrs the other way round choose the same lr; an lr outside
    the noise of the best is not in the tied set, however small."""
    for name, (v1, v3) in (("here", (0.950, 0.949)), ("there", (0.949, 0.952))):
        tune = tmp_path / name
        for seed, jitter in ((7, 0.004), (8, -0.004)):  # per-seed differences +-0.008: noisy
            tune_run(tune, "sse", 0.3, seed, val=0.92, test=0.5)
            tune_run(tune, "sse", 1.0, seed, val=v1 + jitter, test=0.5)
            tune_run(tune, "sse", 3.0, seed, val=v3 - jitter, test=0.5)
            tune_run(tune, "sse", 10.0, seed, val=0.5, test=0.5)
        choice = choose(tune)["sse"][100]
        assert choice["lr"] == 1.0, name
        assert choice["near_tie"] is True
        assert choice["best_mean_lr"] == (1.0 if name == "here" else 3.0)
        assert choice["inside_grid"] is True
        notes = (tune / "choices.md").read_text().split("\n\n")[-2:]
        assert notes[0] == "Every chosen lr lies strictly inside the grid."
        assert notes[1].endswith("the smallest of the tied lrs is chosen): sse at 100.\n")


def test_one_tuning_seed_leaves_the_noise_unknown_and_chooses_the_best_mean(tmp_path):
    tune = tmp_path / "tune"
    for lr, val in ((0.1, 0.90), (0.3, 0.91), (1.0, 0.50)):
        tune_run(tune, "cee", lr, 7, val=val, test=0.5)
    choice = choose(tune)["cee"][100]
    assert (choice["lr"], choice["runner_up"], choice["near_tie"]) == (0.3, 0.1, None)
    assert choice["margin"] == pytest.approx(0.01, abs=1e-6)
    assert "(1 seed: noise unknown)" in (tune / "choices.md").read_text()


def test_choose_by_label_noise_gives_the_lr_per_noise_rate_that_stage_two_reads(tmp_path):
    tune = tmp_path / "tune"
    for seed in (7, 8):
        tune_run(tune, "cee", 0.1, seed, val=0.90, test=0.9, label_noise=0.0)
        tune_run(tune, "cee", 1.0, seed, val=0.95, test=0.9, label_noise=0.0)
        tune_run(tune, "cee", 0.1, seed, val=0.60, test=0.9, label_noise=0.4)
        tune_run(tune, "cee", 1.0, seed, val=0.50, test=0.9, label_noise=0.4)
    # chosen per batch size, two noise rates would fall into one cell: refused, naming the runs
    with pytest.raises(StudyError, match=r"data.label_noise=0\.4,.*seed=7 and .*two runs of the "
                       r"same loss, batch_size and lr and seed=7; they differ in a key other "
                       r"than batch_size"):  # fmt: skip
        choose(tune)
    assert not (tune / "choices.yaml").exists()
    assert study.main(["choose", str(tune), "--by", "label_noise"]) == 0
    choices = yaml.safe_load((tune / "choices.yaml").read_text())
    assert {p: c["lr"] for p, c in choices["cee"].items()} == {0.0: 1.0, 0.4: 0.1}
    assert "label noise" in (tune / "choices.md").read_text()
    # the final stage's lr resolver reads them back by the override's value
    assert config._chosen_lr("cee", 0.4, str(tune / "choices.yaml")) == 0.1
    assert config._chosen_lr("cee", 0.0, str(tune / "choices.yaml")) == 1.0


def test_choices_from_runs_without_a_validation_split_are_refused(tmp_path):
    hp = {"loss": "cee", "batch_size": 100, "lr": 0.1, "seed": 0, "status": "ok"}
    write_run(tmp_path / "tune" / "a", {"acc/test": [0.1, 0.9], "loss/test": [2, 1]}, hp)
    with pytest.raises(StudyError, match=r"data\.val_size"):
        choose(tmp_path / "tune")
    assert not (tmp_path / "tune" / "choices.yaml").exists()


def test_choices_from_unfinished_or_all_diverged_tuning_runs_are_refused(tmp_path):
    tune = tmp_path / "tune"
    tune_run(tune, "cee", 0.1, 7, val=0.9, test=0.9)
    write_run(tune / "killed", {"acc/val": [0.1, 0.5]})  # no result.json: incomplete
    with pytest.raises(StudyError, match="killed \\(incomplete\\)"):
        choose(tune)
    tune = tmp_path / "tune2"
    for lr in (1.0, 3.0):
        tune_run(tune, "sse", lr, 7, val=0.1, test=0.1, status="diverged")
    with pytest.raises(
        StudyError, match=r"every lr of the grid \[1.0, 3.0\] diverged for loss=sse"
    ):
        choose(tune)
    assert not (tune / "choices.yaml").exists()


# -- the verdict --------------------------------------------------------------------------------

SEED_EFFECT = np.array([0.0, 0.004, -0.003, 0.002, -0.001])
LRS = {"cee": 0.3, "sse": 3.0, "sse_logits": 1.0}
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


def final_run(final: Path, loss: str, lr: float, seed: int, test: float, by: dict) -> Path:
    hp = {"loss": loss, "lr": lr, "seed": seed, "status": "ok", "batch_size": 100,
          "label_noise": 0.0, **by}  # fmt: skip
    curves = {"acc/val": [0.1, 0.5, test], "acc/test": [0.1, test - 0.01, test]}
    curves |= {
        "ece/test": [0.05, 0.03, 0.02],
        "nll/test": [2.3, 0.3, 0.2],
        "loss/test": [2, 1, 0.2],
    }
    where = ",".join(f"{k}={v:g}" for k, v in by.items())
    return write_run(final / f"loss={loss},{where},seed={seed}", curves, hp, [f"loss={loss}"])


def write_choices(study_dir: Path, choices: dict) -> None:
    (study_dir / "tune").mkdir(parents=True, exist_ok=True)
    (study_dir / "tune" / "choices.yaml").write_text(yaml.safe_dump(choices))


def fair_study(study_dir: Path, near_tie: bool = False) -> dict:
    """The designed final stage: ``{(batch size, loss): test accuracies over seeds 0..4}``."""
    acc = {}
    for bs, base in ((100, 0.960), (1000, 0.930)):
        acc[(bs, "cee")] = base + SEED_EFFECT
        for second in ("sse", "sse_logits"):
            acc[(bs, second)] = acc[(bs, "cee")] - np.array(DESIGN[(bs, second)])
    for (bs, loss), values in acc.items():
        for seed, value in enumerate(values):
            final_run(study_dir / "final", loss, LRS[loss], seed, float(value), {"batch_size": bs})
    write_choices(study_dir, {
        loss: {bs: {"lr": lr, "near_tie": near_tie and loss == "sse" and bs == 100}
               for bs in (100, 1000)}
        for loss, lr in LRS.items()
    })  # fmt: skip
    return acc


def test_the_verdict_equals_scipys_paired_test_holm_and_tost_and_gives_each_word(tmp_path):
    acc = fair_study(tmp_path, near_tie=True)
    rows = verdict(tmp_path)
    assert [(r["batch_size"], r["first"], r["second"]) for r in rows] == [
        (100, "cee", "sse"), (100, "cee", "sse_logits"),
        (1000, "cee", "sse"), (1000, "cee", "sse_logits"),
    ]  # fmt: skip
    pairs = [(f32(acc[(r["batch_size"], "cee")]), f32(acc[(r["batch_size"], r["second"])]))
             for r in rows]  # fmt: skip
    p = [stats.ttest_rel(a, b).pvalue for a, b in pairs]
    p_tost = [
        max(stats.ttest_1samp(a - b + 0.005, 0, alternative="greater").pvalue,
            stats.ttest_1samp(a - b - 0.005, 0, alternative="less").pvalue)
        for a, b in pairs
    ]  # fmt: skip
    for row, (a, b), p_raw, p_holm, t_raw, t_holm in zip(
        rows, pairs, p, hand_holm(p), p_tost, hand_holm(p_tost), strict=True
    ):
        reference = stats.ttest_rel(a, b)
        ci = reference.confidence_interval(0.95)
        assert row["seeds"] == 5
        assert row["diff"] == pytest.approx((a - b).mean(), abs=1e-12)
        assert row["sd"] == pytest.approx((a - b).std(ddof=1), rel=1e-9)
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
        assert row["p"] == pytest.approx(p_raw, rel=1e-9)
        assert row["p_holm"] == pytest.approx(p_holm, rel=1e-9)
        assert row["p_tost"] == pytest.approx(t_raw, rel=1e-9)
        assert row["p_tost_holm"] == pytest.approx(t_holm, rel=1e-9)
        assert row["word"] == WORDS[(row["batch_size"], row["second"])]
        assert row["lr_ratio"] == pytest.approx(LRS[row["second"]] / LRS["cee"])
        # detectable at the strictest Holm step, 0.05 / 4: the paired test's power there is 80%
        sd, crit = row["sd"], stats.t.isf(0.05 / 8, 4)
        nc = row["detectable"] / (sd / math.sqrt(5))
        assert stats.nct.sf(crit, 4, nc) + stats.nct.sf(crit, 4, -nc) == pytest.approx(
            0.8, abs=1e-6
        )
        assert (row["seeds_to_decide"] is None) == (row["word"] != "inconclusive")
        assert row["near_tie"] == (row["batch_size"] == 100 and row["second"] == "sse")
    assert rows[3]["seeds_to_decide"] > 5  # the inconclusive one needs more seeds than it had

    text = (tmp_path / "verdict.md").read_text()
    for word in WORDS.values():
        assert word in text
    assert "cee - sse (lr near-tie)" in text
    assert "ttest_rel" in text
    assert "Holm" in text
    assert "TOST" in text
    assert "n=5" in text
    assert "diverged (counted with the accuracy they last measured" in text
    assert ": none." in text
    with (tmp_path / "verdict.csv").open() as f:
        written = list(csv.DictReader(f))
    assert [r["word"] for r in written] == [r["word"] for r in rows]
    assert float(written[0]["p_holm"]) == rows[0]["p_holm"]  # repr: read back exactly
    with (tmp_path / "losses.csv").open() as f:
        losses = {(int(r["batch_size"]), r["loss"]): r for r in csv.DictReader(f)}
    for key, values in acc.items():
        assert float(losses[key]["test_acc_mean"]) == pytest.approx(f32(values).mean())
        assert float(losses[key]["lr"]) == LRS[key[1]]
        assert losses[key]["n"] == "5"
    assert (tmp_path / "reliability.png").stat().st_size > 5_000  # hand-made runs: no bins


def test_the_verdict_pairs_the_seeds_both_losses_ran_and_shows_each_loss_over_all_of_its_own(
    tmp_path,
):
    # (was: Welch's test on 4 against 3 seeds) seed k pairs the runs: seeds 0-2 are compared
    cee, sse = [0.960, 0.962, 0.958, 0.961], [0.950, 0.955, 0.949]
    write_choices(tmp_path, {"cee": {100: {"lr": 0.3}}, "sse": {100: {"lr": 3.0}}})
    for seed, value in enumerate(cee):
        final_run(tmp_path / "final", "cee", 0.3, seed, value, {"batch_size": 100})
    for seed, value in enumerate(sse):
        final_run(tmp_path / "final", "sse", 3.0, seed, value, {"batch_size": 100})
    (row,) = verdict(tmp_path)
    a, b = f32(cee[:3]), f32(sse)
    expected = stats.ttest_rel(a, b)
    ci = expected.confidence_interval(0.95)
    assert (row["first"], row["second"], row["seeds"]) == ("cee", "sse", 3)
    assert row["lr_ratio"] == pytest.approx(10.0)
    assert row["diff"] == pytest.approx((a - b).mean())
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert row["p"] == pytest.approx(expected.pvalue)
    assert row["p_holm"] == row["p"]  # a family of one
    text = (tmp_path / "verdict.md").read_text()
    assert "n=4" in text  # each loss's own mean over all of its seeds
    assert "n=3" in text
    assert "Welch" not in text
    with (tmp_path / "losses.csv").open() as f:
        losses = {r["loss"]: r for r in csv.DictReader(f)}
    assert float(losses["cee"]["test_acc_mean"]) == pytest.approx(f32(cee).mean())
    assert (losses["cee"]["n"], losses["sse"]["n"]) == ("4", "3")
    with (tmp_path / "verdict.csv").open() as f:
        assert next(csv.reader(f))[:5] == ["metric", "batch_size", "first", "second", "seeds"]


def test_the_verdict_counts_a_diverged_final_run_with_its_last_accuracy(tmp_path):
    write_choices(tmp_path, {"cee": {100: {"lr": 0.3}}, "sse": {100: {"lr": 3.0}}})
    for seed, (a, b) in enumerate(((0.96, 0.95), (0.95, 0.94), (0.97, 0.10))):
        final_run(tmp_path / "final", "cee", 0.3, seed, a, {"batch_size": 100})
        run = final_run(tmp_path / "final", "sse", 3.0, seed, b, {"batch_size": 100})
    result = json.loads((run / "result.json").read_text()) | {"status": "diverged"}
    (run / "result.json").write_text(json.dumps(result))
    (row,) = verdict(tmp_path)
    assert row["seeds"] == 3
    assert row["diff"] == pytest.approx((f32([0.96, 0.95, 0.97]) - f32([0.95, 0.94, 0.10])).mean())
    assert "loss=sse,batch_size=100,seed=2" in (tmp_path / "verdict.md").read_text()


def test_a_final_run_trained_with_another_lr_than_the_choice_is_refused_by_name(tmp_path):
    fair_study(tmp_path)
    choices = yaml.safe_load((tmp_path / "tune" / "choices.yaml").read_text())
    choices["sse"][1000]["lr"] = 1.0  # stage 1 was run again and now chooses another lr
    write_choices(tmp_path, choices)
    before = tree_digest(tmp_path)
    with pytest.raises(StudyError, match=r"loss=sse,batch_size=1000,seed=\d: trained with "
                       r"optimizer\.lr=3, but .*choices\.yaml now chooses 1"):  # fmt: skip
        verdict(tmp_path)
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize(
    ("seeds", "match"),
    [
        ({"cee": [0], "sse": [0]}, "at least 2 finished seeds.*cee at 100: 1, sse at 100: 1"),
        ({"cee": [0, 1], "sse": [2, 3]}, r"cee and sse at batch_size=100 share 0 seed"),
    ],
)
def test_the_verdict_refuses_fewer_than_two_paired_seeds(tmp_path, seeds, match):
    write_choices(tmp_path, {"cee": {100: {"lr": 0.3}}, "sse": {100: {"lr": 3.0}}})
    for loss, lr in (("cee", 0.3), ("sse", 3.0)):
        for seed in seeds[loss]:
            final_run(tmp_path / "final", loss, lr, seed, 0.95, {"batch_size": 100})
    before = tree_digest(tmp_path)
    with pytest.raises(StudyError, match=match):
        verdict(tmp_path)
    assert tree_digest(tmp_path) == before


def test_the_verdict_refuses_unfinished_final_runs_and_runs_without_a_choice(tmp_path):
    write_choices(tmp_path, {"cee": {100: {"lr": 0.3}}})
    for seed in (0, 1):
        final_run(tmp_path / "final", "cee", 0.3, seed, 0.95, {"batch_size": 100})
        final_run(tmp_path / "final", "sse", 3.0, seed, 0.95, {"batch_size": 100})
    with pytest.raises(StudyError, match="holds no lr for loss=sse at batch_size=100"):
        verdict(tmp_path)
    (tmp_path / "tune" / "choices.yaml").unlink()
    with pytest.raises(StudyError, match=r"choices\.yaml: no such file.*losslab-study choose"):
        verdict(tmp_path)
    write_choices(tmp_path, {"cee": {100: {"lr": 0.3}}, "sse": {100: {"lr": 3.0}}})
    write_run(tmp_path / "final" / "loss=sse,seed=2", {"acc/test": [0.1]})  # killed: no result
    with pytest.raises(StudyError, match=r"1 final run\(s\) did not finish: loss=sse,seed=2"):
        verdict(tmp_path)
    assert not (tmp_path / "verdict.md").exists()


def test_the_fair_verdict_refuses_final_runs_that_differ_in_the_noise_rate(tmp_path):
    write_choices(tmp_path, {"cee": {100: {"lr": 0.3}}, "sse": {100: {"lr": 3.0}}})
    for loss, lr in (("cee", 0.3), ("sse", 3.0)):
        for seed in (0, 1):
            for p in (0.0, 0.4):
                by = {"batch_size": 100, "label_noise": p}
                final_run(tmp_path / "final", loss, lr, seed, 0.9, by)
    with pytest.raises(StudyError, match="two runs of the same loss and batch_size and seed=0"):
        verdict(tmp_path)
    assert not (tmp_path / "verdict.md").exists()


def test_the_noise_verdict_compares_last_epoch_and_early_stopped_accuracy(tmp_path, monkeypatch):
    import losslab.study.verdict

    plotted = {}
    plot_noise = losslab.study.verdict.plot_noise
    monkeypatch.setattr(
        losslab.study.verdict,
        "plot_noise",
        lambda lines, file: plot_noise(plotted.update(lines) or lines, file),
    )
    lrs = {"cee": 0.1, "sse": 1.0, "mae": 3.0}
    write_choices(tmp_path, {loss: {0.4: {"lr": lr}} for loss, lr in lrs.items()})
    last = {"cee": [0.70, 0.72, 0.69], "sse": [0.80, 0.79, 0.82], "mae": [0.84, 0.85, 0.83]}
    for loss, values in last.items():
        for seed, value in enumerate(values):
            # validation peaks at epoch 1, where test accuracy is 0.88 + seed / 100
            hp = {"loss": loss, "lr": lrs[loss], "seed": seed, "status": "ok",
                  "batch_size": 100, "label_noise": 0.4}  # fmt: skip
            curves = {"acc/val": [0.1, 0.6, 0.55], "acc/test": [0.1, 0.88 + seed / 100, value]}
            write_run(tmp_path / "final" / f"{loss}{seed}", curves, hp, [f"loss={loss}"])
    rows = verdict(tmp_path, NOISE)
    assert [(r["first"], r["second"]) for r in rows] == [("cee", "sse"), ("cee", "mae"),
                                                         ("sse", "mae")] * 2  # fmt: skip
    for row in rows[:3]:
        a, b = f32(last[row["first"]]), f32(last[row["second"]])
        assert row["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    assert all(r["diff"] == 0 and r["p"] == 1.0 for r in rows[3:])  # the same test_at_best
    text = (tmp_path / "verdict.md").read_text()
    assert "### test accuracy after the last epoch" in text
    assert "### test accuracy at the epoch the noisy validation accuracy picks" in text
    assert (tmp_path / "noise.png").stat().st_size > 10_000
    means = {
        label: {loss: [(v, s["mean"]) for v, s in points] for loss, points in lines.items()}
        for label, lines in plotted.items()
    }
    assert means == {
        "last epoch": {loss: [(0.4, pytest.approx(np.mean(f32(v))))] for loss, v in last.items()},
        "early-stopped": {loss: [(0.4, pytest.approx(np.mean(f32([0.88, 0.89, 0.9]))))]
                          for loss in ("cee", "sse", "mae")},
    }  # fmt: skip
    assert not (tmp_path / "reliability.png").exists()
    # the whole verdict as a user reads it (cells worked out as in the study's, above)
    first, rest = text.split("\n", 1)
    assert first == f"# losslab study: the verdict ({tmp_path}): {NOISE.title}"
    assert rest == (EXPECTED / "noise_verdict.md").read_text()
    with (tmp_path / "verdict.csv").open() as f:
        assert next(csv.reader(f)) == [
            "metric", "label_noise", "first", "second", "seeds", "diff", "sd", "ci_low",
            "ci_high", "p", "p_holm", "p_tost", "p_tost_holm", "word", "detectable",
            "seeds_to_decide", "lr_ratio", "near_tie",
        ]  # fmt: skip
    with (tmp_path / "losses.csv").open() as f:
        losses = list(csv.DictReader(f))
    assert [(r["loss"], r["n"]) for r in losses] == [("cee", "3"), ("sse", "3"), ("mae", "3")]
    assert float(losses[0]["test_acc_mean"]) == pytest.approx(np.mean(f32(last["cee"])))


def test_two_shared_seeds_compare_a_pair_whose_other_loss_is_missing_and_flag_either_tie(
    tmp_path, monkeypatch, capsys
):
    """cee and sse_logits only (the fair pair cee - sse has no runs), seeds 0 and 1; cee's lr
    was a near-tie. The figure gets a panel per batch size with the losses that ran there."""
    import losslab.study.verdict

    figures = []
    monkeypatch.setattr(
        losslab.study.verdict, "plot_reliability", lambda *args: figures.append(args)
    )
    cee, sse_logits = [0.95, 0.96], [0.94, 0.93]
    write_choices(tmp_path, {"cee": {100: {"lr": 0.3, "near_tie": True}},
                             "sse_logits": {100: {"lr": 1.0, "near_tie": False}}})  # fmt: skip
    for seed in (0, 1):
        final_run(tmp_path / "final", "cee", 0.3, seed, cee[seed], {"batch_size": 100})
        final_run(
            tmp_path / "final", "sse_logits", 1.0, seed, sse_logits[seed], {"batch_size": 100}
        )
    (row,) = verdict(tmp_path)
    assert (row["first"], row["second"], row["seeds"], row["near_tie"]) == (
        "cee",
        "sse_logits",
        2,
        True,
    )
    assert row["p"] == pytest.approx(stats.ttest_rel(f32(cee), f32(sse_logits)).pvalue, rel=1e-9)
    ((panels, title, file),) = figures
    assert {v: sorted(p) for v, p in panels.items()} == {100: ["cee", "sse_logits"]}
    assert title == "Reliability of the final models on the test set (seeds pooled)"
    assert file == tmp_path / "reliability.png"
    out = capsys.readouterr().out
    assert out.startswith("| batch size | loss ")
    assert "### test accuracy" in out
    assert out.endswith(
        f"\n\nlosslab-study: verdict.md, verdict.csv, losses.csv, reliability.png in {tmp_path}\n"
    )


def test_a_final_run_without_its_test_curve_is_refused_by_name(tmp_path):
    write_choices(tmp_path, {"cee": {100: {"lr": 0.3}}})
    hp = {
        "loss": "cee",
        "lr": 0.3,
        "seed": 0,
        "status": "ok",
        "batch_size": 100,
        "label_noise": 0.0,
    }
    run = write_run(tmp_path / "final" / "cee0", {"acc/val": [0.1, 0.5]}, hp, ["loss=cee"])
    with pytest.raises(StudyError) as refused:
        verdict(tmp_path)
    assert str(refused.value) == f"{run}: holds no test_acc (acc/test curve) to compare"


# -- losslab-study's settings: one line, status 2, nothing written ------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--dir", "st", "--margin", "0"],
        ["run", "--dir", "st", "--margin=-0.01"],
        ["noise", "--dir", "st", "--tune-seeds", "7,8", "--seeds", "0,8"],
        ["verdict", "st", "--margin", "0"],
    ],
)
@pytest.mark.process
def test_bad_study_settings_fail_in_one_line_through_the_command(tmp_path, args):
    fair_study(tmp_path / "st")  # a study folder that must stay as it is
    before = tree_digest(tmp_path)
    res = command(sys.executable, "-m", "losslab.study.stages", *args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("losslab-study: error: ")
    assert ("--margin=" in res.stderr) != ("share 8" in res.stderr)
    assert res.stdout == ""
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--lrs", "0,0.1"], "--lrs (optimizer.lr)=0,0.1: every value must be > 0"),
        (["--lrs", "-1"], "--lrs (optimizer.lr)"),
        (["--seeds", "0"], "--seeds=0: at least 2 distinct seeds"),
        (["--seeds", "3,3"], "--seeds=3,3: at least 2 distinct seeds"),
        (["--tune-seeds", "1,2", "--seeds", "2,3"], "share 2"),
        (["--margin", "1"], "--margin=1.0: the equivalence margin must be in (0, 1)"),
        (["--margin", "nan"], "--margin=nan"),
        (["data.val_size=0"], "data.val_size=0: the study chooses on a validation split"),
        (["seed=3"], "seed=3: use --tune-seeds and --seeds"),
        (["optimizer.lr=0.1"], "optimizer.lr=0.1: use --lrs"),
        (["data.batch_size=10"], "data.batch_size=10: use --batch-sizes"),
    ],
)
def test_bad_study_settings_are_refused_before_anything_runs(
    tmp_path, capsys, monkeypatch, args, key
):
    monkeypatch.chdir(tmp_path)
    assert study.main(["run", "--dir", "st", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert key in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["data.val_size=0"], "data.val_size=0: the study's tune stage chooses on a validation"),
     (["optimizer.lr=0,0.1"], "optimizer.lr")],
)  # fmt: skip
def test_the_study_presets_refuse_the_same_through_losslab_train(tmp_path, overrides, key):
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


def start(loss: str, seed: int, data_dir: Path) -> tuple[dict, list, tuple]:
    """What a run of ``loss`` with ``seed`` starts from, as losslab.train.train builds it: the
    initial weights, the training batches' indices over two epochs, and the training split."""
    from losslab.run.build import parts

    cfg = composed(f"loss={loss}", f"seed={seed}", "data.train_size=300", "data.val_size=1000",
                   f"data.data_dir={data_dir}", "data.label_noise=0.2")  # fmt: skip
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


def test_a_seed_gives_every_loss_the_same_initial_weights_and_batch_order(data_dir):
    runs = {loss: start(loss, 3, data_dir) for loss in ("cee", "sse", "mae")}
    weights, orders, split = runs["cee"]
    assert len(orders[0]) == 3
    assert orders[0] != orders[1]
    for loss in ("sse", "mae"):
        other_weights, other_orders, other_split = runs[loss]
        assert weights.keys() == other_weights.keys()
        assert all(torch.equal(weights[k], other_weights[k]) for k in weights), loss
        assert other_orders == orders
        assert all(torch.equal(a, b) for a, b in zip(split, other_split, strict=True))
    other_weights, other_orders, _ = start("cee", 4, data_dir)
    assert not any(torch.equal(weights[k], other_weights[k]) for k in weights if "weight" in k)
    assert other_orders != orders


# -- a tiny real study --------------------------------------------------------------------------

TINY_STUDY = ["--losses", "cee,sse", "--batch-sizes", "100", "--lrs", "0.1,1",
              "--tune-seeds", "7,8", "--seeds", "0,1", "data.train_size=300",
              "trainer.max_epochs=1", "hydra/launcher=basic"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.process
def test_a_tiny_study_runs_both_stages_to_the_verdict_then_skips_or_refuses_a_rerun(
    tmp_path, data_dir, capfd, monkeypatch
):
    res = ok(command(sys.executable, "-m", "losslab.study.stages", "run", "--dir", "st", *TINY_STUDY,
                     cwd=tmp_path))  # fmt: skip
    st = tmp_path / "st"
    choices = yaml.safe_load((st / "tune" / "choices.yaml").read_text())
    assert set(choices) == {"cee", "sse"}
    assert all(c[100]["grid"] == [0.1, 1.0] and c[100]["seeds"] == [7, 8] for c in choices.values())
    # stage 2 trained each loss at the lr stage 1 chose for it, with the final seeds only
    finals = {}
    for run in (st / "final").iterdir():
        if (run / "result.json").is_file():
            hp = json.loads((run / "result.json").read_text())["hparams"]
            finals.setdefault(hp["loss"], set()).add((hp["lr"], hp["seed"]))
    assert finals == {loss: {(choices[loss][100]["lr"], s) for s in (0, 1)} for loss in choices}
    with (st / "verdict.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert (row["metric"], row["batch_size"], row["first"], row["second"], row["seeds"]) == (
        "test_acc", "100", "cee", "sse", "2")  # fmt: skip
    text = (st / "verdict.md").read_text()
    assert re.search(r"\|\s+100 \| cee - sse[^|]*\| 2 \|", text), text
    assert (st / "reliability.png").stat().st_size > 10_000
    assert "losslab-study: verdict.md" in res.stdout

    # the same command again (in this process: the console script's main; its stages are
    # processes, whose output capfd sees): every job skipped, every file as it was
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    before = tree_digest(st)
    capfd.readouterr()
    assert study.main(["run", "--dir", "st", *TINY_STUDY]) == 0
    again = capfd.readouterr()
    assert (again.out + again.err).count("finished before, skipped") == 8 + 4
    assert tree_digest(st) == before

    # the same command training longer: the sweeper refuses the stale jobs, runs nothing
    longer = [*TINY_STUDY[:-2], "trainer.max_epochs=2", TINY_STUDY[-1]]
    with pytest.raises(SystemExit) as stopped:
        study.main(["run", "--dir", "st", *longer])
    refused = capfd.readouterr()
    assert stopped.value.code == 2, refused.out[-2000:] + refused.err[-2000:]
    assert refused.err.count("\n") == 1, refused.err
    assert refused.err.startswith("losslab-train: error: ")
    assert "trainer.max_epochs" in refused.err
    assert "Nothing was run" in refused.err
    assert tree_digest(st) == before


# -- losslab-study in this process: its stages' command lines and files ------------------------

TUNE_VAL = {  # (loss, lr) -> validation accuracy of tuning seeds 7 and 8
    ("cee", 0.1): (0.90, 0.92), ("cee", 1.0): (0.95, 0.97), ("cee", 3.0): (0.80, 0.70),
    ("sse", 0.1): (0.50, 0.60), ("sse", 1.0): (0.56, 0.58), ("sse", 3.0): None,  # diverged
}  # fmt: skip
FINAL_TEST = {"cee": (0.950, 0.953, 0.951), "sse": (0.900, 0.901, 0.902)}  # seeds 0, 1, 2


def fake_stages(calls: list[list[str]]):
    """``losslab.study.stages._train`` without training: it records each stage's command line and
    writes the runs that stage would leave (the tune grid of ``TUNE_VAL``; the final runs at
    the lr the choose stage wrote)."""

    def stage(args: list[str]) -> None:
        calls.append(args)
        sweep = Path(next(a for a in args if a.startswith("hydra.sweep.dir=")).split("=", 1)[1])
        noise = 0.2 if args[0].startswith("experiment=noise") else 0.0
        if args[0] in ("experiment=study_tune", "experiment=noise_tune") and "seed=7,8" in args:
            for (loss, lr), val in TUNE_VAL.items():
                for seed, v in zip((7, 8), val or (0.1, 0.1), strict=True):
                    status = "ok" if val else "diverged"
                    tune_run(sweep, loss, lr, seed, v, test=0.5, status=status, label_noise=noise)
        elif args[0] in ("experiment=study_final", "experiment=noise_final"):
            chosen = yaml.safe_load((sweep.parent / "tune" / "choices.yaml").read_text())
            key, by = (0.2, {"label_noise": 0.2}) if noise else (100, {"batch_size": 100})
            for loss, accs in FINAL_TEST.items():
                for seed, acc in enumerate(accs):
                    final_run(sweep, loss, chosen[loss][key]["lr"], seed, acc, by)
        else:
            raise SystemExit(3)  # as a failed stage does

    return stage


STUDY_ARGS = ["--losses", "cee,sse", "--batch-sizes", "100", "--lrs", "0.1,1,3",
              "--tune-seeds", "7,8", "--seeds", "0,1,2", "--margin", "0.01",
              "trainer.max_epochs=2"]  # fmt: skip


def test_the_study_runs_tune_choose_final_verdict_with_each_stages_command_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(study, "_train", fake_stages(calls))
    assert study.main(["run", "--dir", "st", *STUDY_ARGS]) == 0
    common = ["loss=cee,sse", "data.batch_size=100"]
    assert calls == [
        ["experiment=study_tune", "hydra.sweep.dir=st/tune", *common, "optimizer.lr=0.1,1,3",
         "seed=7,8", "trainer.max_epochs=2"],
        ["experiment=study_final", "hydra.sweep.dir=st/final", *common, "seed=0,1,2",
         "trainer.max_epochs=2"],
    ]  # fmt: skip
    # stage 2, worked out by hand from TUNE_VAL: cee's best mean (lr 1, 0.96) beats lr 0.1 by
    # 0.05 > the spread 0 of the differences; sse's lr 1 (0.57) leads lr 0.1 (0.55) by 0.02 <=
    # the std 0.0566 of (0.06, -0.02): a near-tie, so the smaller lr 0.1, on the grid's edge
    choices = yaml.safe_load((tmp_path / "st" / "tune" / "choices.yaml").read_text())
    cee, sse = choices["cee"][100], choices["sse"][100]
    assert (cee["lr"], cee["best_mean_lr"], cee["runner_up"], cee["near_tie"]) == (1, 1, 0.1, False)
    assert (cee["inside_grid"], cee["seeds"], cee["grid"]) == (True, [7, 8], [0.1, 1.0, 3.0])
    assert cee["margin"] == pytest.approx(0.05, abs=1e-6)
    assert cee["val_acc"] == pytest.approx(0.96, abs=1e-6)
    assert (sse["lr"], sse["best_mean_lr"], sse["runner_up"], sse["near_tie"]) == (0.1, 1, 1, True)
    assert sse["inside_grid"] is False
    assert sse["margin"] == pytest.approx(-0.02, abs=1e-6)
    choices_md = (EXPECTED / "study_choices.md").read_text()
    assert (tmp_path / "st" / "tune" / "choices.md").read_text() == choices_md
    out = capsys.readouterr().out
    table, notes = choices_md.split("\n\n", 2)[1:]
    assert f"{table}\n\n{notes.replace(chr(10) * 2, chr(10))}" in out
    assert "losslab-study: choices.yaml, choices.md in st/tune" in out
    # stage 4 read the final runs: cee leads by 0.050, 0.052, 0.049 on the paired seeds
    with (tmp_path / "st" / "verdict.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert (row["first"], row["second"], row["seeds"], row["batch_size"]) == (
        "cee",
        "sse",
        "3",
        "100",
    )
    assert float(row["diff"]) == pytest.approx(np.mean([0.05, 0.052, 0.049]), abs=1e-6)
    assert (row["word"], row["lr_ratio"], row["near_tie"]) == ("cee better", "0.1", "True")
    # cee 0.9513 ± 4.303 * 0.00153 / sqrt(3); the paired CI 0.0503 ± 4.303 * 0.00153 / sqrt(3)
    verdict_md = (tmp_path / "st" / "verdict.md").read_text()
    assert verdict_md == (EXPECTED / "study_verdict.md").read_text()


EXPECTED = TESTS / "expected"  # checked by hand: the comments above


def test_a_failed_stage_stops_the_study_and_the_defaults_and_retrain_reach_the_command_line(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(study, "_train", fake_stages(calls))
    with pytest.raises(SystemExit) as stopped:
        study.main(["noise", "--retrain"])
    assert stopped.value.code == 3
    assert calls == [[
        "experiment=noise_tune", "hydra.sweep.dir=logs/study-noise/tune", "loss=cee,sse,mae",
        "data.label_noise=0,0.2,0.4,0.6", "hydra.sweeper.retrain=true",
        "optimizer.lr=0.001,0.003,0.01,0.03,0.1,0.3,1,3", "seed=100,101",
    ]]  # fmt: skip
    calls.clear()

    def failing_stage(args: list[str]) -> None:
        calls.append(args)
        raise SystemExit(1)

    monkeypatch.setattr(study, "_train", failing_stage)
    with pytest.raises(SystemExit):
        study.main(["run"])
    assert calls == [[
        "experiment=study_tune", "hydra.sweep.dir=logs/study/tune", "loss=cee,sse,sse_logits",
        "data.batch_size=32,100,256,1024", "optimizer.lr=0.01,0.03,0.1,0.3,1,3", "seed=100,101",
    ]]  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.process
def test_a_stage_is_a_losslab_train_process_whose_failure_ends_the_study(tmp_path, capfd):
    with pytest.raises(SystemExit) as stopped:
        study._train(["loss=nope", f"hydra.run.dir={tmp_path / 'run'}"])
    assert stopped.value.code == 2
    out = capfd.readouterr()
    assert out.out.startswith("\nlosslab-study: losslab-train loss=nope hydra.run.dir=")
    assert "losslab-train: error: " in out.err
    assert "loss=nope" in out.err
    assert not (tmp_path / "run").exists()


def test_the_choose_and_verdict_commands_read_a_study_folder(tmp_path, capsys):
    tune = tmp_path / "tune"
    for (loss, lr), val in TUNE_VAL.items():
        if val:
            for seed, v in zip((7, 8), val, strict=True):
                tune_run(tune, loss, lr, seed, val=v, test=0.5, label_noise=0.2)
    assert study.main(["choose", str(tune), "--by", "label_noise"]) == 0
    choices = yaml.safe_load((tune / "choices.yaml").read_text())
    assert set(choices["cee"]) == {0.2}
    assert "label noise" in (tune / "choices.md").read_text()
    fair_study(tmp_path / "st")
    assert study.main(["verdict", str(tmp_path / "st"), "--margin", "0.002"]) == 0
    assert "±0.2 points" in (tmp_path / "st" / "verdict.md").read_text()
    assert study.main(["verdict", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("losslab-study: error: ")
    assert err.count("\n") == 1
    assert study.main(["verdict", str(tmp_path / "st"), "--noise"]) == 2


def test_the_noise_rates_must_lie_in_zero_to_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(study, "_train", fake_stages(calls))
    assert study.main(["noise", "--dir", "st", "--noise", "0,1"]) == 2
    assert "--noise=0,1: every label-noise rate must be in [0, 1)" in capsys.readouterr().err
    assert study.main(["noise", "--dir", "st", "--noise", "-0.1"]) == 2
    with pytest.raises(SystemExit):
        study.main(["noise", "--dir", "st", "--noise", "0,0.99"])
    assert calls[0][3] == "data.label_noise=0,0.99"


def test_a_grid_of_one_lr_or_with_every_other_lr_diverged_has_an_exact_choice(tmp_path):
    tune = tmp_path / "one"
    for seed in (7, 8):
        tune_run(tune, "cee", 0.1, seed, val=0.5, test=0.5)
    assert choose(tune)["cee"][100] == {
        "lr": 0.1, "best_mean_lr": 0.1, "val_acc": pytest.approx(0.5), "inside_grid": False,
        "grid": [0.1], "seeds": [7, 8], "runner_up": None, "margin": None, "near_tie": None,
    }  # fmt: skip
    tune = tmp_path / "diverged"
    for seed in (7, 8):
        tune_run(tune, "cee", 0.1, seed, val=0.5, test=0.5)
        tune_run(tune, "cee", 0.3, seed, val=0.6, test=0.5)
        tune_run(tune, "cee", 1.0, seed, val=0.9, test=0.5, status="diverged")
    assert choose(tune)["cee"][100] == {
        "lr": 0.3, "best_mean_lr": 0.3, "val_acc": pytest.approx(0.6), "inside_grid": True,
        "grid": [0.1, 0.3, 1.0], "seeds": [7, 8], "runner_up": 0.1,
        "margin": pytest.approx(0.1), "near_tie": False,
    }  # fmt: skip
    tune_run(tune, "sse", 0.1, 7, val=0.4, test=0.5)  # one seed, two lrs: no lr 1 column
    tune_run(tune, "sse", 0.3, 7, val=0.3, test=0.5)
    choose(tune)
    assert (tune / "choices.md").read_text().split("\n")[2:] == [
        "| loss | batch size |     lr 0.1 |     lr 0.3 |     lr 1 |               chosen lr | margin                                 |",
        "|------|-----------:|-----------:|-----------:|---------:|------------------------:|----------------------------------------|",
        "| cee  |        100 |     0.5000 | **0.6000** | diverged |                     0.3 | +0.1000 vs 0.1                         |",
        "| sse  |        100 | **0.4000** |     0.3000 |        - | 0.1 (edge of the grid!) | +0.1000 vs 0.3 (1 seed: noise unknown) |",
        "",
        "**The best lr lies on the edge of the grid for sse at 100**: widen the grid.",
        "",
        "Near-ties (another lr is within the seed-to-seed spread of its difference to the best "
        "mean, so another seed or machine could rank them the other way; the smallest of the tied "
        "lrs is chosen): none.",
        "",
    ]  # fmt: skip
    tune = tmp_path / "best diverged"  # the best lr's seeds diverged: its lr is never chosen
    for seed in (7, 8):
        tune_run(tune, "cee", 0.1, seed, val=0.5, test=0.5)
        tune_run(tune, "cee", 1.0, seed, val=0.9, test=0.5, status="diverged")
    choice = choose(tune)["cee"][100]
    assert (choice["lr"], choice["runner_up"], choice["margin"]) == (0.1, 1.0, math.inf)
    assert "+∞ vs 1" not in (tune / "choices.md").read_text()
    assert "∞ vs 1" in (tune / "choices.md").read_text()


def test_the_study_command_refuses_bad_lists_by_their_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args, line in (
        (["run", "--batch-sizes", "0"], "--batch-sizes=0: every value must be > 0"),
        (["run", "--batch-sizes", "1.5"], "--batch-sizes=1.5: expected a comma-separated list "
                                          "of ints"),
        (["noise", "--noise", "x"], "--noise=x: expected a comma-separated list of floats"),
        (["run", "--tune-seeds", "1,x"], "--tune-seeds (seed)=1,x: expected a comma-separated "
                                         "list of ints"),
        (["run", "--seeds=-1,2"], "--seeds (seed)=-1,2: every seed must be in [0, 2**32)"),
        (["run", "--lrs", ","], "--lrs (optimizer.lr)=,: give at least one value"),
    ):  # fmt: skip
        assert study.main([*args, "--dir", "st"]) == 2
        assert capsys.readouterr().err == f"losslab-study: error: {line}\n"
    with pytest.raises(SystemExit) as stopped:
        study.main([])  # a command is required
    assert stopped.value.code == 2
    with pytest.raises(SystemExit):
        study.main(["choose", "st/tune", "--by", "seed"])
    assert list(tmp_path.iterdir()) == []


def test_run_trains_the_jobs_again_only_when_asked(tmp_path, monkeypatch):
    calls: list[list[str]] = []

    def stop(args: list[str]) -> None:
        calls.append(args)
        raise SystemExit(1)

    monkeypatch.setattr(study, "_train", stop)
    options = {"losses": "cee,sse", "values": "100", "lrs": None}
    with pytest.raises(SystemExit):
        study.run(study.STUDIES["run"], tmp_path / "st", [], options)
    assert not any("retrain" in a for a in calls[0])
    assert "optimizer.lr=0.01,0.03,0.1,0.3,1,3" in calls[0]  # None: the study's default


def test_the_noise_study_chooses_by_noise_rate_and_compares_last_and_early_accuracy(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(study, "_train", fake_stages(calls))
    args = ["--losses", "cee,sse", "--noise", "0.2", "--lrs", "0.1,1,3", "--tune-seeds", "7,8",
            "--seeds", "0,1,2"]  # fmt: skip
    assert study.main(["noise", "--dir", "st", *args]) == 0
    assert [c[:4] for c in calls] == [
        ["experiment=noise_tune", "hydra.sweep.dir=st/tune", "loss=cee,sse", "data.label_noise=0.2"],
        ["experiment=noise_final", "hydra.sweep.dir=st/final", "loss=cee,sse",
         "data.label_noise=0.2"],
    ]  # fmt: skip
    choices = yaml.safe_load((tmp_path / "st" / "tune" / "choices.yaml").read_text())
    assert (choices["cee"][0.2]["lr"], choices["sse"][0.2]["lr"]) == (1, 0.1)
    assert "| loss | label noise |" in (tmp_path / "st" / "tune" / "choices.md").read_text()
    with (tmp_path / "st" / "verdict.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["metric"], r["label_noise"], r["first"], r["second"], r["word"]) for r in rows] == [
        ("test_acc", "0.2", "cee", "sse", "cee better"),
        ("test_at_best", "0.2", "cee", "sse", "cee better"),
    ]


def test_the_seed_flags_and_refused_overrides_are_named_as_given(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(study, "_train", fake_stages(calls))
    for args, line in (
        (["--tune-seeds", "5"], "--tune-seeds=5: at least 2 distinct seeds are needed"),
        (["--tune-seeds", "1,2,3", "--seeds", "3,2"], "--tune-seeds and --seeds share 2,3: the "
                                                      "seeds that tune the lr must never be seeds "
                                                      "that report"),
        (["+seed=3"], "+seed=3: use --tune-seeds and --seeds"),
        (["~loss"], "~loss: use --losses"),
        (["optimizer.lr = 1"], "optimizer.lr = 1: use --lrs"),
        (["hydra.sweep.dir=x"], "hydra.sweep.dir=x: use --dir"),
    ):  # fmt: skip
        assert study.main(["run", "--dir", "st", *args]) == 2
        assert capsys.readouterr().err == f"losslab-study: error: {line}\n"
    assert study.main(["noise", "--dir", "st", "data.label_noise=0.1"]) == 2
    assert capsys.readouterr().err.endswith("data.label_noise=0.1: use --noise\n")
    assert list(tmp_path.iterdir()) == []
    assert calls == []
    with pytest.raises(SystemExit):  # another validation size, or a seed-like key, is fine
        study.main(["run", "--dir", "st", "data.val_size=5000", "data.noise_seed=3"])
    assert calls[0][-2:] == ["data.val_size=5000", "data.noise_seed=3"]

"""Stage 2 (losslab.study.candidates): each loss's candidate lrs per compared value on the
validation split — the top-k by mean over the tuning seeds, a diverged lr last; the near-tie
from the paired (McNemar) standard error of the validation images, against values worked out by
hand; the grid's edge; the resolver the final stage reads; what it refuses."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import yaml
from fakeruns import stage_run

from losslab.study.candidates import Z95, candidate_lr, choose, mcnemar_se
from losslab.study.catalogue import Catalogue, StudyError


def catalogue(top_k: int = 2, losses=("cee", "sse")) -> Catalogue:
    return Catalogue("study", "data.batch_size", "batch size", losses, (100,), losses[0],
                     ("tuned",), {"tuned": ("test_acc",)}, top_k)  # fmt: skip


def hits(n: int, right: int, offset: int = 0) -> list[bool]:
    """``n`` images, ``right`` of them right: a block of ``right`` ones starting at ``offset``."""
    return [(i - offset) % n < right for i in range(n)]


def tune(study, table: dict, top_k: int = 2, with_hits: bool = False) -> dict:
    """Tuning runs of ``table``: ``(loss, lr) -> (val acc of seed 7, of seed 8)`` (None:
    diverged), then stage 2 on them. Their validation predictions (``with_hits``): right on a
    block of images from image 0, and for lr 0.1 from image 20."""
    for (loss, lr), accs in table.items():
        for seed, acc in zip((7, 8), accs or (0.1, 0.1), strict=True):
            right = hits(1000, round(acc * 1000), 20 if lr == 0.1 else 0)
            stage_run(study / "tune", loss, lr, seed, 100, val=[0.1, acc],
                      status="ok" if accs else "diverged",
                      hits=right if with_hits else None)  # fmt: skip
    return choose(study, catalogue(top_k))


# -- the paired standard error, by hand ---------------------------------------------------------


def test_the_mcnemar_standard_error_of_one_seed_is_worked_out_by_hand():
    a = [1, 1, 0, 1, 0, 1, 1, 1, 0, 1]
    b = [1, 0, 0, 1, 1, 1, 0, 1, 0, 1]
    # a right and b wrong at 1 and 6 (n10 = 2), the other way at 4 (n01 = 1): d = 0.1,
    # var = ((2 + 1) / 10 - 0.1**2) / 10 = 0.029
    diff, se = mcnemar_se([(a, b)])
    assert diff == pytest.approx(0.1)
    assert se == pytest.approx(math.sqrt(0.029))
    # the same as the variance of the paired differences of the images, over n
    h = np.subtract(a, b)
    assert se == pytest.approx(math.sqrt(h.var() / len(h)))


def test_over_seeds_the_differences_average_and_their_variances_add_over_s_squared():
    one = ([1, 1, 0, 1, 0, 1, 1, 1, 0, 1], [1, 0, 0, 1, 1, 1, 0, 1, 0, 1])  # d 0.1, var 0.029
    two = ([1, 1, 1, 1], [0, 1, 1, 1])  # d 0.25, var (0.25 - 0.0625) / 4 = 0.046875
    diff, se = mcnemar_se([one, two])
    assert diff == pytest.approx((0.1 + 0.25) / 2)
    assert se == pytest.approx(math.sqrt(0.029 + 0.046875) / 2)


def test_identical_predictions_have_no_difference_and_no_spread():
    assert mcnemar_se([([1, 0, 1], [1, 0, 1])]) == (0.0, 0.0)


# -- the candidates -----------------------------------------------------------------------------

GRID = {("cee", 0.1): (0.90, 0.92), ("cee", 1.0): (0.95, 0.97), ("cee", 3.0): (0.80, 0.70),
        ("sse", 0.1): (0.50, 0.60), ("sse", 1.0): (0.56, 0.58), ("sse", 3.0): None}  # fmt: skip


def test_the_candidates_are_the_best_k_by_mean_validation_accuracy_a_diverged_lr_last(tmp_path):
    chosen = tune(tmp_path, GRID)
    cee, sse = chosen["cee"][100], chosen["sse"][100]
    assert cee["lrs"] == [1.0, 0.1]  # 0.96 and 0.91 before 0.75
    assert sse["lrs"] == [1.0, 0.1]  # 0.57 and 0.55; the diverged lr 3 last
    assert sse["val_acc"][3.0] is None
    assert cee["margin"] == pytest.approx(0.05)
    assert (cee["grid"], cee["seeds"], cee["best"], cee["runner_up"]) == (
        [0.1, 1.0, 3.0],
        [7, 8],
        1.0,
        0.1,
    )
    written = yaml.safe_load((tmp_path / "tune" / "candidates.yaml").read_text())
    assert written["cee"][100]["lrs"] == [1.0, 0.1]
    text = (tmp_path / "tune" / "candidates.md").read_text()
    assert (
        "| cee  |        100 | **0.9100** | **0.9600** |   0.7500 | 1, 0.1 (edge of the grid) |"
        in text
    )
    assert "diverged" in text


def test_top_k_1_keeps_the_best_alone_and_3_takes_the_third_too(tmp_path):
    assert tune(tmp_path / "a", GRID, top_k=1)["cee"][100]["lrs"] == [1.0]
    assert tune(tmp_path / "b", GRID, top_k=3)["cee"][100]["lrs"] == [1.0, 0.1, 3.0]
    assert tune(tmp_path / "c", GRID, top_k=3)["sse"][100]["lrs"] == [1.0, 0.1]  # not the diverged


def test_a_close_pair_ranked_the_other_way_by_1e_4_gives_the_same_candidates(tmp_path):
    """What keeps a verdict from flipping with one close ranking: both orders of a close pair
    give the same set of lrs to the final seeds."""
    close = {("cee", 0.1): (0.9500, 0.9500), ("cee", 0.3): (0.9501, 0.9501),
             ("cee", 1.0): (0.90, 0.90), ("sse", 1.0): (0.5, 0.5), ("sse", 3.0): (0.4, 0.4)}  # fmt: skip
    flipped = {**close, ("cee", 0.3): (0.9499, 0.9499)}
    one, other = tune(tmp_path / "a", close), tune(tmp_path / "b", flipped)
    assert one["cee"][100]["best"] != other["cee"][100]["best"]  # the ranking flipped...
    assert sorted(one["cee"][100]["lrs"]) == sorted(other["cee"][100]["lrs"]) == [0.1, 0.3]


def test_a_near_tie_is_within_1_96_paired_standard_errors_of_the_validation_images(tmp_path):
    # 1,000 images a seed; the best lr right on images [0, 950) (seed 7) and [0, 970) (seed 8);
    # cee's runner-up on [20, 967) and [20, 987): 20 images only the best gets, 17 only the
    # runner-up gets, d = 0.003 a seed
    table = {("cee", 1.0): (0.950, 0.970), ("cee", 0.1): (0.947, 0.967), ("cee", 3.0): (0.5, 0.5),
             ("sse", 1.0): (0.950, 0.970), ("sse", 0.1): (0.900, 0.920), ("sse", 3.0): (0.5, 0.5)}  # fmt: skip
    chosen = tune(tmp_path, table, with_hits=True)
    # cee: per seed n10 = 20, n01 = 17, d = 0.003, var = (37 / 1000 - 0.003**2) / 1000
    se = math.sqrt(2 * (0.037 - 0.003**2) / 1000) / 2
    assert chosen["cee"][100]["se"] == pytest.approx(se)
    assert chosen["cee"][100]["margin"] == pytest.approx(0.003, abs=1e-6)  # float32 curves
    assert Z95 * se >= 0.003  # 0.003 vs 0.0084: the images cannot tell them apart
    assert chosen["cee"][100]["near_tie"] is True
    # sse's runner-up right on [20, 920) and [20, 940): n10 = 50, n01 = 0, d = 0.05 against
    # 1.96 standard errors of 0.0095: a clear winner
    assert chosen["sse"][100]["near_tie"] is False
    text = (tmp_path / "tune" / "candidates.md").read_text()
    assert f"+0.0030 ± {Z95 * se:.4f} vs 0.1, near-tie" in text
    assert "Near-ties (best minus runner-up within 1.96 paired standard errors" in text
    assert "cee at 100." in text


def test_without_recorded_predictions_the_near_tie_is_unknown(tmp_path):
    assert tune(tmp_path, GRID)["cee"][100]["near_tie"] is None


def test_a_candidate_on_the_edge_of_the_grid_is_flagged(tmp_path):
    table = {("cee", 0.1): (0.9, 0.9), ("cee", 1.0): (0.95, 0.95), ("cee", 3.0): (0.96, 0.96),
             ("sse", 0.1): (0.8, 0.8), ("sse", 0.3): (0.95, 0.95), ("sse", 1.0): (0.9, 0.9),
             ("sse", 3.0): (0.7, 0.7)}  # fmt: skip
    chosen = tune(tmp_path, table)
    assert chosen["cee"][100]["edge"] == [3.0]
    assert chosen["sse"][100]["edge"] == []
    text = (tmp_path / "tune" / "candidates.md").read_text()
    assert "3, 1 (edge of the grid)" in text
    assert "**A candidate lies on the edge of the grid for cee at 100**" in text


def test_a_copy_of_a_tuning_run_counts_once_and_another_run_of_its_cell_is_refused(tmp_path):
    tune(tmp_path, GRID)
    tune_dir = tmp_path / "tune"
    first = sorted(p for p in tune_dir.iterdir() if p.is_dir())[0]
    shutil.copytree(first, tune_dir / "a copy", symlinks=True)
    again = choose(tmp_path, catalogue())
    assert again == yaml.safe_load((tune_dir / "candidates.yaml").read_text())
    assert again["cee"][100]["seeds"] == [7, 8]  # not 7, 7, 8
    other = stage_run(tune_dir, "cee", 1.0, 7, 100, val=[0.1, 0.5], name="another")
    (other / ".hydra" / "resolved.yaml").write_text(
        (other / ".hydra" / "resolved.yaml")
        .read_text()
        .replace("label_noise: 0.0", "label_noise: 0.2")
    )
    with pytest.raises(
        StudyError, match="two runs of loss=cee, the same compared value, lr=1 and seed=7"
    ):
        choose(tmp_path, catalogue())


def test_every_lr_diverged_or_no_validation_split_is_refused_by_its_key(tmp_path):
    with pytest.raises(
        StudyError, match=r"^optimizer.lr: every lr of the grid \[0.1, 1.0\] diverged"
    ):
        tune(tmp_path / "a", {("cee", 0.1): None, ("cee", 1.0): None})
    stage_run(tmp_path / "b" / "tune", "cee", 0.1, 7, 100, test=[0.1, 0.5])
    with pytest.raises(StudyError, match=r"^data.val_size: the tuning runs .* hold no validation"):
        choose(tmp_path / "b", catalogue())
    with pytest.raises(StudyError, match="no such folder; run the stage"):
        choose(tmp_path / "c", catalogue())


def test_the_final_stage_reads_a_candidate_by_rank_and_a_rank_past_the_last_names_it_again(
    tmp_path,
):
    tune(tmp_path, GRID, top_k=1)
    file = str(tmp_path / "tune" / "candidates.yaml")
    assert candidate_lr("cee", 100, 0, file) == 1.0
    assert candidate_lr("cee", 100, 1, file) == 1.0  # one candidate: the second job is the first
    with pytest.raises(StudyError, match=r"holds no lr for loss=mae at 100 \(it has: cee: \[100\]"):
        candidate_lr("mae", 100, 0, file)
    with pytest.raises(StudyError, match=r"no tuning candidates at .*: run the study.s stage 1"):
        candidate_lr("cee", 100, 0, str(tmp_path / "nowhere.yaml"))


# -- a near-tie at the cut: both lrs are candidates ---------------------------------------------


def cut(study, third: float, n: int = 10_000) -> dict:
    """cee's lrs 1 (best), 0.3 (right on images [0, 9500)) and 0.1 (right on [20, 20 + third*n)),
    3 (far behind); sse's 0.1 well behind its 0.3; seeds 7 and 8 alike; stage 2 with k = 2."""
    table = {("cee", 1.0): (0.97, 0), ("cee", 0.3): (0.95, 0), ("cee", 0.1): (third, 20),
             ("cee", 3.0): (0.5, 0), ("sse", 1.0): (0.97, 0), ("sse", 0.3): (0.95, 0),
             ("sse", 0.1): (0.90, 20)}  # fmt: skip
    for (loss, lr), (acc, offset) in table.items():
        right = round(acc * n)
        for seed in (7, 8):
            stage_run(study / "tune", loss, lr, seed, 100, val=[0.1, right / n],
                      hits=[offset <= i < offset + right for i in range(n)])  # fmt: skip
    return choose(study, catalogue())


@pytest.mark.parametrize("third", [0.9501, 0.9499])
def test_an_lr_tied_with_the_kth_candidate_is_a_candidate_too_whichever_ranks_first(
    tmp_path, third
):
    """The cut between the k-th and the next lr is a ranking too: a pair 1e-4 apart, ranked one
    way or the other, gives the same candidates (images [0, 20) only 0.3 gets right, 21 or 19
    past 9,500 only 0.1 does: d = 1e-4 against 1.96 standard errors of 0.00045)."""
    chosen = cut(tmp_path, third)
    cee, sse = chosen["cee"][100], chosen["sse"][100]
    assert sorted(cee["lrs"]) == [0.1, 0.3, 1.0]
    assert cee["lrs"][0] == 1.0
    assert cee["tied"] == ([0.3] if third > 0.95 else [0.1])  # whichever ranks third
    # sse's 0.1: right on [20, 9020), 500 images fewer: d = 0.05, far past 1.96 x 0.0015
    assert (sse["lrs"], sse["tied"]) == ([1.0, 0.3], [])
    text = (tmp_path / "tune" / "candidates.md").read_text()
    assert "1, 0.3, 0.1 (tied)" in text or "1, 0.1, 0.3 (tied)" in text
    assert '"(tied)": below the best 2, but a near-tie of the last' in text


def test_the_tie_at_the_cut_is_worked_out_by_hand_on_the_validation_images(tmp_path):
    """0.3 right on [0, 9500), 0.1 on [20, 9490): n10 = 20 + 10 = 30, n01 = 0, d = 0.003 a seed,
    var = (0.003 - 0.003**2) / 10,000, se over 2 like seeds = sqrt(var / 2) = 0.000387: 1.96 se =
    0.000758 < 0.003, no tie; on [20, 9510): n10 = 20, n01 = 10, d = 0.001, se = 0.000387,
    1.96 se = 0.000759 < 0.001, no tie either; on [20, 9519): n10 = 20, n01 = 19, d = 0.0001,
    se = 0.000442, a tie."""
    assert chosen_lrs(tmp_path / "a", 0.947) == [1.0, 0.3]
    assert chosen_lrs(tmp_path / "b", 0.949) == [1.0, 0.3]
    assert chosen_lrs(tmp_path / "c", 0.9499) == [1.0, 0.3, 0.1]


def chosen_lrs(study, third: float) -> list[float]:
    return cut(study, third)["cee"][100]["lrs"]


def test_without_recorded_predictions_no_lr_joins_at_the_cut(tmp_path):
    chosen = tune(tmp_path, GRID)
    assert chosen["cee"][100]["tied"] == []

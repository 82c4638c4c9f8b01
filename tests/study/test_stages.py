"""losslab-study (losslab.study.stages): its defaults are its experiment configs' sweeps; every bad
setting is refused in one line, status 2, nothing written; the stages run in order with their
command lines; tiny real studies end to end — the fair one (then a rerun skips everything, and
one with other settings is refused), the label-noise one with both arms, and one with a loss of
the user's own, from a module and a YAML outside the package."""

from __future__ import annotations

import csv
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import child_env, command, ok, tree_digest
from fakeruns import stage_run

from losslab.study import stages
from losslab.study.catalogue import Catalogue
from losslab.study.selection import drop_stale

# -- the defaults: one place each ---------------------------------------------------------------


def test_a_studys_defaults_are_the_sweeps_of_its_experiment_configs():
    conf = Path(stages.__file__).parents[1] / "conf" / "experiment"
    tune = yaml.safe_load((conf / "noise_tune.yaml").read_text())["hydra"]["sweeper"]["params"]
    assert stages.defaults(stages.STUDIES["noise"]) == {
        "losses": tune["loss"],
        "values": tune["data.label_noise"],
        "lrs": tune["optimizer.lr"],
        "tune_seeds": str(tune["seed"]),
        "seeds": "0,1,2,3,4,5,6,7,8,9",
        "top_k": "2",
    }
    assert stages.defaults(stages.STUDIES["run"])["values"] == "32,100,256,1024"


# -- bad settings: one line, status 2, nothing written ------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--top-k", "0"], "--top-k=0: k must be a positive integer, the number of stage 1's best lrs"),
        (["run", "--top-k", "two"], "--top-k=two: k must be a positive integer"),
        (["noise", "--noise", "0.2,0.4"], "--arms=fixed needs the clean rate 0 in --noise (0.2,0.4)"),
        (["noise", "--arms", "tuned,nested"], "--arms=tuned,nested: no arm 'nested' in this study; its arms are tuned, fixed"),
        (["run", "--arms", "fixed"], "--arms=fixed: no arm 'fixed' in this study; its arms are tuned"),
        (["run", "--losses", "cee,sse", "--reference", "mae"], "--reference=mae: not one of --losses (cee,sse)"),
        (["run", "--losses", "cee,cee"], "--losses=cee,cee: give distinct loss config names"),
        (["run", "--lrs", "0,0.1"], "--lrs (optimizer.lr)=0,0.1: every value must be > 0"),
        (["run", "--seeds", "3,3"], "--seeds=3,3: at least 2 distinct seeds"),
        (["run", "--tune-seeds", "1,2", "--seeds", "2,3"], "--tune-seeds and --seeds share 2"),
        (["run", "--margin", "1"], "--margin=1.0: the equivalence margin must be in (0, 1)"),
        (["noise", "--noise", "0,1"], "--noise=0,1: every label-noise rate must be in [0, 1)"),
        (["run", "data.val_size=0"], "data.val_size=0: the study chooses on a validation split"),
        (["run", "study.lr_rank=1"], "study.lr_rank=1: use --top-k"),
        (["run", "data.batch_size=10"], "data.batch_size=10: use --batch-sizes"),
        (["verdict", "nowhere"], "nowhere/study.yaml: no such file; nowhere is not a study folder"),
    ],
)  # fmt: skip
def test_bad_study_settings_fail_in_one_line_before_anything_runs(
    tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stages, "_train", lambda *a: pytest.fail("a stage ran"))
    assert (
        stages.main([args[0], *(["--dir", "st"] if args[0] != "verdict" else []), *args[1:]]) == 2
    )
    _out, err = capsys.readouterr()
    assert err.count("\n") == 1, err
    assert err.startswith("losslab-study: error: ")
    assert message in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.process
def test_the_console_command_refuses_a_bad_arm_in_one_line_leaving_the_study_as_it_was(tmp_path):
    Catalogue("noise", "data.label_noise", "label noise", ("cee",), (0.0,), None, ("tuned",),
              {"tuned": ("test_acc",)}).save(tmp_path / "st")  # fmt: skip
    before = tree_digest(tmp_path)
    res = command(sys.executable, "-m", "losslab.study.stages", "noise", "--dir", "st", "--arms",
                  "memorize", cwd=tmp_path)  # fmt: skip
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (
        "losslab-study: error: --arms=memorize: no arm 'memorize' in this study; its arms are "
        "tuned, fixed\n"
    )
    assert tree_digest(tmp_path) == before


# -- the stages, in order, with their command lines ---------------------------------------------


def fake_stages(calls: list[list[str]]):
    """``losslab.study.stages._train`` without training: it records each stage's command line and
    writes the runs that stage would leave (the tuning grid; each candidate's final runs; the
    fixed arm at each seed's clean lr)."""

    def stage(args: list[str], title: str) -> None:
        calls.append(args)
        sweep = Path(next(a for a in args if a.startswith("hydra.sweep.dir=")).split("=", 1)[1])
        experiment = next(a for a in args if a.startswith("experiment=")).split("=")[1]
        values = [
            float(v)
            for v in next(a for a in args if a.startswith("data.label_noise="))
            .split("=")[1]
            .split(",")
        ]
        if experiment == "noise_tune":
            for loss, best in (("cee", 0.1), ("sse", 1.0)):
                for lr in (0.1, 1.0, 3.0):
                    for seed in (7, 8):
                        for p in values:
                            acc = 0.9 if lr == best else 0.8 if lr == 3.0 else 0.85
                            stage_run(
                                sweep, loss, lr, seed, p, key="data.label_noise", val=[0.1, acc]
                            )
        elif experiment == "noise_final":
            chosen = yaml.safe_load((sweep.parent / "tune" / "candidates.yaml").read_text())
            for loss, cells in chosen.items():
                for p in values:
                    for rank, lr in enumerate(cells[p]["lrs"]):
                        for seed in (0, 1, 2):
                            stage_run(sweep, loss, lr, seed, p, key="data.label_noise",
                                      val=[0.1, 0.9 - 0.01 * rank], test=[0.1, 0.9 - p / 3 + 0.001 * seed])  # fmt: skip
        elif experiment == "noise_fixed":
            chosen = yaml.safe_load((sweep.parent / "final" / "selection.yaml").read_text())[
                "choices"
            ]
            for loss in ("cee", "sse"):
                for p in values:
                    for seed in (0, 1, 2):
                        lr = chosen[loss][0.0][seed]["test_acc"]["lr"]
                        memo = (0.3 if loss == "cee" else 0.1) + 0.01 * seed
                        stage_run(sweep, loss, lr, seed, p, key="data.label_noise", val=[0.1, 0.7],
                                  test=[0.1, 0.8], curves={"memo/train": [0.0, memo]})  # fmt: skip
        else:
            raise SystemExit(3)  # as a failed stage does

    return stage


ARGS = ["--losses", "cee,sse", "--noise", "0,0.4", "--lrs", "0.1,1,3", "--tune-seeds", "7,8",
        "--seeds", "0,1,2", "--top-k", "2", "trainer.max_epochs=2"]  # fmt: skip


def test_the_study_runs_tune_choose_final_fixed_and_verdict_with_each_stages_command_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(stages, "_train", fake_stages(calls))
    assert stages.main(["noise", "--dir", "st", *ARGS, "--config-dir", "mine"]) == 0
    assert calls == [
        ["--config-dir", "mine", "experiment=noise_tune", "hydra.sweep.dir=st/tune", "loss=cee,sse",
         "data.label_noise=0,0.4", "optimizer.lr=0.1,1,3", "seed=7,8", "trainer.max_epochs=2"],
        ["--config-dir", "mine", "experiment=noise_final", "hydra.sweep.dir=st/final", "loss=cee,sse",
         "data.label_noise=0,0.4", "study.lr_rank=0,1", "seed=0,1,2", "trainer.max_epochs=2"],
        ["--config-dir", "mine", "experiment=noise_fixed", "hydra.sweep.dir=st/fixed", "loss=cee,sse",
         "data.label_noise=0.4", "seed=0,1,2", "trainer.max_epochs=2"],
    ]  # fmt: skip
    st = tmp_path / "st"
    catalogue = Catalogue.load(st)
    assert (catalogue.losses, catalogue.values, catalogue.reference, catalogue.arms) == (
        ("cee", "sse"), (0.0, 0.4), None, ("tuned", "fixed"))  # fmt: skip
    assert yaml.safe_load((st / "tune" / "candidates.yaml").read_text())["cee"][0.0]["lrs"] == [
        0.1,
        1.0,
    ]
    with (st / "verdict.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["arm"], r["metric"], r["value"]) for r in rows] == [
        ("tuned", "test_acc", "0.0"), ("tuned", "test_acc", "0.4"),
        ("tuned", "test_at_best", "0.0"), ("tuned", "test_at_best", "0.4"),
        ("fixed", "test_acc", "0.4"), ("fixed", "test_at_best", "0.4"), ("fixed", "memorized", "0.4"),
    ]  # fmt: skip
    assert rows[-1]["word"] == "sse memorizes less"
    out = capsys.readouterr().out
    assert out.index("stage 2 of 4, choose") < out.index("stage 4 of 4, the verdict")


def test_the_final_stage_sweeps_as_many_ranks_as_the_most_candidates_of_a_cell(
    tmp_path, monkeypatch
):
    """An lr tied with the k-th joins the candidates (losslab.study.candidates): the final sweep
    then names ranks up to the largest cell's, and the smaller cells' extra ranks name their
    last candidate again (trained once)."""
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(stages, "_train", fake_stages(calls))
    real = stages.choose

    def with_a_tie(study_dir, catalogue):
        chosen = real(study_dir, catalogue)
        chosen["sse"][0.4]["lrs"] = [*chosen["sse"][0.4]["lrs"], 0.3]  # as if 0.3 tied
        return chosen

    monkeypatch.setattr(stages, "choose", with_a_tie)
    assert stages.main(["noise", "--dir", "st", *ARGS]) == 0
    assert "study.lr_rank=0,1,2" in calls[1]


def test_retrain_drops_each_final_run_whose_lr_is_no_longer_the_candidate_of_its_rank(tmp_path):
    """Stage 2 chose again: cee's candidates went from [0.1, 0.3] to [0.3, 1]. The rank-0 run
    (0.1) is stale; so is the rank-1 run (0.3, now rank 0's lr), which would otherwise stand in
    for the rank-0 job while its own folder is retrained with lr 1, leaving 0.3 without a run."""
    final = tmp_path / "final"
    for rank, lr in enumerate((0.1, 0.3)):
        stage_run(final, "cee", lr, 0, 0.0, key="data.label_noise", val=[0.5], rank=rank,
                  name=f"loss=cee,data.label_noise=0,study.lr_rank={rank},seed=0")  # fmt: skip
    stage_run(final, "sse", 1.0, 0, 0.0, key="data.label_noise", val=[0.5], rank=0,
              name="loss=sse,data.label_noise=0,study.lr_rank=0,seed=0")  # fmt: skip
    stage_run(final, "sse", 1.0, 0, 0.0, key="data.label_noise", val=[0.5], rank=1,
              name="loss=sse,data.label_noise=0,study.lr_rank=1,seed=0")  # fmt: skip
    chosen = {"cee": {0.0: {"lrs": [0.3, 1.0]}}, "sse": {0.0: {"lrs": [1.0]}}}
    catalogue = Catalogue("noise", "data.label_noise", "label noise", ("cee", "sse"), (0.0,),
                          None, ("tuned",), {"tuned": ("test_acc",)})  # fmt: skip
    assert drop_stale(final, catalogue, chosen) == [
        "loss=cee,data.label_noise=0,study.lr_rank=0,seed=0",
        "loss=cee,data.label_noise=0,study.lr_rank=1,seed=0",
    ]
    # sse's one candidate: a rank past it names it again, so its rank-1 run is no stale run
    assert sorted(p.name for p in final.iterdir()) == [
        "loss=sse,data.label_noise=0,study.lr_rank=0,seed=0",
        "loss=sse,data.label_noise=0,study.lr_rank=1,seed=0",
    ]
    assert drop_stale(tmp_path / "nowhere", catalogue, chosen) == []


def test_a_failed_stage_stops_the_study_and_retrain_and_reference_reach_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(
        stages, "_train", lambda args, title: (calls.append(args), stages.sys.exit(3))
    )
    with pytest.raises(SystemExit) as stopped:
        stages.main(
            ["run", "--dir", "st", "--retrain", "--losses", "sse,cee", "--reference", "all"]
        )
    assert stopped.value.code == 3
    (args,) = calls
    assert args[:3] == ["experiment=study_tune", "hydra.sweep.dir=st/tune", "loss=sse,cee"]
    assert "hydra.sweeper.retrain=true" in args
    assert not (tmp_path / "st" / "study.yaml").exists()  # written once stage 1 has run


def test_the_choose_and_verdict_commands_read_the_study_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stages, "_train", fake_stages([]))
    assert stages.main(["noise", "--dir", "st", *ARGS]) == 0
    before = (tmp_path / "st" / "verdict.md").read_text()
    (tmp_path / "st" / "verdict.md").unlink()
    capsys.readouterr()
    assert stages.main(["choose", "st"]) == 0
    assert "losslab-study: candidates.yaml, candidates.md in st/tune" in capsys.readouterr().out
    assert stages.main(["verdict", "st"]) == 0
    assert (tmp_path / "st" / "verdict.md").read_text() == before


# -- tiny real studies --------------------------------------------------------------------------

TINY = ["--lrs", "0.1,1", "--tune-seeds", "7,8", "--seeds", "0,1", "data.train_size=300",
        "data.val_size=300", "trainer.max_epochs=1", "hydra/launcher=basic"]  # fmt: skip


def study_command(*args: str, cwd: Path, env: dict | None = None):
    return command(sys.executable, "-m", "losslab.study.stages", *args, cwd=cwd, env=env)


@pytest.mark.slow
@pytest.mark.process
def test_a_tiny_fair_study_runs_to_its_verdict_then_skips_or_refuses_a_rerun(
    tmp_path, data_dir, capfd, monkeypatch
):
    res = ok(
        study_command(
            "run", "--dir", "st", "--losses", "cee,sse", "--batch-sizes", "100", *TINY, cwd=tmp_path
        )
    )
    st = tmp_path / "st"
    chosen = yaml.safe_load((st / "tune" / "candidates.yaml").read_text())
    assert {loss: c[100]["lrs"] for loss, c in chosen.items()}.keys() == {"cee", "sse"}
    finals = set()
    for run in (st / "final").iterdir():
        if (run / "result.json").is_file():
            hp = json.loads((run / "result.json").read_text())["hparams"]
            finals.add((hp["loss"], hp["lr"], hp["seed"]))
    # every candidate with every final seed, no tuning seed
    assert finals == {
        (loss, lr, s) for loss, c in chosen.items() for lr in c[100]["lrs"] for s in (0, 1)
    }
    with (st / "verdict.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert (row["arm"], row["metric"], row["value"], row["first"], row["second"], row["seeds"]) == (
        "tuned", "test_acc", "100", "cee", "sse", "2")  # fmt: skip
    assert (st / "reliability.png").stat().st_size > 10_000
    assert "losslab-study: verdict.md" in res.stdout
    assert re.search(r"^final 8/8 ", res.stdout, flags=re.M)  # the progress lines of a stage

    # the same command again (its stages are processes, whose output capfd sees): every job
    # skipped, every file of the stages as it was
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    before = tree_digest(st / "final")
    capfd.readouterr()
    assert (
        stages.main(["run", "--dir", "st", "--losses", "cee,sse", "--batch-sizes", "100", *TINY])
        == 0
    )
    again = capfd.readouterr().out
    assert "0 job(s) into st/tune; 8 finished before" in again
    assert "0 job(s) into st/final; 8 finished before" in again
    assert tree_digest(st / "final") == before

    # training longer: the sweeper refuses the stale jobs, runs nothing
    longer = [*TINY[:-2], "trainer.max_epochs=2", TINY[-1]]
    with pytest.raises(SystemExit) as stopped:
        stages.main(["run", "--dir", "st", "--losses", "cee,sse", "--batch-sizes", "100", *longer])
    refused = capfd.readouterr()
    assert stopped.value.code == 2
    assert refused.err.count("\n") == 1, refused.err
    assert "trainer.max_epochs" in refused.err
    assert "Nothing was run" in refused.err
    assert tree_digest(st / "final") == before


@pytest.mark.slow
@pytest.mark.process
def test_a_tiny_noise_study_runs_both_arms_to_its_verdict(tmp_path, data_dir):
    ok(
        study_command(
            "noise", "--dir", "st", "--losses", "cee,mae", "--noise", "0,0.4", *TINY,
            "--tune-seeds", "7", cwd=tmp_path,
        )
    )  # fmt: skip
    # one tuning seed is enough to choose: stage 2 judges ties on the validation images
    candidates = yaml.safe_load((tmp_path / "st" / "tune" / "candidates.yaml").read_text())
    assert candidates["cee"][0.0]["seeds"] == [7]
    st = tmp_path / "st"
    selection = yaml.safe_load((st / "final" / "selection.yaml").read_text())["choices"]
    fixed = {}
    for run in (st / "fixed").iterdir():
        if (run / "result.json").is_file():
            hp = json.loads((run / "result.json").read_text())["hparams"]
            fixed[(hp["loss"], hp["seed"])] = (hp["lr"], hp["label_noise"])
    # the fixed arm: each loss's seed at the lr it chose on clean labels, at p = 0.4 only
    assert fixed == {(loss, s): (selection[loss][0.0][s]["test_acc"]["lr"], 0.4)
                     for loss in ("cee", "mae") for s in (0, 1)}  # fmt: skip
    # where that lr is one of the seed's candidates at p = 0.4, the final stage's run is copied
    # (not trained again: its result.json, times included, is the same file); with two lrs in
    # the grid both are candidates everywhere, so here every fixed run is a copy
    final = {}
    for run in (st / "final").iterdir():
        if (run / "result.json").is_file():
            hp = json.loads((run / "result.json").read_text())["hparams"]
            final[(hp["loss"], hp["seed"], hp["lr"], hp["label_noise"])] = run
    copies = {(loss, seed): final[(loss, seed, *fixed[(loss, seed)])]
              for loss, seed in fixed if (loss, seed, *fixed[(loss, seed)]) in final}  # fmt: skip
    assert sorted(copies) == sorted(fixed)
    for (loss, seed), source in copies.items():
        copy = st / "fixed" / f"loss={loss},data.label_noise=0.4,seed={seed}"
        assert (copy / "result.json").read_bytes() == (source / "result.json").read_bytes()
    with (st / "verdict.csv").open() as f:
        rows = [(r["arm"], r["metric"], r["value"]) for r in csv.DictReader(f)]
    assert rows == [
        ("tuned", "test_acc", "0.0"), ("tuned", "test_acc", "0.4"),
        ("tuned", "test_at_best", "0.0"), ("tuned", "test_at_best", "0.4"),
        ("fixed", "test_acc", "0.4"), ("fixed", "test_at_best", "0.4"), ("fixed", "memorized", "0.4"),
    ]  # fmt: skip
    assert (st / "noise.png").stat().st_size > 10_000


GCE = '''
"""Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018): (1 - p_y**q) / q per sample."""
import torch
from torch import nn


class GCELoss(nn.Module):
    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        self.q = q

    def forward(self, logits, target):
        p = torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        return ((1 - p.clamp_min(1e-12) ** self.q) / self.q).mean()
'''


@pytest.mark.slow
@pytest.mark.process
def test_a_loss_of_the_users_own_goes_through_the_study_to_the_verdict(tmp_path, data_dir):
    """Nothing of the package touched: a module on the user's path and a YAML in their own
    config folder; the verdict compares the user's loss with cee."""
    (tmp_path / "mylosses.py").write_text(textwrap.dedent(GCE))
    (tmp_path / "my_conf" / "loss").mkdir(parents=True)
    (tmp_path / "my_conf" / "loss" / "gce.yaml").write_text("_target_: mylosses.GCELoss\nq: 0.7\n")
    env = {"PYTHONPATH": f"{tmp_path}{':' + child_env()['PYTHONPATH']}"}
    ok(study_command("run", "--dir", "st", "--config-dir", "my_conf", "--losses", "cee,gce",
                     "--batch-sizes", "100", *TINY, cwd=tmp_path, env=env))  # fmt: skip
    with (tmp_path / "st" / "verdict.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert (row["first"], row["second"], row["seeds"]) == ("cee", "gce", "2")
    assert "cee - gce" in (tmp_path / "st" / "verdict.md").read_text()

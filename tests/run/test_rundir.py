"""The run folder's owner, in process: every status, the config comparison, and the resume and
sweep decisions, on folders built file by file (no training)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from losslab.errors import UsageError
from losslab.run.identity import NEUTRAL_KEYS, differences, flatten, identity
from losslab.run.rundir import RunDir, find_runs, missing_folders, remove_made

CONFIG = {
    "data": {"batch_size": 100, "data_dir": "/a", "train_size": None},
    "optimizer": {"lr": 0.1},
    "trainer": {"max_epochs": 5, "max_steps": -1, "enable_progress_bar": True},
    "callbacks": {"model_checkpoint": {"dirpath": "/a/checkpoints"}, "crash": {"epoch": 1}},
    "seed": 0,
    "threads": 1,
}
CHOICES = {"loss": "cee", "optimizer": "sgd", "hydra/launcher": "basic"}


def started(folder, config=CONFIG, choices=CHOICES) -> RunDir:
    """A run folder whose start wrote its config files (as losslab-train does first)."""
    run = RunDir(folder)
    hydra = yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    run.write_config(yaml.safe_dump(config), config, hydra, ["loss=cee"])
    return run


def checkpointed(run: RunDir) -> RunDir:
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    (run.checkpoints / "epoch=2-step=20.ckpt").write_bytes(b"weights")
    run.last_checkpoint.symlink_to("epoch=2-step=20.ckpt")
    return run


def ended(run: RunDir, status: str = "ok", epochs: int = 5) -> RunDir:
    run.write_result(status, epochs, {"hp/test_acc": 0.9}, {"loss": "cee"}, 1.5)
    return run


# -- status -------------------------------------------------------------------------------------


def test_an_empty_or_missing_folder_is_new(tmp_path):
    assert RunDir(tmp_path / "missing").status() == "new"
    assert RunDir(tmp_path).status() == "new"
    assert not RunDir(tmp_path).holds_run()


def test_a_started_run_is_incomplete_until_it_writes_its_result(tmp_path):
    run = started(tmp_path)
    assert (run.status(), run.finished(), run.holds_run()) == ("incomplete", False, True)
    assert ended(run).status() == "ok"
    assert run.finished()


def test_event_files_alone_make_an_incomplete_run(tmp_path):
    (tmp_path / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    assert RunDir(tmp_path).status() == "incomplete"


def test_a_diverged_result_is_finished_and_diverged(tmp_path):
    run = ended(started(tmp_path), status="diverged", epochs=1)
    assert (run.status(), run.finished()) == ("diverged", True)
    assert run.result()["epochs"] == 1


def test_an_error_file_makes_a_failed_run_with_its_first_line(tmp_path):
    run = RunDir(tmp_path)
    run.write_error("RuntimeError: boom", "Traceback ...\nline 2")
    assert (run.status(), run.error_line()) == ("failed", "RuntimeError: boom")
    run.clear_error()
    assert run.status() == "new"


def test_the_result_wins_over_an_old_error_file(tmp_path):
    run = started(tmp_path)
    run.write_error("RuntimeError: first try crashed", "")
    assert run.status() == "failed"
    assert ended(run).status() == "ok"  # resumed and finished after the crash


def test_the_result_file_holds_what_the_report_reads(tmp_path):
    run = ended(started(tmp_path))
    saved = json.loads(run.result_file.read_text())
    assert saved == {
        "status": "ok",
        "epochs": 5,
        "seconds": 1.5,
        "metrics": {"hp/test_acc": 0.9},
        "hparams": {"loss": "cee"},
        "history": [],
    }


def test_the_checkpoint_to_resume_is_last_ckpt_a_link_that_may_travel(tmp_path):
    run = started(tmp_path / "a")
    assert run.checkpoint() is None
    checkpointed(run)
    assert run.checkpoint() == run.last_checkpoint
    moved = tmp_path / "b"
    run.path.rename(moved)  # a relative link still points at its sibling file
    assert RunDir(moved).checkpoint().read_bytes() == b"weights"


def test_find_runs_finds_configs_events_and_errors_at_any_depth(tmp_path):
    started(tmp_path / "sweep" / "a")
    (tmp_path / "sweep" / "b").mkdir()
    (tmp_path / "sweep" / "b" / "events.out.tfevents.1.h.1.0").write_bytes(b"")
    RunDir(tmp_path / "c").write_error("x", "")
    (tmp_path / "d").mkdir()  # nothing of a run
    assert [p.relative_to(tmp_path).as_posix() for p in find_runs(tmp_path)] == [
        "c",
        "sweep/a",
        "sweep/b",
    ]
    assert find_runs(tmp_path / "none") == []


def test_a_refused_start_removes_exactly_the_folders_it_made(tmp_path):
    (tmp_path / "logs" / "keep").mkdir(parents=True)
    target = tmp_path / "logs" / "train" / "runs" / "x"
    made = missing_folders(target)  # taken before the folders exist
    assert made == [str(target), str(target.parent), str(target.parent.parent)]  # deepest first
    target.mkdir(parents=True)
    remove_made(made)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["keep"]  # it was there
    assert missing_folders(tmp_path / "logs") == []


def test_a_made_folder_that_is_not_empty_stays_and_so_do_those_above_it(tmp_path):
    target = tmp_path / "a" / "b" / "run"
    made = missing_folders(target)
    kept = started(target)
    remove_made(made)
    assert kept.config_file.is_file()
    assert (tmp_path / "a" / "b").is_dir()
    remove_made([str(tmp_path / "gone")])  # a folder that is not there: nothing to do


def test_missing_folders_of_a_relative_path_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert missing_folders("x/y") == [str(tmp_path / "x" / "y"), str(tmp_path / "x")]


# -- what differs ---------------------------------------------------------------------------------


def test_flatten_gives_dotted_keys_and_keeps_lists_whole():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}, "e": None}) == {
        "a.b": 1,
        "a.c": [1, 2],
        "d": {},
        "e": None,
    }


def test_differences_name_every_changed_key_and_ignore_the_neutral_ones():
    wanted = json.loads(json.dumps(CONFIG))
    wanted["optimizer"]["lr"] = 0.5
    wanted["data"]["train_size"] = 1000
    wanted["data"]["data_dir"] = "/elsewhere"  # where the data lies: the same run
    wanted["threads"] = 2
    wanted["trainer"]["enable_progress_bar"] = False
    wanted["callbacks"]["model_checkpoint"]["dirpath"] = "/b/checkpoints"
    wanted["new_key"] = 1
    assert differences(CONFIG, wanted) == {
        "data.train_size": (None, 1000),
        "new_key": (None, 1),
        "optimizer.lr": (0.1, 0.5),
    }
    assert {"threads", "data.data_dir", "trainer.steps_per_call", "study"} <= set(NEUTRAL_KEYS)


def test_a_callback_that_changes_the_run_is_a_difference():
    wanted = json.loads(json.dumps(CONFIG))
    wanted["callbacks"]["crash"]["epoch"] = 3
    assert differences(CONFIG, wanted) == {"callbacks.crash.epoch": (1, 3)}


def test_the_run_differs_in_its_chosen_group_configs_too(tmp_path):
    run = started(tmp_path)
    assert run.differences(CONFIG, CHOICES) == {}
    assert run.differences(CONFIG, {**CHOICES, "loss": "sse"}) == {"loss": ("cee", "sse")}
    # Hydra's own groups (the launcher) and where a run is logged do not change results
    assert run.differences(CONFIG, {**CHOICES, "hydra/launcher": "joblib"}) == {}
    assert run.differences(CONFIG, {**CHOICES, "logger": "csv"}) == {}
    # nor the experiment: a preset, whose values the resolved config holds
    assert run.differences(CONFIG, {**CHOICES, "experiment": "noise_fixed"}) == {}


# -- what a run is ------------------------------------------------------------------------------


def test_runs_of_the_same_config_have_one_identity_whatever_runs_them():
    same = json.loads(json.dumps(CONFIG))
    same["data"]["data_dir"] = "/elsewhere"
    same["threads"] = 4
    same["trainer"]["enable_progress_bar"] = False
    same["callbacks"]["model_checkpoint"]["dirpath"] = "/b/checkpoints"
    same["study"] = {"stage": "final", "lr_rank": 1}  # a study's bookkeeping
    reordered = dict(reversed(list(same.items())))  # keys in another order (another command)
    for config in (same, reordered):
        for choices in (
            CHOICES,
            {**CHOICES, "hydra/launcher": "joblib", "logger": "csv", "experiment": "noise_final"},
        ):
            assert identity(config, choices) == identity(CONFIG, CHOICES)
            assert differences(CONFIG, config) == {}


@pytest.mark.parametrize(
    ("change", "choices"),
    [
        (lambda c: c["optimizer"].update(lr=0.5), CHOICES),
        (lambda c: c["data"].update(train_size=300), CHOICES),
        (lambda c: c.update(seed=1), CHOICES),
        (lambda c: c["callbacks"]["crash"].update(epoch=2), CHOICES),
        (lambda c: None, {**CHOICES, "loss": "sse"}),
    ],
)
def test_runs_that_compute_other_numbers_have_other_identities(change, choices):
    other = json.loads(json.dumps(CONFIG))
    change(other)
    assert identity(other, choices) != identity(CONFIG, CHOICES)


def test_an_identity_may_leave_out_the_seed_to_group_seeds_of_one_setting():
    seeded = {**json.loads(json.dumps(CONFIG)), "seed": 7}
    assert identity(seeded, CHOICES) != identity(CONFIG, CHOICES)
    assert identity(seeded, CHOICES, ignore=("seed",)) == identity(CONFIG, CHOICES, ("seed",))


def test_a_run_folder_knows_the_identity_of_the_run_it_holds(tmp_path):
    run = started(tmp_path / "a")
    assert run.identity() == identity(CONFIG, CHOICES)
    assert started(tmp_path / "b", dict(reversed(list(CONFIG.items())))).identity() == (
        run.identity()
    )
    assert run.identity(ignore=("seed",)) == identity(CONFIG, CHOICES, ("seed",))
    assert RunDir(tmp_path / "empty").identity() is None  # no record of a config
    run.resolved_file.unlink()
    assert run.identity() is None


def test_a_run_file_that_is_not_yaml_is_refused_naming_the_file(tmp_path):
    run = started(tmp_path)
    run.resolved_file.write_text("data: [1\n")  # cut by hand
    with pytest.raises(UsageError) as info:
        run.config()
    message = str(info.value)
    assert message.startswith(f"{run.resolved_file}: not valid YAML (")
    assert message.endswith(
        "); losslab-train wrote it, so the run folder was changed or cut since: restore it, or "
        "move the run away"
    )
    assert "\n" not in message
    for file, read in ((run.hydra_file, run.choices), (run.overrides_file, run.overrides)):
        file.write_text("a: [b\n")
        with pytest.raises(UsageError, match=f"^{re.escape(str(file))}: not valid YAML"):
            read()


def test_a_run_without_its_resolved_config_differs_from_anything(tmp_path):
    run = started(tmp_path)
    run.resolved_file.unlink()
    assert list(run.differences(CONFIG, CHOICES)) == ["config"]


# -- decisions: a sweep's job -------------------------------------------------------------------


def other_lr():
    wanted = json.loads(json.dumps(CONFIG))
    wanted["optimizer"]["lr"] = 0.5
    return wanted


@pytest.mark.parametrize(
    ("make", "config", "retrain", "action"),
    [
        (lambda p: RunDir(p), CONFIG, False, "run"),
        (lambda p: ended(started(p)), CONFIG, False, "skip"),
        (lambda p: ended(started(p), "diverged"), CONFIG, False, "skip"),
        (lambda p: checkpointed(started(p)), CONFIG, False, "resume"),
        (lambda p: started(p), CONFIG, False, "restart"),  # nothing to resume from
        (lambda p: ended(started(p)), "other", False, "stale"),
        (lambda p: checkpointed(started(p)), "other", False, "stale"),
        (lambda p: ended(started(p)), "other", True, "restart"),
        (lambda p: started(p), "other", False, "restart"),  # nothing of value to protect
    ],
)
def test_what_a_sweep_does_with_a_job_folder(tmp_path, make, config, retrain, action):
    run = make(tmp_path / "job")
    wanted = other_lr() if config == "other" else config
    got, differs = run.sweep_action(wanted, CHOICES, retrain)
    assert got == action
    assert differs == (
        {"optimizer.lr": (0.1, 0.5)} if action == "stale" or (retrain and got == "restart") else {}
    )


def test_a_failed_job_with_a_checkpoint_resumes(tmp_path):
    run = checkpointed(started(tmp_path))
    run.write_error("RuntimeError: crash", "")
    assert run.sweep_action(CONFIG, CHOICES) == ("resume", {})


# -- decisions: a resume in place ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "changed", "action"),
    [
        (None, {}, "continue"),  # not ended: go on
        ("ok", {}, "finished"),
        ("ok", {"trainer.max_epochs": (5, 5)}, "finished"),
        ("ok", {"trainer.max_epochs": (5, 4)}, "finished"),
        ("ok", {"trainer.max_epochs": (5, 8)}, "continue"),
        ("ok", {"threads": (1, 2)}, "finished"),
        ("diverged", {"trainer.max_epochs": (5, 8)}, "finished"),  # never continued
    ],
)
def test_what_a_resume_does_with_its_run(tmp_path, status, changed, action):
    run = checkpointed(started(tmp_path))
    if status:
        ended(run, status)
    assert run.resume_action(changed) == action


@pytest.mark.parametrize(
    ("changed", "extends"),
    [
        ({}, False),
        ({"trainer.max_epochs": (5, 6)}, True),
        ({"trainer.max_steps": (10000, 12000)}, True),
        ({"trainer.max_steps": (10000, -1)}, True),  # no step limit any more
        ({"trainer.max_steps": (-1, 500)}, False),  # the epochs ended it: a cap adds nothing
        ({"trainer.max_steps": (10000, 5000)}, False),
    ],
)
def test_which_changes_train_a_finished_run_longer(tmp_path, changed, extends):
    assert RunDir(tmp_path).extends(changed) is extends


def test_a_resume_records_its_changes_and_the_config_says_what_the_run_trains_with(tmp_path):
    run = started(tmp_path)
    before = run.config_file.read_text()
    run.record_resume(["ckpt_path=last"], {}, "unused", {})
    assert run.config_file.read_text() == before  # nothing changed: the files stay
    longer = json.loads(json.dumps(CONFIG))
    longer["trainer"]["max_epochs"] = 8
    run.record_resume(
        ["ckpt_path=last", "trainer.max_epochs=8"],
        {"trainer.max_epochs": (5, 8)},
        yaml.safe_dump(longer),
        longer,
    )
    records = yaml.safe_load(run.resumes_file.read_text())
    assert [r["changed"] for r in records] == [{}, {"trainer.max_epochs": [5, 8]}]
    assert run.config()["trainer"]["max_epochs"] == 8
    assert yaml.safe_load(run.config_file.read_text())["trainer"]["max_epochs"] == 8


def test_extends_at_its_edges():
    run = RunDir("unused")
    assert run.extends({"trainer.max_steps": (500, 501)}) is True
    assert run.extends({"trainer.max_steps": (500, 500)}) is False
    assert run.extends({"trainer.max_epochs": (5, 5), "trainer.max_steps": (500, 600)}) is True
    assert run.extends({"trainer.max_epochs": (1, 0)}) is False
    assert run.extends({"threads": (1, 2)}) is False


def test_a_run_without_its_resolved_config_says_so(tmp_path):
    run = started(tmp_path)
    run.resolved_file.unlink()
    assert run.differences(CONFIG, CHOICES) == {
        "config": ("unknown (no .hydra/resolved.yaml)", "this sweep's")
    }


def test_another_logger_is_no_difference_but_another_group_config_is(tmp_path):
    run = started(tmp_path)
    assert run.differences(CONFIG, {**CHOICES, "logger": "csv"}) == {}
    assert run.differences(CONFIG, {**CHOICES, "optimizer": "adam"}) == {
        "optimizer": ("sgd", "adam")
    }


def test_a_resume_record_holds_its_time_overrides_and_changes_in_that_order(tmp_path):
    run = started(tmp_path)
    run.record_resume(["ckpt_path=last", "trainer.max_epochs=8"], {"trainer.max_epochs": (5, 8)},
                      yaml.safe_dump(CONFIG), CONFIG)  # fmt: skip
    text = run.resumes_file.read_text()
    (record,) = yaml.safe_load(text)
    assert list(record) == ["time", "overrides", "changed"]
    assert record["overrides"] == ["ckpt_path=last", "trainer.max_epochs=8"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", record["time"])


def test_the_reliability_bins_and_the_error_file_round_trip(tmp_path):
    run = RunDir(tmp_path / "deeper" / "run")
    assert run.reliability() is None
    run.write_error("RuntimeError: crash", "Traceback ...")  # creates its folders
    assert run.error_file.read_text() == "RuntimeError: crash\n\nTraceback ..."
    assert run.error_line() == "RuntimeError: crash"
    run.clear_error()
    run.clear_error()  # twice: nothing to remove is fine
    assert not run.error_file.exists()
    bins = {"test": {"count": [1, 2], "confidence": [0.5, 0.9], "accuracy": [0.0, 1.0]}}
    run.write_reliability(3, bins)
    assert run.reliability() == {"epoch": 3, "bins": bins}
    assert run.reliability_file.read_text().startswith('{\n "epoch": 3,\n "bins": {')


# -- the files as written -------------------------------------------------------------------------


def test_the_result_file_is_one_key_a_line_with_seconds_to_the_millisecond(tmp_path):
    run = RunDir(tmp_path)
    run.write_result("ok", 2, {"hp/test_acc": 0.5}, {"loss": "sse"}, 12.34567)
    assert run.result_file.read_text() == (
        '{\n "status": "ok",\n "epochs": 2,\n "seconds": 12.346,\n'
        ' "metrics": {\n  "hp/test_acc": 0.5\n },\n "hparams": {\n  "loss": "sse"\n },\n'
        ' "history": []\n}\n'
    )


def test_the_result_file_keeps_every_epochs_metrics(tmp_path):
    run = RunDir(tmp_path)
    history = [{"epoch": 0, "step": 0, "acc/test": 0.1}, {"epoch": 1, "step": 5, "acc/test": 0.8}]
    run.write_result("ok", 1, {}, {}, 1.0, iter(history))  # any iterable of mappings
    assert run.result()["history"] == history


def test_the_resolved_config_keeps_the_order_of_the_composed_one(tmp_path):
    run = started(tmp_path)
    assert list(yaml.safe_load(run.resolved_file.read_text())) == list(CONFIG)
    assert run.resolved_file.read_text().startswith("data:\n  batch_size: 100\n  data_dir: /a\n")


def test_writing_the_config_again_over_a_started_run_replaces_its_files(tmp_path):
    run = started(tmp_path)
    run.write_config("seed: 1\n", {"seed": 1}, "hydra: {}\n", ["seed=1"])
    assert (run.config(), run.overrides(), run.choices()) == ({"seed": 1}, ["seed=1"], {})


def test_an_error_file_alone_is_a_run(tmp_path):
    run = RunDir(tmp_path)
    run.write_error("RuntimeError: boom", "")
    assert run.holds_run()


def test_a_sweep_refuses_another_configs_run_unless_told_to_retrain(tmp_path):
    run = ended(started(tmp_path))
    assert run.sweep_action(other_lr(), CHOICES) == ("stale", {"optimizer.lr": (0.1, 0.5)})

"""What a user sees when something is wrong: one line naming the key and what is allowed, exit
status 2, nothing written; a crash keeps its traceback; ``logger=null`` / ``callbacks=null``
switch a group off; path lists are swept; a missing extra is named in one line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import TINY, command, ok, train, train_process, tree_digest, write_idx

OLD_RUN = "hydra.run.dir=logs/train/runs/old"


@pytest.fixture(scope="module")
def finished_run(shared_run) -> Path:
    return shared_run("cli_single", *TINY)


@pytest.fixture
def logs_with_a_run(finished_run, tmp_path) -> Path:
    """A working folder whose logs/ already holds a finished run."""
    shutil.copytree(finished_run, tmp_path / "logs" / "train" / "runs" / "old", symlinks=True)
    return tmp_path


@pytest.fixture
def bad_labels(tmp_path, data_dir) -> Path:
    """A copy of MNIST whose training labels have the right header and size, and a 200."""
    raw = tmp_path / "bad" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).symlink_to(data_dir / "MNIST" / "raw" / name)
    labels = bytearray((data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte").read_bytes())
    labels[8 + 1234] = 200
    (raw / "train-labels-idx1-ubyte").write_bytes(bytes(labels))
    return tmp_path / "bad"


@pytest.fixture
def broken_conf(tmp_path) -> Path:
    conf = tmp_path / "my_conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "broken.yaml").write_text("# @package _global_\nmodel:\n  hidden: [100\n  x: : y\n")
    return tmp_path / "my_conf"


BAD_INPUT = [
    (["loss=foo"], {}, ["loss=foo", "cee", "sse", "sse_logits", "mae"]),
    (["data.batch_size=abc"], {}, ["data.batch_size=abc", "Integer"]),
    (["data.batch_size=0"], {}, ["data.batch_size must be a positive integer, got 0"]),
    (["data.batchsize=3"], {}, ["data.batchsize", "batch_size", "val_size"]),
    (["data.label_noise=1"], {}, ["data.label_noise", "[0, 1)"]),
    (["data.eval_splits=[dev]"], {}, ["data.eval_splits", "'train', 'val', 'test'", "'dev'"]),
    (["model.hidden=[0]"], {}, ["model.hidden", "positive"]),
    (["loss.eps=0"], {}, ["loss.eps", "> 0"]),
    (["optimizer.lr=-1"], {}, ["optimizer.lr", "> 0"]),
    (["scheduler=nope"], {}, ["scheduler=nope", "cosine", "none", "step"]),
    (["+sed=7"], {}, ["sed: no such key", "seed"]),
    (["+data.foo=1"], {}, ["data.foo: no such key"]),
    (["+scheduler._target_=torch.optim.lr_scheduler.StepLR"], {}, ["scheduler._target_", "no such key"]),
    (["loss=null"], {}, ["loss=null", "needs a loss"]),
    (["ckpt_path=/nonexistent/last.ckpt"], {}, ["ckpt_path", "/nonexistent/last.ckpt"]),
    (["ckpt_path=last", "hydra.run.dir=logs/train/runs/none"], {}, ["ckpt_path=last", "no run in"]),
    (["ckpt_path=logs/train/runs/old/train.log"], {}, ["ckpt_path=", "not a checkpoint"]),
    (["data.download=false"], {"LOSSLAB_DATA_DIR": "/nonexistent"}, ["LOSSLAB_DATA_DIR", "t10k-labels-idx1-ubyte"]),
    (["data.data_dir=BAD"], {}, ["train-labels-idx1-ubyte", "label at index 1234 is 200", "0 to 9"]),
    (["trainer=gpu"], {"CUDA_VISIBLE_DEVICES": ""}, ["trainer.accelerator", "GPU", "trainer=cpu"]),
    (["trainer=ddp", "trainer.devices=2", "data.batch_size=33"], {}, ["data.batch_size=33", "divisible", "2 DDP"]),
    (["trainer.steps_per_call=10", "trainer.gradient_clip_val=1"], {}, ["trainer.steps_per_call=10 cannot be combined with trainer.gradient_clip_val=1.0: "]),
    (["loss=sse", "classifier.loss_input=probabilities"], {}, ["classifier.loss_input='probabilities'", "softmax twice"]),
    (["loss.input=logits"], {}, ["loss.input: no such key"]),
    (["callbacks.model_checkpoint.monitor=acc/val"], {}, ["callbacks.model_checkpoint.monitor=acc/val: this run does not log it"]),
    (["callbacks=null", "+callbacks.model_checkpoint.every_n_epochs=5"], {}, ["callbacks.model_checkpoint.every_n_epochs: set, but callbacks.model_checkpoint has no _target_", "callbacks=null", "callbacks=default"]),
    (["study.stage=tune"], {}, ["study"]),
    (["--config-dir", "CONF", "experiment=broken"], {}, ["broken.yaml", "line", "not valid YAML"]),
    ([OLD_RUN], {}, ["already holds a run", "ckpt_path=last"]),
    ([OLD_RUN, "optimizer.lr=-1"], {}, ["optimizer.lr", "> 0"]),
    # a constructor's refusal comes after Hydra made the run's folders: they go again, all of them
    (["hydra.run.dir=logs/new/deep/run", "data.batch_size=-1"], {}, ["data.batch_size", "positive integer"]),
    (["-m", "data.batch_size=500,0"], {}, ["data.batch_size must be a positive integer", "job data.batch_size=0"]),
    (["-m", "loss=sse,cee", "data.download=false"], {"LOSSLAB_DATA_DIR": "/nonexistent"}, ["LOSSLAB_DATA_DIR", "(in the sweep's job loss=sse)"]),
    (["-m", "loss=sse,cee", "optimizer.lr=interval(0.01,1)"], {}, ["optimizer.lr=interval(0.01,1): interval() is a range for a sampling sweeper"]),
    # outside the working folder too: nothing written, and the folders Hydra made go again
    (["data.batch_size=0", "paths.log_dir=OUT/logs"], {}, ["data.batch_size must be a positive integer"]),
    (["data.batch_size=0"], {"LOSSLAB_LOG_DIR": "OUT/envlogs"}, ["data.batch_size must be a positive integer"]),
    (["data.batch_size=0", "hydra.run.dir=OUT/a/b/c"], {}, ["data.batch_size must be a positive integer"]),
    (["ckpt_path=last", "hydra.run.dir=OUT/nonexistent"], {}, ["ckpt_path=last: no run in", "OUT/nonexistent"]),
    (["paths.log_dir=OUT/a_file/logs"], {}, ["cannot write OUT/a_file/logs", "Not a directory"]),
    (["paths.log_dir=/sys/losslab-logs"], {}, ["cannot write /sys/losslab-logs"]),  # read-only
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "env", "expected"), BAD_INPUT)
def test_bad_input_fails_in_one_line_with_status_2_and_writes_nothing(
    logs_with_a_run, bad_labels, broken_conf, tmp_path_factory, overrides, env, expected
):
    folder = logs_with_a_run
    out = tmp_path_factory.mktemp("outside")  # a folder outside the working one
    (out / "a_file").write_text("a file where a folder would go")

    def placed(text: str) -> str:
        return (
            text.replace("BAD", str(bad_labels))
            .replace("CONF", str(broken_conf))
            .replace("OUT", str(out))
        )

    overrides, env = [placed(o) for o in overrides], {k: placed(v) for k, v in env.items()}
    expected = [placed(e) for e in expected]
    before, outside = tree_digest(folder), sorted(out.rglob("*"))
    folders_before = sorted(p for p in folder.rglob("*") if p.is_dir())
    res = train(*overrides, *TINY, cwd=folder, env=env)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr  # exactly one line
    assert res.stderr.startswith("losslab-train: error: ")
    assert "Traceback" not in res.stdout + res.stderr
    for text in expected:
        assert text in res.stderr, (text, res.stderr)
    assert tree_digest(folder) == before  # nothing created, changed or deleted
    assert sorted(p for p in folder.rglob("*") if p.is_dir()) == folders_before
    assert sorted(out.rglob("*")) == outside  # nor outside the working folder


@pytest.mark.process
def test_the_console_script_refuses_in_one_line_as_a_process(tmp_path):
    script = Path(sys.executable).parent / "losslab-train"
    res = command(script, "data.batch_size=0", cwd=tmp_path)
    assert (res.returncode, res.stderr) == (
        2,
        "losslab-train: error: data.batch_size must be a positive integer, got 0\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_hydra_full_error_shows_the_whole_traceback(tmp_path):
    res = train("data.batch_size=0", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert res.returncode != 0
    assert "Traceback" in res.stderr
    assert "data.batch_size must be a positive integer" in res.stderr


@pytest.mark.slow
@pytest.mark.process
def test_a_crash_keeps_its_traceback(tmp_path, data_dir):
    crash = ["+callbacks.crash._target_=crash_callback.CrashAfterEpoch", "+callbacks.crash.epoch=1"]
    res = train_process(
        *TINY, *crash, "trainer.max_epochs=2", cwd=tmp_path, env={"LOSSLAB_TEST_CRASH": "1"}
    )
    assert res.returncode == 1
    assert "Traceback" in res.stderr
    assert "RuntimeError: simulated crash after epoch 1" in res.stderr


@pytest.mark.slow
def test_logger_null_and_callbacks_null_switch_the_groups_off(tmp_path, data_dir):
    ok(train(*TINY, "logger=null", "callbacks=null", "hydra.run.dir=r", cwd=tmp_path))
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert names == [
        ".hydra",
        "hits.json",
        "reliability.json",
        "result.json",
        "train.log",
    ]  # no events, no checkpoints


@pytest.mark.slow
def test_a_list_of_data_folders_is_swept(tmp_path, data_dir, tiny_mnist):
    other = tmp_path / "copy"
    shutil.copytree(data_dir / "MNIST", other / "MNIST")
    res = ok(
        train("-m", f"data.data_dir={data_dir},{other}", *TINY, "hydra.sweep.dir=s", cwd=tmp_path)
    )
    # two jobs, one per folder; where the data lies is not what a run is: the second job is the
    # same run as the first, so it is trained once
    first, second = (f"data.data_dir={str(p).replace('/', '_')}" for p in (data_dir, other))
    jobs = sorted(p.name for p in (tmp_path / "s").iterdir() if p.is_dir())
    assert jobs == [first], (jobs, res.stdout)
    assert res.stdout.startswith(
        f"losslab-train: 1 job(s) into s; 1 finished before or repeated, skipped: {second} (the "
        f"same run as {first})\n"
    )


def test_a_command_without_the_training_extras_names_the_first_missing_one(
    tmp_path, monkeypatch, capsys
):
    """Metadata that lists an extra that is not installed: the first missing one is named, in
    one line, and nothing heavy (torch, whose NumPy warning would come first) is imported."""
    import losslab.cli

    requires = [
        "torch>=2.6",
        "dev-only-not-installed; extra == 'dev'",
        "torchvision>=0.21; extra == 'train'",  # the marker quoted either way
        'lightning-not-installed>=2.4; extra == "train"; python_version >= "3.10"',
        'hydra-core-not-installed; extra == "train"',
        'pytest>=8; extra == "dev"',
    ]
    asked = []
    monkeypatch.setattr(
        losslab.cli.metadata, "requires", lambda name: asked.append(name) or requires
    )
    assert losslab.cli.missing_distribution() == "lightning-not-installed"
    assert asked == ["losslab"]
    assert losslab.cli.missing_distribution("dev") == "dev-only-not-installed"
    with pytest.raises(SystemExit) as exit_:
        losslab.cli.train_main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "losslab-train: error: losslab-train needs the training extras ('lightning-not-installed' "
        'is missing): pip install "losslab[train]"\n'
    )
    requires[3:5] = ["lightning[extra]>=2.4; extra == 'train'"]  # installed: its name is lightning
    assert losslab.cli.missing_distribution() is None


def test_with_every_extra_installed_nothing_is_missing():
    import losslab.cli

    assert losslab.cli.missing_distribution() is None


def test_path_values_are_quoted_for_hydra_and_lists_of_paths_are_not():
    from losslab.run.overrides import for_hydra

    ckpt = "logs/s/loss=sse,data.batch_size=32/checkpoints/epoch=1-step=8.ckpt"
    assert for_hydra([f"ckpt_path={ckpt}"]) == [f"ckpt_path='{ckpt}'"]
    assert for_hydra(["data.data_dir=/a,/b"]) == ["data.data_dir=/a,/b"]
    assert for_hydra(["data.data_dir=/plain/path", "loss=sse,cee"]) == [
        "data.data_dir=/plain/path",
        "loss=sse,cee",
    ]
    assert for_hydra(["logger=null", "callbacks=null", "experiment=null", "seed=null"]) == [
        "~logger",
        "~callbacks",
        "experiment=null",
        "seed=null",
    ]
    assert for_hydra(["-m", "--config-dir", "my conf"]) == ["-m", "--config-dir", "my conf"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["NOPE"], ["nope: no such checkpoint file or run folder"]),
        (["EMPTY"], ["holds no checkpoint"]),
        (["EMPTY/file.ckpt"], ["not a checkpoint"]),
    ],
)
def test_losslab_eval_refuses_bad_paths_in_one_line(tmp_path, args, expected, capsys, monkeypatch):
    from losslab.run.evaluate import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "file.ckpt").write_text("not a checkpoint")
    args = [
        a.replace("NOPE", str(tmp_path / "nope")).replace("EMPTY", str(tmp_path / "empty"))
        for a in args
    ]
    before = tree_digest(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("losslab-eval: error: ")
    for text in expected:
        assert text in err
    assert tree_digest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_write_idx_writes_what_the_checks_read(tmp_path):
    import numpy as np

    from losslab.lit.data import MNISTDataModule

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 20), ("t10k", 10)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28)), 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, 2049)
    assert MNISTDataModule(tmp_path, download=False).check_files() == []

"""losslab-eval: a checkpoint evaluated with its run's own config (the module's own input
scaling included) gives the run's last logged metrics, every one, on test and val; it writes
elsewhere and never touches the run; a bad path, device or --out is one line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import command, tree_digest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from losslab.run.checkpoints import find_checkpoint as find
from losslab.run.evaluate import evaluate


def find_checkpoint(path: Path) -> Path:
    """The checkpoint losslab-eval reads for ``path`` (a run folder or a file)."""
    return find(path, "checkpoint")


KINDS = ("loss", "acc", "nll", "brier", "ece")


@pytest.fixture(scope="module")
def noisy_run(shared_run) -> Path:
    """A run with its own quirks to honour: SSE, a validation split, label noise, another seed,
    pixels only scaled to [0, 1] (the module's own preprocessing, saved in its checkpoint)."""
    return shared_run(
        "eval_run",
        "loss=sse",
        "seed=3",
        "data.train_size=800",
        "data.val_size=700",
        "data.label_noise=0.3",
        "classifier.normalize=false",
        "trainer.max_epochs=2",
        "~hydra.callbacks.report",
    )


def last_logged(run: Path) -> dict[str, float]:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}


def test_eval_of_a_run_folder_equals_its_last_logged_metrics(noisy_run):
    results = evaluate(find_checkpoint(noisy_run))
    logged = last_logged(noisy_run)
    assert sorted(results) == ["test", "val"]
    for split, values in results.items():
        assert sorted(values) == sorted(KINDS)
        for kind in KINDS:  # the same evaluation: the same numbers (float32 to float64 aside)
            assert values[kind] == pytest.approx(logged[f"{kind}/{split}"], rel=1e-6, abs=1e-7), (
                split,
                kind,
            )


@pytest.mark.process
def test_the_console_command_prints_and_writes_the_numbers_and_leaves_the_run_alone(
    noisy_run, tmp_path
):
    before = tree_digest(noisy_run)
    res = command(
        sys.executable, "-m", "losslab.run.evaluate", noisy_run, "--out", "out", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert "| test " in res.stdout
    assert "| val " in res.stdout
    record = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert record["checkpoint"] == str((noisy_run / "checkpoints" / "last.ckpt").resolve())
    assert record["metrics"]["test"]["acc"] == pytest.approx(
        last_logged(noisy_run)["acc/test"], abs=1e-7
    )
    assert (tmp_path / "out" / "eval.md").is_file()
    assert tree_digest(noisy_run) == before


def test_the_command_in_this_process_writes_the_table_it_prints_and_a_record(
    noisy_run, tmp_path, monkeypatch, capsys
):
    from losslab.run.evaluate import main

    before = tree_digest(noisy_run)
    (tmp_path / "out").mkdir()  # an --out folder that exists already is used as it is
    monkeypatch.chdir(tmp_path)
    assert main([str(noisy_run), "--out", "out", "--device", "cpu"]) == 0
    logged = last_logged(noisy_run)
    checkpoint = noisy_run / "checkpoints" / "last.ckpt"
    record = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert record == {
        "checkpoint": str(checkpoint.resolve()),
        "metrics": {
            split: {k: pytest.approx(logged[f"{k}/{split}"], rel=1e-6, abs=1e-7) for k in KINDS}
            for split in ("val", "test")
        },
    }
    # the columns in this order, numbers right-aligned to 4 decimals, the split names left
    rows = [
        f"| {split:<5} | " + " | ".join(f"{logged[f'{k}/{split}']:.4f}" for k in KINDS) + " |"
        for split in ("val", "test")
    ]
    table = "\n".join([
        "| split |   loss |    acc |    nll |  brier |    ece |",
        "|-------|-------:|-------:|-------:|-------:|-------:|",
        *rows,
    ])  # fmt: skip
    # one key a line, indented by one space: readable, and diff-able between checkpoints
    text = (tmp_path / "out" / "eval.json").read_text()
    assert text.startswith(
        f'{{\n "checkpoint": {json.dumps(str(checkpoint.resolve()))},\n "metrics": {{\n  "val": {{\n'
        '   "loss": '
    )
    assert text.endswith("\n  }\n }\n}\n")
    md = (tmp_path / "out" / "eval.md").read_text()
    assert md == f"# losslab-eval: {checkpoint}\n\n{table}\n"
    assert capsys.readouterr().out == f"{table}\nlosslab-eval: eval.json, eval.md in out\n"
    assert tree_digest(noisy_run) == before


def test_a_checkpoint_without_its_data_config_is_refused_by_name(noisy_run, tmp_path):
    import torch

    from losslab.errors import UsageError

    contents = torch.load(noisy_run / "checkpoints" / "last.ckpt", weights_only=False)
    del contents["datamodule_hyper_parameters"]
    torch.save(contents, tmp_path / "bare.ckpt")
    with pytest.raises(UsageError, match=r"bare\.ckpt: the checkpoint holds no module or data"):
        evaluate(tmp_path / "bare.ckpt")


def test_eval_reads_mnist_where_the_run_did_else_where_the_environment_says(
    noisy_run, tmp_path, monkeypatch
):
    import torch

    from losslab.errors import UsageError

    contents = torch.load(noisy_run / "checkpoints" / "last.ckpt", weights_only=False)
    contents["datamodule_hyper_parameters"]["data_dir"] = str(tmp_path / "gone")
    torch.save(contents, tmp_path / "moved.ckpt")
    expected = evaluate(find_checkpoint(noisy_run))
    assert (
        evaluate(tmp_path / "moved.ckpt") == expected
    )  # the run's folder is gone: $LOSSLAB_DATA_DIR
    monkeypatch.setenv("LOSSLAB_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(UsageError, match="elsewhere"):
        evaluate(tmp_path / "moved.ckpt")
    with pytest.raises(UsageError) as missing:
        evaluate(find_checkpoint(noisy_run), data_dir=str(tmp_path / "nowhere"))
    assert str(missing.value).startswith(
        f"MNIST not found in {tmp_path / 'nowhere' / 'MNIST' / 'raw'} (missing train-images-idx3"
    )
    # how losslab-eval is pointed at the files (not losslab-train's data.data_dir)
    assert str(missing.value).endswith(
        "there. Pass --data-dir <the folder that holds MNIST/raw/> (or set LOSSLAB_DATA_DIR)"
    )
    assert "data.data_dir" not in str(missing.value)
    assert "\n" not in str(missing.value)
    # the run's own folder holds MNIST/raw: it wins over the environment
    assert evaluate(find_checkpoint(noisy_run)) == expected


def test_a_run_without_a_validation_split_is_evaluated_on_test(shared_run):
    from conftest import TINY

    results = evaluate(find_checkpoint(shared_run("cli_single", *TINY)))
    assert list(results) == ["test"]
    assert sorted(results["test"]) == sorted(KINDS)


def test_eval_without_out_writes_under_the_log_folder(noisy_run, tmp_path, monkeypatch):
    from losslab.run.evaluate import main

    epoch_file = next(
        p for p in (noisy_run / "checkpoints").iterdir() if p.name.startswith("epoch=")
    )
    monkeypatch.chdir(tmp_path)
    assert main([str(epoch_file)]) == 0
    (out,) = (tmp_path / "logs" / "eval").iterdir()
    assert (out / "eval.json").is_file()
    # named by the time, to the microsecond: two evaluations never share a folder
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}", out.name), out.name
    # $LOSSLAB_LOG_DIR moves the log folder, as for losslab-train
    monkeypatch.setenv("LOSSLAB_LOG_DIR", str(tmp_path / "mine"))
    assert main([str(epoch_file)]) == 0
    (out,) = (tmp_path / "mine" / "eval").iterdir()
    assert (out / "eval.json").is_file()


def test_the_checkpoints_own_input_scaling_is_what_evaluates_it(noisy_run, tmp_path):
    """The module scales its own input (saved as its hyperparameter, not the data module's):
    the same weights with the other scaling give other numbers."""
    import torch

    contents = torch.load(noisy_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert contents["hyper_parameters"]["normalize"] is False
    assert "normalize" not in contents["datamodule_hyper_parameters"]
    contents["hyper_parameters"]["normalize"] = True
    torch.save(contents, tmp_path / "flipped.ckpt")
    logged = last_logged(noisy_run)
    flipped = evaluate(tmp_path / "flipped.ckpt")["test"]
    assert flipped["loss"] != pytest.approx(logged["loss/test"], rel=1e-3)


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("nothing", "checkpoint={}: no such checkpoint file or run folder"),
        ("empty", "checkpoint={}: this folder holds no checkpoints/last.ckpt; pass a run folder "
                  "that losslab-train wrote with checkpoints (not callbacks=null), or a .ckpt file"),
    ],
)  # fmt: skip
def test_a_path_without_a_checkpoint_is_refused_in_one_line(
    tmp_path, monkeypatch, capsys, path, line
):
    from losslab.run.evaluate import main

    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main([str(tmp_path / path), "--out", "out"]) == 2
    assert capsys.readouterr().err == f"losslab-eval: error: {line.format(tmp_path / path)}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_an_out_that_names_a_file_is_refused_before_anything_is_read(tmp_path, capsys):
    from losslab.run.evaluate import main

    (tmp_path / "out.txt").write_text("mine")
    assert main([str(tmp_path / "no-such-run"), "--out", str(tmp_path / "out.txt")]) == 2
    assert capsys.readouterr().err == (
        f"losslab-eval: error: --out={tmp_path / 'out.txt'}: a file is there; --out names a "
        f"folder to write\n"
    )
    assert (tmp_path / "out.txt").read_text() == "mine"


def test_a_device_that_is_not_there_is_refused_in_one_line(
    noisy_run, tmp_path, monkeypatch, capsys
):
    import torch

    from losslab.errors import UsageError
    from losslab.run.evaluate import main

    checkpoint = find_checkpoint(noisy_run)
    with pytest.raises(UsageError) as info:
        evaluate(checkpoint, device="foo")
    assert str(info.value).startswith("--device=foo: not a torch device (")
    assert str(info.value).endswith("); e.g. cpu, cuda, cuda:1")
    assert "\n" not in str(info.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:1"):
        with pytest.raises(UsageError) as info:
            evaluate(checkpoint, device=name)
        assert str(info.value) == f"--device={name}: no CUDA GPU is visible here; use --device cpu"
    monkeypatch.chdir(tmp_path)
    assert main([str(noisy_run), "--device", "cuda"]) == 2
    assert capsys.readouterr().err == (
        "losslab-eval: error: --device=cuda: no CUDA GPU is visible here; use --device cpu\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_checkpoint_is_refused_naming_the_argument(tmp_path):
    from losslab.errors import UsageError

    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(
        UsageError, match=rf"^checkpoint={tmp_path / 'notes.ckpt'}: not a checkpoint"
    ):
        evaluate(tmp_path / "notes.ckpt")


def test_a_runs_data_folder_counts_only_when_it_holds_mnist_raw(noisy_run, tmp_path, monkeypatch):
    """The saved folder holds MNIST/ but no raw/ files: $LOSSLAB_DATA_DIR is read instead; with
    no such variable, the error names the run's own folder."""
    import torch

    from losslab.errors import UsageError

    contents = torch.load(noisy_run / "checkpoints" / "last.ckpt", weights_only=False)
    contents["datamodule_hyper_parameters"]["data_dir"] = str(tmp_path / "partial")
    (tmp_path / "partial" / "MNIST").mkdir(parents=True)
    torch.save(contents, tmp_path / "partial.ckpt")
    monkeypatch.setenv("LOSSLAB_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(UsageError, match=f"^MNIST not found in {tmp_path / 'elsewhere'}"):
        evaluate(tmp_path / "partial.ckpt")
    monkeypatch.delenv("LOSSLAB_DATA_DIR")
    with pytest.raises(UsageError, match=f"^MNIST not found in {tmp_path / 'partial'}"):
        evaluate(tmp_path / "partial.ckpt")

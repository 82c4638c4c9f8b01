"""losslab.errors in this process: the exact one line each kind of user error becomes (ours,
Hydra's, OmegaConf's, a broken YAML file, a file system that refuses a write), a crash left as it
is, a constructor's error named as its config key, ``run_hydra``'s and ``user_main``'s exit
status and ``HYDRA_FULL_ERROR`` handling, and an ``--out`` that names a file."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from losslab.errors import (
    UsageError,
    check_out_dir,
    exit_with,
    group_error,
    one_line,
    run_hydra,
    user_main,
)
from losslab.run.config import register

CONF = Path(__file__).resolve().parents[1] / "conf"
DATA_KEYS = ("data_dir, batch_size, val_size, train_size, label_noise, noise_seed, download, "
             "seed, eval_batch_size, drop_last, replacement, eval_splits")  # fmt: skip
TOP_KEYS = ("data, model, loss, optimizer, scheduler, trainer, logger, callbacks, classifier, "
            "paths, seed, threads, task_name, ckpt_path, init_from, verbose, study")  # fmt: skip


def composing(*overrides: str, conf: Path = CONF, name: str = "train") -> BaseException:
    """The exception composing ``name`` with ``overrides`` raises."""
    register()
    with (
        pytest.raises(Exception) as raised,  # noqa: PT011 - any error: the test reads it
        initialize_config_dir(config_dir=str(conf), version_base="1.3"),
    ):
        compose(config_name=name, overrides=list(overrides))
    return raised.value


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("data.batchsize=3", f"data.batchsize: no such key; allowed keys: {DATA_KEYS}"),
        ("foo=1", f"foo: no such key; allowed keys: {TOP_KEYS}"),  # the schema's, not Hydra's node
        ("optimizer.foo=1", "optimizer.foo: no such key; allowed keys: lr, momentum, "
                            "weight_decay, nesterov"),
        ("logger.tensorboard.foo=1", "logger.tensorboard.foo: no such key; allowed keys: "
                                     "save_dir, name, version, default_hp_metric"),
        ("loss=foo", "loss=foo: no such config in conf/loss/; allowed values: cee, mae, sse, "
                     "sse_logits"),
        ("hydra/launcher=nope", "hydra/launcher=nope: no such config in conf/hydra/launcher/; "
                                "allowed values: basic, joblib, submitit_local, submitit_slurm"),
        ("data.batch_size=[", "data.batch_size=[: cannot parse this override: no viable "
                              "alternative at input '[' See https://hydra.cc/docs/1.2/advanced/"
                              "override_grammar/basic for details"),
        ("data.batch_size=abc", "data.batch_size=abc: Value 'abc' of type 'str' could not be "
                                "converted to Integer"),
        ("model.hidden=3", "model.hidden=3: Invalid value assigned: int is not a ListConfig, "
                           "list or tuple."),
        ("~model.foo", "Could not delete from config. 'model.foo' does not exist."),
        # what moved to the classifier node: the loss's and the scheduler's keys are their
        # constructors' arguments only
        ("loss.input=logits", "loss.input: no such key; allowed keys: from_logits, "
                              "label_smoothing, eps, ignore_index"),
        ("data.normalize=false", f"data.normalize: no such key; allowed keys: {DATA_KEYS}"),
        ("classifier.foo=1", "classifier.foo: no such key; allowed keys: normalize, loss_input, "
                             "scheduler_interval"),
    ],
)  # fmt: skip
def test_each_composition_error_becomes_its_exact_line(override, line):
    assert one_line(composing(override)) == line


def test_a_broken_yaml_file_is_named_with_its_line(tmp_path):
    (tmp_path / "broken.yaml").write_text("model:\n  hidden: [100\n  x: : y\n")
    line = one_line(composing(conf=tmp_path, name="broken"))
    assert (
        line
        == f"cannot read {tmp_path / 'broken.yaml'}, line 3: expected ',' or ']', but got ':' (not valid YAML)"
    )


def test_a_yaml_error_of_our_own_reading_is_one_line_too():
    import yaml

    with pytest.raises(yaml.YAMLError) as raised:
        yaml.safe_load("a: [1\nb: 2")
    line = one_line(raised.value)
    assert line == "cannot read <unicode string>, line 2: expected ',' or ']', but got ':' " \
                   "(not valid YAML)"  # fmt: skip
    wrapped = ValueError("reading choices")
    wrapped.__cause__ = raised.value
    assert one_line(wrapped) == line


def test_a_yaml_error_without_a_position_names_a_config_file_and_its_first_line():
    import yaml

    assert one_line(yaml.YAMLError("unexpected  end\nof the stream")) == (
        "cannot read a config file: unexpected end (not valid YAML)"
    )


def test_a_key_under_a_plain_node_is_refused_with_the_nodes_keys_or_none(tmp_path):
    (tmp_path / "plain.yaml").write_text("a: 1\nb:\n  c: 2\n")
    assert one_line(composing("b.x=1", conf=tmp_path, name="plain")) == (
        "b.x: no such key; allowed keys: c"
    )
    assert one_line(composing("a.b=1", conf=tmp_path, name="plain")) == "a.b: no such key"


def test_a_composition_error_without_an_override_is_named_by_its_omegaconf_cause():
    """Hydra wraps an OmegaConf error met outside an override in a bare
    ConfigCompositionException: the key comes from the cause. A cause OmegaConf raised
    unformatted (no ``msg``, no node) is read from its text, with no keys to list."""
    from dataclasses import dataclass

    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigAttributeError

    @dataclass
    class Node:
        _target_: str = "x"
        a: int = 1

    node = OmegaConf.structured(Node)
    with pytest.raises(ConfigAttributeError) as raised:
        node.b = 2
    bare = ConfigCompositionException()
    bare.__cause__ = raised.value
    assert one_line(bare) == "b: no such key; allowed keys: a"
    wrapped = ConfigCompositionException("Could not override 'b.x'.\nTo append use +b.x=1")
    wrapped.__cause__ = ConfigAttributeError("Key 'x' is not in struct")
    assert one_line(wrapped) == "b.x: no such key"


def test_a_missing_config_outside_a_group_is_its_message_on_one_line():
    from hydra.errors import MissingConfigException

    err = MissingConfigException("Could not load 'nope'.\n\tsearch path", "nope", options=[])
    assert one_line(err) == "Could not load 'nope'. search path"


def test_ours_and_lightnings_errors_are_flattened_and_a_crash_is_none():
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    assert one_line(UsageError("data.batch_size=0:\n  must be\tpositive")) == (
        "data.batch_size=0: must be positive"
    )
    assert one_line(MisconfigurationException("bad\ntrainer")) == "bad trainer"
    assert one_line(RuntimeError("CUDA out of memory")) is None
    assert one_line(KeyError("x")) is None


def test_a_constructor_error_is_named_as_its_config_key():
    err = ValueError("batch_size must be a positive integer,\n got 0")
    assert str(group_error("data", err, keys=("batch_size",))) == (
        "data.batch_size must be a positive integer, got 0"
    )
    assert str(group_error("data", err, keys=())) == (
        "data: batch_size must be a positive integer, got 0"
    )
    own = ValueError("loss_input='probabilities' applies softmax twice")  # the group's own key
    assert str(group_error("classifier", own, ("loss_input", "normalize"))) == (
        "classifier.loss_input='probabilities' applies softmax twice"
    )
    assert str(group_error("loss", TypeError("123 bad"), ("input",))) == "loss: 123 bad"
    t_max = ValueError("T_max must be >= 1, got 0")  # CosineAnnealingLR's key, upper-case first
    assert str(group_error("scheduler", t_max, ("T_max", "eta_min"))) == (
        "scheduler.T_max must be >= 1, got 0"
    )


def test_exit_with_prints_one_line_and_exits_with_the_status(capsys):
    with pytest.raises(SystemExit) as stopped:
        exit_with("losslab-x", "data.batch_size: bad")
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "losslab-x: error: data.batch_size: bad\n"
    with pytest.raises(SystemExit) as stopped:
        exit_with("losslab-x", "interrupted", status=130)
    assert stopped.value.code == 130


def test_exit_with_flushes_its_line_even_to_a_block_buffered_stderr(monkeypatch):
    """The line is out before the exit, also where stderr is a file or pipe that buffers."""
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(raw, encoding="utf-8"))
    with pytest.raises(SystemExit):
        exit_with("losslab-x", "seed: bad")
    assert raw.getvalue() == b"losslab-x: error: seed: bad\n"


def test_run_hydra_turns_a_user_error_into_exit_2_and_keeps_a_crash(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    seen = []

    def user_error():
        seen.append(os.environ.get("HYDRA_FULL_ERROR"))
        raise UsageError("seed=-1 is out of range")

    with pytest.raises(SystemExit) as stopped:
        run_hydra("losslab-train", user_error)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "losslab-train: error: seed=-1 is out of range\n"
    assert seen == ["1"]  # Hydra is told to re-raise while the entry point runs ...
    assert "HYDRA_FULL_ERROR" not in os.environ  # ... and only then

    def crash():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_hydra("losslab-train", crash)
    assert run_hydra("losslab-train", lambda: 7) == 7

    def unsets_it():  # an entry point may clear the variable itself
        del os.environ["HYDRA_FULL_ERROR"]
        return 8

    assert run_hydra("losslab-train", unsets_it) == 8
    assert "HYDRA_FULL_ERROR" not in os.environ

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # the user asks for the whole traceback
    with pytest.raises(UsageError):
        run_hydra("losslab-train", user_error)
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


def test_omegaconf_and_hydra_errors_raised_outside_composition_are_one_line_too():
    from dataclasses import dataclass

    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    @dataclass
    class Node:
        a: int = 1

    node = OmegaConf.structured(Node)
    with pytest.raises(ValidationError) as raised:
        node.a = "x"
    assert one_line(raised.value) == "a: Value 'x' of type 'str' could not be converted to Integer"
    assert one_line(ValidationError("first  part\n  second")) == "first part"
    hydra = HydraException(
        "a  bad\tthing\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
        "\nand the rest of its help"
    )
    assert one_line(hydra) == "a bad thing"


@pytest.mark.parametrize(
    ("errno_name", "reason"),
    [("EACCES", "Permission denied"), ("EROFS", "Read-only file system"),
     ("EEXIST", "File exists"), ("ENOTDIR", "Not a directory"), ("ENOSPC", "No space left on device"),
     ("EISDIR", "Is a directory"), ("EPERM", "Operation not permitted")],
)  # fmt: skip
def test_a_file_system_that_refuses_a_write_is_one_line_naming_the_file(errno_name, reason):
    import errno

    code = getattr(errno, errno_name)
    err = OSError(code, os.strerror(code), "/logs/run/result.json")
    assert one_line(err) == f"cannot write /logs/run/result.json: {os.strerror(code)}"
    assert os.strerror(code) == reason
    assert one_line(OSError(code, os.strerror(code))) is None  # no file named: a crash
    assert one_line(OSError(5, "Input/output error", "/x")) is None  # EIO: a crash


def test_a_real_permission_error_is_one_line(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root writes anywhere: nothing to refuse
            pytest.skip("this user may write into a read-only folder")
        with pytest.raises(PermissionError) as raised:
            (folder / "x.json").write_text("{}")
        assert one_line(raised.value) == f"cannot write {folder / 'x.json'}: Permission denied"
    finally:
        folder.chmod(0o700)


def test_an_out_folder_option_must_not_name_a_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    check_out_dir(tmp_path, "--out")  # a folder that exists
    check_out_dir(tmp_path / "new" / "deeper", "--out")  # one to make
    with pytest.raises(UsageError) as refused:
        check_out_dir(tmp_path / "file.txt", "--out")
    assert str(refused.value) == (
        f"--out={tmp_path / 'file.txt'}: a file is there; --out names a folder to write"
    )


def test_user_main_gives_0_or_2_with_one_line_and_keeps_a_crash(capsys):
    assert user_main("losslab-x", lambda: None) == 0

    def fails(err: Exception):
        def run():
            raise err

        return run

    for err, line in (
        (UsageError("seed:\n bad"), "seed: bad"),
        (ValueError("no runs\nunder x"), "no runs under x"),
        (FileNotFoundError("x: no such folder"), "x: no such folder"),
        (PermissionError(13, "Permission denied", "/o/summary.csv"),
         "cannot write /o/summary.csv: Permission denied"),
    ):  # fmt: skip
        assert user_main("losslab-x", fails(err)) == 2
        assert capsys.readouterr() == ("", f"losslab-x: error: {line}\n")
    with pytest.raises(RuntimeError, match="a bug"):
        user_main("losslab-x", fails(RuntimeError("a bug")))
    with pytest.raises(KeyError):
        user_main("losslab-x", fails(KeyError("k")))

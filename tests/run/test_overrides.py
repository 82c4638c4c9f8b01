"""losslab.run.overrides in this process: which path values ``for_hydra`` quotes and which it leaves
as typed, the keys a sweep's job reads back from its ``multirun.yaml`` (``this_sweep``), and the
job folder names a sweep hands Hydra, which its override grammar must read back unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from losslab.run.overrides import for_hydra, this_sweep


@pytest.mark.parametrize(
    "arg",
    [
        'ckpt_path="logs/s/loss=sse/last.ckpt"',  # quoted by the user
        "ckpt_path='logs/s/loss=sse/last.ckpt'",
        "hydra.run.dir=${oc.env:HOME}/runs",  # an interpolation
        "init_from=logs/it's=1/last.ckpt",  # a quote inside: beyond simple quoting
        r"data.data_dir=C:\mnist",  # a backslash: beyond simple quoting
    ],
)
def test_a_path_value_hydra_must_read_as_typed_is_left_unquoted(arg):
    assert for_hydra([arg]) == [arg]


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("ckpt_path=XL/loss=sse/last.ckpt", "ckpt_path='XL/loss=sse/last.ckpt'"),
        ("hydra.sweep.dir=my runs/a", "hydra.sweep.dir='my runs/a'"),
    ],
)
def test_a_path_value_with_grammar_characters_is_quoted(arg, quoted):
    assert for_hydra([arg]) == [quoted]
    assert OverridesParser.create().parse_override(quoted).value() == arg.partition("=")[2]


@pytest.fixture
def hydra_config():
    """Set ``HydraConfig`` as Hydra does for a job; put back what was there after the test."""
    from hydra.core.hydra_config import HydraConfig

    before = HydraConfig.instance().cfg
    yield HydraConfig.instance().set_config
    HydraConfig.instance().cfg = before


def composed(sweep_dir: Path, *overrides: str, multirun: bool = True):
    """The config ``losslab-train [-m] OVERRIDES hydra.sweep.dir=SWEEP_DIR`` composes."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from losslab.run.config import register

    register()
    mode = RunMode.MULTIRUN if multirun else RunMode.RUN
    args = [*overrides, f"hydra.sweep.dir={sweep_dir}", f"hydra.mode={mode.name}"]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return GlobalHydra.instance().hydra.compose_config("train", args, run_mode=mode)


def test_a_sweeps_job_reads_the_swept_keys_from_multirun_yaml_and_outside_a_sweep_none(
    tmp_path, hydra_config
):
    cfg = composed(tmp_path, "loss=sse,cee", "data.batch_size=32,64", "seed=3")
    hydra_config(cfg)
    assert this_sweep() == {}  # the sweep has not written its multirun.yaml yet
    OmegaConf.save(cfg, tmp_path / "multirun.yaml")
    assert this_sweep() == {"loss": ["sse", "cee"], "data.batch_size": ["32", "64"]}
    hydra_config(composed(tmp_path, "seed=3", multirun=False))
    assert this_sweep() == {}  # a single run, whatever lies in hydra.sweep.dir


def test_the_swept_keys_of_an_experiments_own_sweep_come_before_the_command_lines(
    tmp_path, hydra_config
):
    """Swept keys arrive from the experiment's hydra.sweeper.params too, not only from the
    command line (make sweep: experiment=loss_vs_batch), and a command line's sweep of the same
    key replaces the experiment's."""
    cfg = composed(tmp_path, "experiment=loss_vs_batch", "seed=0,1")
    hydra_config(cfg)
    OmegaConf.save(cfg, tmp_path / "multirun.yaml")
    assert this_sweep() == {
        "loss": ["sse", "cee"],
        "data.batch_size": ["32", "100", "256", "1024"],
        "seed": ["0", "1"],
    }
    cfg = composed(tmp_path, "experiment=loss_vs_batch", "loss=mae,cee")
    hydra_config(cfg)
    OmegaConf.save(cfg, tmp_path / "multirun.yaml")
    os.utime(tmp_path / "multirun.yaml", ns=(10**18, 10**18))  # another version of the file
    assert this_sweep()["loss"] == ["mae", "cee"]


def test_a_new_sweep_in_the_same_folder_is_read_again(tmp_path, hydra_config):
    """The file is read once per version: a rewrite (another mtime, or another size) counts."""
    file = tmp_path / "multirun.yaml"
    first = composed(tmp_path, "loss=sse,cee")
    hydra_config(first)
    OmegaConf.save(first, file)
    mtime = file.stat().st_mtime_ns
    assert this_sweep() == {"loss": ["sse", "cee"]}
    OmegaConf.save(composed(tmp_path, "loss=cee,sse"), file)  # the same size
    os.utime(file, ns=(mtime + 10**9, mtime + 10**9))
    assert this_sweep() == {"loss": ["cee", "sse"]}
    OmegaConf.save(composed(tmp_path, "loss=cee,sse,mae"), file)  # the same mtime
    os.utime(file, ns=(mtime + 10**9, mtime + 10**9))
    assert this_sweep() == {"loss": ["cee", "sse", "mae"]}


@pytest.mark.parametrize(
    "name",
    ["it's", "x\\'y", "ends\\", "loss=sse,data.data_dir=/a\\", "data_dir=C:\\d", "a\\\\'b\\\\"],
)
def test_a_sweep_job_name_is_quoted_so_hydra_reads_it_back_unchanged(name):
    from losslab.sweep.sweeper import _quoted

    parsed = OverridesParser.create().parse_override(f"hydra.sweep.subdir={_quoted(name)}")
    assert parsed.value() == name

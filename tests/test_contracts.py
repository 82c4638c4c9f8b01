"""The private or patched symbols of Hydra and Lightning that losslab relies on, one test each:
an upgrade that removes or changes one fails here, with a message saying what to do, instead of
somewhere deep in a run. pyproject caps both libraries at the tested releases."""

from __future__ import annotations

import inspect
import re
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def require(ok: bool, what: str, where: str) -> None:
    if not ok:
        pytest.fail(
            f"losslab relies on {what}, which the installed version no longer has: port {where} "
            f"to the new API, or keep the upper bound of pyproject.toml"
        )


def test_lightning_still_builds_ddp_children_with_a_patchable_function():
    from lightning.pytorch.strategies.launchers import subprocess_script

    function = getattr(subprocess_script, "_hydra_subprocess_cmd", None)
    require(callable(function), "lightning's subprocess_script._hydra_subprocess_cmd", "ddp.py")
    require(
        list(inspect.signature(function).parameters) == ["local_rank"],
        "_hydra_subprocess_cmd(local_rank)",
        "ddp.child_command",
    )
    source = inspect.getsource(subprocess_script)
    require(
        re.search(r"_hydra_subprocess_cmd\(local_rank", source) is not None,
        "the launcher calling _hydra_subprocess_cmd through the module",
        "ddp.py",
    )


def test_hydra_basic_sweeper_keeps_the_internals_the_sweeper_uses():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    require(hasattr(BasicSweeper, "_parse_config"), "BasicSweeper._parse_config", "sweep.py")
    require(hasattr(BasicSweeper, "split_arguments"), "BasicSweeper.split_arguments", "sweep.py")
    params = inspect.signature(BasicSweeper.__init__).parameters
    require(
        {"max_batch_size", "params"} <= set(params),
        "BasicSweeper(max_batch_size, params)",
        "hydra_plugins/losslab_sweeper",
    )


def test_hydra_config_can_still_be_set_and_read_back_for_a_job_check():
    from hydra.core.hydra_config import HydraConfig

    instance = HydraConfig.instance()
    require(hasattr(instance, "cfg"), "HydraConfig.instance().cfg", "sweep._check_job")
    require(callable(getattr(instance, "set_config", None)), "HydraConfig.set_config", "sweep")
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    require(
        hasattr(ConfigLoaderImpl, "load_sweep_config"),
        "ConfigLoaderImpl.load_sweep_config",
        "sweep._check_job",
    )


def test_model_checkpoint_names_its_files_through_format_checkpoint_name():
    from lightning.pytorch.callbacks import ModelCheckpoint

    params = list(inspect.signature(ModelCheckpoint.format_checkpoint_name).parameters)
    require(
        params == ["self", "metrics", "filename", "ver", "prefix"],
        "ModelCheckpoint.format_checkpoint_name(metrics, filename, ver, prefix)",
        "callbacks.EpochCheckpoint",
    )


def test_model_checkpoint_keeps_the_seams_that_write_last_ckpt_every_epoch():
    from lightning.pytorch.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(monitor="acc/val", save_last=True)
    for name in ("_should_skip_saving_checkpoint", "_save_last_checkpoint", "_monitor_candidates"):
        require(
            callable(getattr(checkpoint, name, None)),
            f"ModelCheckpoint.{name}",
            "callbacks.EpochCheckpoint",
        )
    require(hasattr(checkpoint, "_last_global_step_saved"), "ModelCheckpoint._last_global_step_saved",
            "callbacks.EpochCheckpoint")  # fmt: skip


@pytest.mark.parametrize(
    ("distribution", "module"), [("lightning", "lightning"), ("hydra-core", "hydra")]
)
def test_the_installed_versions_are_within_the_tested_upper_bounds(distribution, module):
    from packaging.specifiers import SpecifierSet

    spec = next(
        r.split(distribution, 1)[1]
        for r in PYPROJECT["project"]["optional-dependencies"]["train"]
        if r.startswith(distribution)
    )
    assert "<" in spec, f"{distribution} needs an upper bound in pyproject.toml"
    assert metadata.version(distribution) in SpecifierSet(spec)

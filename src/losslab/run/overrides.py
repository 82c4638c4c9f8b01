"""The command line as Hydra should read it, and the keys a sweep varies.

- Path values (``ckpt_path=logs/.../loss=sse,data.batch_size=32/checkpoints/epoch=1-step=8.ckpt``)
  hold ``=`` and ``,`` that Hydra's override grammar reads as syntax: they are quoted. A value
  with commas but no ``=`` (``-m data.data_dir=/a,/b``) is a list to sweep, and stays one.
- ``<group>=null``, the usual Hydra idiom to switch a group off (``logger=null``,
  ``callbacks=null``), becomes Hydra's own ``~<group>``, which removes it from the defaults.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

__all__ = ["for_hydra", "sweep_overrides", "swept_keys", "this_sweep"]

# override keys whose values are paths
PATH_KEYS = (
    "ckpt_path",
    "init_from",
    "hydra.run.dir",
    "hydra.sweep.dir",
    "data.data_dir",
    "paths.log_dir",
)
# groups that <group>=null switches off (the required ones then get a clear refusal)
NULLABLE_GROUPS = (
    "logger",
    "callbacks",
    "scheduler",
    "data",
    "model",
    "loss",
    "optimizer",
    "trainer",
)
_PLAIN = re.compile(r"[\w./:@+-]*")


def _quoted(arg: str) -> str:
    key, sep, value = arg.partition("=")
    if not sep or key not in PATH_KEYS or _PLAIN.fullmatch(value):
        return arg
    if value[:1] in "'\"" or "${" in value or "'" in value or "\\" in value:
        return arg  # quoted by the user, an interpolation, or beyond simple quoting
    if "," in value and "=" not in value:
        return arg  # a sweep over several paths
    return f"{key}='{value}'"


def for_hydra(args: Sequence[str]) -> list[str]:
    """The command line's overrides with path values quoted and ``<group>=null`` as ``~<group>``
    (options such as ``-m`` and ``--config-dir DIR`` pass unchanged)."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in NULLABLE_GROUPS and value == "null":
            arg = f"~{key}"
        out.append(_quoted(arg))
    return out


def _named(key: str) -> bool:
    """Whether a key can name a job (Hydra's own keys and the checkpoint don't)."""
    return key.split(".")[0].split("/")[0] not in ("hydra", "ckpt_path")


def swept_keys(overrides: Sequence[str]) -> dict[str, list[str]]:
    """``key -> [value, ...]`` of the overrides that sweep (``loss=sse,cee``, ``range(...)``,
    ``glob(...)``: a group's configs, as Hydra's config loader lists them), in the order given;
    Hydra's own keys left out."""
    loader = (
        GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    )
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(list(overrides))
    return {
        o.key_or_group: list(o.sweep_string_iterator())
        for o in parsed
        if o.is_sweep_override() and _named(o.key_or_group)
    }


def sweep_overrides(config: DictConfig) -> list[str]:
    """The overrides a sweep expands: ``hydra.sweeper.params`` (an experiment's), then the
    command line's, as Hydra's ``BasicSweeper`` combines them."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    return [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)


def this_sweep() -> dict[str, list[str]]:
    """Inside a sweep's job: the swept keys and their values, from ``multirun.yaml`` (what the
    sweep wrote before its first job); ``{}`` outside a sweep."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return {}
    file = Path(hc.sweep.dir) / "multirun.yaml"
    if not file.is_file():
        return {}
    stat = file.stat()
    swept = _swept_in(str(file), stat.st_mtime_ns, stat.st_size)
    return {k: list(v) for k, v in swept.items()}


@functools.lru_cache(maxsize=4)
def _swept_in(file: str, mtime_ns: int, size: int) -> dict[str, list[str]]:
    """:func:`swept_keys` of a sweep's ``multirun.yaml``, read once per sweep (and version of
    the file), not once per job."""
    return swept_keys(sweep_overrides(OmegaConf.load(file)))

"""What losslab writes for TensorBoard beyond plain scalars: the chart layout and the HPARAMS.

HPARAMS are built with TensorBoard's own protos (``api_pb2``, ``plugin_data_pb2``) rather than
``torch.utils.tensorboard.summary.hparams``, which types booleans as numbers and cannot say which
hyperparameters differ. What TensorBoard 2.21 does with them:

- the backend sorts the experiment's hyperparameters by ``differs`` first, then by name
  (``backend_context._sort_and_reduce_to_hparams_limit``); the table shows the first five and
  the first five metrics, in the order written. So a sweep's experiment holds the keys that
  differ between its runs only (the swept ones and those computed from them, such as a study's
  ``lr``), and the selection metric is written first, then the test accuracies;
- a discrete domain gives the sidebar one checkbox per value (fewer than 10 values): only the
  values the sweep uses;
- numbers are shown with ``toPrecision(5)`` (``32.000``, ``1024.0``): TensorBoard has no integer
  type, and writing integers as strings would lose numeric sorting and the parallel-coordinates
  axes, so they stay numbers;
- with several runs that each carry an experiment, it uses the first one it finds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from google.protobuf import struct_pb2
from omegaconf import Container, DictConfig, OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from losslab.names import (
    GAP,
    MEMORIZED,
    SPLITS,
    TEST_ACC,
    TRAIN_ACC,
    TRAIN_IMAGES,
    TRUE_ACC,
)

__all__ = [
    "HPARAM_KEYS",
    "OVERFITTING_LAYOUT",
    "derived_columns",
    "experiment_summary",
    "hparams_layout",
    "run_hparams",
    "session_summaries",
]

_SPLITS = "|".join(SPLITS)
# CUSTOM SCALARS tab: train vs test (vs val) on one chart per metric; with label noise, the
# accuracy on the noisy and on the true training labels, memorization and the test accuracy.
OVERFITTING_LAYOUT = {
    "Overfitting": {
        "accuracy: train vs test": ["Multiline", [rf"acc/({_SPLITS})$"]],
        "loss: train vs test": ["Multiline", [rf"loss/({_SPLITS})"]],
        "gap: train - test accuracy (true train labels under label noise)": ["Multiline", [GAP]],
        "label noise: noisy vs true train labels, memorized, test": [
            "Multiline",
            [rf"^({TRAIN_ACC}|{TRUE_ACC}|{MEMORIZED}|{TEST_ACC})$"],
        ],
        "calibration error (ECE)": ["Multiline", [rf"ece/({_SPLITS})"]],
        "NLL (plain cross-entropy)": ["Multiline", [rf"nll/({_SPLITS})"]],
    }
}
# HPARAMS column -> the override key it comes from (groups: the chosen config's name)
HPARAM_KEYS = {
    "loss": "loss",
    "lr": "optimizer.lr",
    "batch_size": "data.batch_size",
    "optimizer": "optimizer",
    "scheduler": "scheduler",
    "from_logits": "loss.from_logits",
    "hidden": "model.hidden",
    "activation": "model.activation",
    "train_size": "data.train_size",
    "val_size": "data.val_size",
    "label_noise": "data.label_noise",
    "seed": "seed",
    "threads": "threads",
}
HPARAM_NAMES = {key: name for name, key in HPARAM_KEYS.items()}  # override key -> column


def _value(v: Any) -> struct_pb2.Value:
    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, int | float):
        return struct_pb2.Value(number_value=float(v))
    return struct_pb2.Value(string_value=str(v))


def _plain(v: Any) -> bool | float | str:
    return v if isinstance(v, bool) else float(v) if isinstance(v, int | float) else str(v)


def _type(v: Any) -> int:
    if isinstance(v, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(v, int | float):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    summary = Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data))
    return summary


def experiment_summary(
    hparams: Mapping[str, Any],
    metrics: Sequence[str],
    differs: Iterable[str] = (),
    domains: Mapping[str, Sequence[Any]] | None = None,
) -> Summary:
    """The experiment: which hyperparameters (order, type, domain) and metrics the table has.

    Args:
        hparams: name -> a value of the type the column should have (the order is kept;
            TensorBoard then moves ``differs`` ones first).
        metrics: the ``hp/*`` scalar tags, the one to choose by first.
        differs: names of the hyperparameters that vary (the swept keys).
        domains: name -> the values the sidebar offers as checkboxes (discrete domain).
    """
    differs, domains = set(differs), domains or {}
    infos = []
    for name, value in hparams.items():
        info = api_pb2.HParamInfo(name=name, type=_type(value), differs=name in differs)
        if isinstance(value, bool):
            info.domain_discrete.extend([False, True])
        elif name in domains:
            info.domain_discrete.extend([_plain(v) for v in domains[name]])
        infos.append(info)
    experiment = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics],
        time_created_secs=time.time(),
    )
    return _summary(
        metadata.EXPERIMENT_TAG,
        plugin_data_pb2.HParamsPluginData(
            experiment=experiment, version=metadata.PLUGIN_DATA_VERSION
        ),
    )


def session_summaries(hparams: Mapping[str, Any], status: str) -> tuple[Summary, Summary]:
    """This run's row: its hyperparameter values (typed) and its end status (``ok`` is a
    success, anything else a failure)."""
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        if value is not None:
            start.hparams[name].CopyFrom(_value(value))
    end = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.STATUS_SUCCESS if status == "ok" else api_pb2.STATUS_FAILURE,
        end_time_secs=time.time(),
    )
    return (
        _summary(
            metadata.SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=start),
        ),
        _summary(
            metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)
        ),
    )


def _select(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value


def run_hparams(
    cfg: DictConfig, choices: Mapping[str, Any], swept: Iterable[str]
) -> dict[str, Any]:
    """The HPARAMS columns of a run: the same keys in every run (``epochs`` and ``status`` are
    added at the end), plus any swept key that is not one of them, named by its override key."""
    out: dict[str, Any] = {}
    for name, key in HPARAM_KEYS.items():
        out[name] = (
            choices.get(key) if key in ("loss", "optimizer", "scheduler") else _select(cfg, key)
        )
    out["hidden"] = "-".join(map(str, out["hidden"]))
    out["from_logits"] = bool(out["from_logits"])
    out["train_size"] = out["train_size"] or TRAIN_IMAGES - cfg.data.val_size
    for key in (k for k in swept if k not in HPARAM_NAMES):
        out[key] = choices[key] if key in choices else _select(cfg, key)
        if isinstance(out[key], list | dict):
            out[key] = json.dumps(out[key])
    return out


def derived_columns(cfg: DictConfig, swept: Iterable[str]) -> list[str]:
    """The HPARAMS columns whose value the config computes from a swept key (a study's
    ``optimizer.lr``, resolved per loss, batch size and rank from the tuning stage): they differ
    between the sweep's runs although no command line sets them."""
    refs = [f"${{{key}}}" for key in swept] + [f"choices.{key}}}" for key in swept]
    out = []
    for name, key in HPARAM_KEYS.items():
        parent, _, last = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or last not in node:
            continue
        if OmegaConf.is_interpolation(node, last):
            expression = str(OmegaConf.to_container(node, resolve=False)[last])
            if any(ref in expression for ref in refs):
                out.append(name)
    return out


def hparams_layout(
    hparams: Mapping[str, Any], swept: Mapping[str, list[str]], derived: Sequence[str] = ()
) -> tuple[list[str], list[str], dict[str, list[Any]]]:
    """``(columns, differs, domains)``: what the HPARAMS table of a sweep shows: the swept keys, then the ``derived`` columns
    (:func:`derived_columns`), all marked ``differs``, with the values the sweep asked for as the
    sidebar's checkboxes (``derived`` ones get none: their values are not known in advance).
    The keys every run of the sweep shares are left out (they are in each run's config). A
    single run (nothing swept) keeps every column, ``loss``, ``lr`` and ``batch_size`` first."""
    swept_names = [HPARAM_NAMES.get(key, key) for key in swept]
    if not swept_names:
        differs = ["loss", "lr", "batch_size"]
        return [*differs, *(n for n in hparams if n not in differs)], differs, {}
    differs = list(dict.fromkeys([*swept_names, *derived]))
    domains: dict[str, list[Any]] = {}
    for key, values in swept.items():
        name = HPARAM_NAMES.get(key, key)
        kind = type(hparams[name])
        if kind is bool:
            continue
        parsed = [yaml.safe_load(v) for v in values]
        if kind in (int, float):
            domains[name] = sorted({float(v) for v in parsed if isinstance(v, int | float)})
        else:
            domains[name] = sorted(
                {"-".join(map(str, v)) if isinstance(v, list) else str(v) for v in parsed}
            )
    return differs, differs, domains

"""What losslab writes for TensorBoard beyond plain scalars: the chart layout and the HPARAMS.

HPARAMS are built with TensorBoard's own protos (``api_pb2``, ``plugin_data_pb2``) rather than
``torch.utils.tensorboard.summary.hparams``, which types booleans as numbers and cannot say which
hyperparameters differ. What TensorBoard 2.21 does with them:

- the backend sorts the experiment's hyperparameters by ``differs`` first, then by name
  (``backend_context._sort_and_reduce_to_hparams_limit``); the table shows the first five and
  the first five metrics, in the order written. So the swept keys (``differs=True``) come first,
  and the selection metric is written first;
- a discrete domain gives the sidebar one checkbox per value (fewer than 10 values);
- numbers are shown with ``toPrecision(5)`` (``32.000``, ``1024.0``): TensorBoard has no integer
  type, and writing integers as strings would lose numeric sorting and the parallel-coordinates
  axes, so they stay numbers;
- with several runs that each carry an experiment, it uses the first one it finds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

__all__ = ["OVERFITTING_LAYOUT", "experiment_summary", "session_summaries"]

# CUSTOM SCALARS tab: train vs test (vs val) on one chart per metric.
OVERFITTING_LAYOUT = {
    "Overfitting": {
        "accuracy: train vs test": ["Multiline", [r"acc/(train|val|test)"]],
        "loss: train vs test": ["Multiline", [r"loss/(train|val|test)"]],
        "gap: train - test accuracy": ["Multiline", [r"gap/acc"]],
        "calibration error (ECE)": ["Multiline", [r"ece/(train|val|test)"]],
        "NLL (plain cross-entropy)": ["Multiline", [r"nll/(train|val|test)"]],
    }
}


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

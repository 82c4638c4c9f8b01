"""What losslab writes for TensorBoard's HPARAMS, in this process: a run's columns from its
composed config, their order, the columns that differ and the sidebar's values, the experiment
and session protos as TensorBoard's hparams plugin reads them, and the callback that writes them
at the end of a fit."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml
from hydra import compose, initialize_config_dir
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from losslab.run import tb
from losslab.run.callbacks import TensorBoardSummary
from losslab.train import CONF_DIR


def plugin_data(summary) -> plugin_data_pb2.HParamsPluginData:
    (value,) = summary.value
    assert value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME
    return plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)


def composed(*overrides: str):
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_a_runs_columns_come_from_its_config_and_its_chosen_groups():
    cfg = composed("loss=sse", "optimizer.lr=0.5", "model.hidden=[50,20]", "data.val_size=1000",
                   "scheduler=step")  # fmt: skip
    choices = {"loss": "sse", "optimizer": "sgd", "scheduler": "step"}
    swept = ["optimizer.lr", "data.eval_splits", "trainer.max_epochs", "scheduler"]
    assert tb.run_hparams(cfg, choices, swept) == {
        "loss": "sse",
        "lr": 0.5,
        "batch_size": 100,
        "optimizer": "sgd",
        "from_logits": True,
        "hidden": "50-20",
        "activation": "relu",
        "train_size": 59_000,  # no subset: the training images the validation split leaves
        "val_size": 1000,
        "label_noise": 0.0,
        "seed": 0,
        "threads": 1,
        "data.eval_splits": '["train", "val", "test"]',
        "trainer.max_epochs": 5,
        "scheduler": "step",
    }
    # the chosen schedule is a column of its own, after the optimizer, swept or not
    row = tb.run_hparams(cfg, choices, [])
    assert list(row)[:5] == ["loss", "lr", "batch_size", "optimizer", "scheduler"]
    assert row["scheduler"] == "step"
    small = tb.run_hparams(composed("data.train_size=500", "loss.from_logits=false"), choices, [])
    assert (small["train_size"], small["from_logits"], small["hidden"]) == (500, False, "100")
    assert tb.run_hparams(composed(), {"loss": "cee", "scheduler": "none"}, [])["scheduler"] == (
        "none"
    )


def test_a_sweeps_table_shows_the_keys_that_differ_with_only_the_values_it_uses():
    hparams = {"loss": "cee", "lr": 0.1, "batch_size": 100, "optimizer": "sgd",
               "from_logits": True, "hidden": "100", "seed": 0, "activation": "relu"}  # fmt: skip
    swept = {"model.hidden": ["[100]", "[50,20]"], "data.batch_size": ["32", "100"],
             "loss.from_logits": ["true", "false"], "seed": ["3", "1"], "loss": ["sse", "cee"]}  # fmt: skip
    columns, differs, domains = tb.hparams_layout(hparams, swept, ["lr"])
    # the swept keys as swept, then what the config computes from them; the shared keys
    # (optimizer, activation) are left out, so the first columns are those that tell runs apart
    assert differs == ["hidden", "batch_size", "from_logits", "seed", "loss", "lr"]
    assert columns == differs
    assert domains == {
        "hidden": ["100", "50-20"],
        "batch_size": [32.0, 100.0],
        "seed": [1.0, 3.0],
        "loss": ["cee", "sse"],  # the swept losses only: no checkbox for a loss no run used
    }  # a derived column (lr) has no domain: its values are not known before the runs
    columns, differs, domains = tb.hparams_layout(hparams, {}, [])
    assert differs == ["loss", "lr", "batch_size"]  # a single run: what a user compares first
    assert columns == [*differs, "optimizer", "from_logits", "hidden", "seed", "activation"]
    assert domains == {}


def test_a_studys_lr_computed_from_the_swept_keys_is_a_column_that_differs():
    final = composed("experiment=study_final")
    swept = {"loss": ["cee", "sse"], "data.batch_size": ["100"], "study.lr_rank": ["0", "1"],
             "seed": ["0", "1"]}  # fmt: skip
    assert tb.derived_columns(final, swept) == ["lr"]
    fixed = composed("experiment=noise_fixed")
    assert tb.derived_columns(fixed, {"loss": ["cee"], "seed": ["0", "1"]}) == ["lr"]
    # an lr set on the command line, or an interpolation of no swept key, is no derived column
    assert tb.derived_columns(composed("optimizer.lr=0.3"), swept) == []
    assert tb.derived_columns(final, {"model.hidden": ["[10]"]}) == []


def test_the_experiment_proto_types_each_column_and_keeps_the_metric_order():
    hparams = {"loss": "cee", "lr": 0.1, "batch_size": 100, "from_logits": True, "seed": 3}
    summary = tb.experiment_summary(
        hparams, ["hp/val_acc", "hp/test_acc"], differs=["lr"], domains={"loss": ["cee", "sse"]}
    )
    assert summary.value[0].tag == metadata.EXPERIMENT_TAG
    experiment = plugin_data(summary).experiment
    infos = {i.name: i for i in experiment.hparam_infos}
    assert list(infos) == list(hparams)
    assert [infos[n].type for n in hparams] == [
        api_pb2.DATA_TYPE_STRING, api_pb2.DATA_TYPE_FLOAT64, api_pb2.DATA_TYPE_FLOAT64,
        api_pb2.DATA_TYPE_BOOL, api_pb2.DATA_TYPE_FLOAT64,
    ]  # fmt: skip
    assert [n for n, i in infos.items() if i.differs] == ["lr"]
    assert [v.string_value for v in infos["loss"].domain_discrete.values] == ["cee", "sse"]
    assert [v.bool_value for v in infos["from_logits"].domain_discrete.values] == [False, True]
    assert not infos["lr"].HasField("domain_discrete")
    assert [m.name.tag for m in experiment.metric_infos] == ["hp/val_acc", "hp/test_acc"]
    assert experiment.time_created_secs > 1.7e9


@pytest.mark.parametrize(("status", "code"), [("ok", api_pb2.STATUS_SUCCESS),
                                              ("diverged", api_pb2.STATUS_FAILURE)])  # fmt: skip
def test_a_sessions_values_are_typed_and_its_status_is_a_success_only_when_ok(status, code):
    start, end = tb.session_summaries(
        {"loss": "cee", "lr": 0.1, "batch_size": 100, "from_logits": False, "gone": None}, status
    )
    assert (start.value[0].tag, end.value[0].tag) == (
        metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG)  # fmt: skip
    values = plugin_data(start).session_start_info.hparams
    assert sorted(values) == ["batch_size", "from_logits", "loss", "lr"]  # None: no value
    assert values["loss"].string_value == "cee"
    assert (values["lr"].number_value, values["batch_size"].number_value) == (0.1, 100.0)
    assert values["from_logits"].WhichOneof("kind") == "bool_value"
    assert values["from_logits"].bool_value is False
    assert plugin_data(end).session_end_info.status == code


def test_the_callback_writes_the_layout_at_the_start_and_hparams_at_the_end(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="", version="")
    trainer = SimpleNamespace(is_global_zero=True, loggers=[logger])
    history = [{"epoch": 0, "acc/test": 0.1}, {"epoch": 1, "acc/test": 0.8},
               {"epoch": 2, "acc/test": 0.9}]  # fmt: skip
    module = SimpleNamespace(history=history, status="ok",
                             final_metrics=lambda: {"hp/val_acc": 0.85, "hp/test_acc": 0.9})  # fmt: skip
    callback = TensorBoardSummary({"loss": "cee", "lr": 0.1, "hidden": "100"}, ["loss", "lr"],
                                  ["lr"], {"loss": ["cee", "sse"]}, replay=True)  # fmt: skip
    callback.on_fit_start(trainer, module)
    callback.on_train_start(trainer, module)  # replay: the checkpoint's curves come along
    callback.on_fit_end(trainer, module)
    logger.experiment.flush()
    saved = yaml.safe_load((tmp_path / "hparams.yaml").read_text())
    # hparams.yaml keeps every column; the table those of the layout
    assert saved == {"loss": "cee", "lr": 0.1, "hidden": "100", "epochs": 2, "status": "ok"}
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = {t: [(s.step, round(s.value, 4)) for s in events.Scalars(t)]
               for t in events.Tags()["scalars"]}  # fmt: skip
    assert scalars == {"acc/test": [(0, 0.1), (1, 0.8), (2, 0.9)], "hp/val_acc": [(2, 0.85)],
                       "hp/test_acc": [(2, 0.9)]}  # fmt: skip
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    assert set(content) == {metadata.EXPERIMENT_TAG, metadata.SESSION_START_INFO_TAG,
                            metadata.SESSION_END_INFO_TAG}  # fmt: skip
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content[metadata.EXPERIMENT_TAG]
    ).experiment
    assert [i.name for i in experiment.hparam_infos] == ["loss", "lr", "epochs", "status"]
    assert [i.name for i in experiment.hparam_infos if i.differs] == ["lr"]
    layout = events.PluginTagToContent("custom_scalars")
    assert layout  # the Overfitting charts


def test_the_callback_writes_nothing_on_other_ranks_or_without_tensorboard(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="", version="")
    module = SimpleNamespace(history=[{"epoch": 0, "acc/test": 0.1}], status="diverged",
                             final_metrics=lambda: {})  # fmt: skip
    callback = TensorBoardSummary({"loss": "cee"}, ["loss"], [], {}, replay=True)
    for trainer in (SimpleNamespace(is_global_zero=False, loggers=[logger]),
                    SimpleNamespace(is_global_zero=True, loggers=[])):  # fmt: skip
        callback.on_fit_start(trainer, module)
        callback.on_train_start(trainer, module)
        callback.on_fit_end(trainer, module)
    assert list(tmp_path.iterdir()) == []
    callback = TensorBoardSummary({"loss": "cee"}, ["loss"], [], {})  # no replay: its own run
    trainer = SimpleNamespace(is_global_zero=True, loggers=[logger])
    callback.on_train_start(trainer, module)
    callback.on_fit_end(trainer, SimpleNamespace(history=[], status="diverged",
                                                 final_metrics=lambda: {}))  # fmt: skip
    logger.experiment.flush()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert events.Tags()["scalars"] == []
    saved = json.loads(json.dumps(yaml.safe_load((tmp_path / "hparams.yaml").read_text())))
    assert saved == {"loss": "cee", "epochs": 0, "status": "diverged"}


def test_number_domains_are_numbers_in_the_experiment_proto():
    summary = tb.experiment_summary({"lr": 0.1, "seed": 3}, ["hp/val_acc"],
                                    domains={"lr": [1, 0.1], "seed": [3, 1]})  # fmt: skip
    infos = {i.name: i for i in plugin_data(summary).experiment.hparam_infos}
    for name, expected in (("lr", [1.0, 0.1]), ("seed", [3.0, 1.0])):
        values = infos[name].domain_discrete.values
        assert [v.WhichOneof("kind") for v in values] == ["number_value"] * 2
        assert [v.number_value for v in values] == expected


def test_a_sessions_start_and_end_times_are_when_it_was_written():
    import time

    before = time.time()
    start, end = tb.session_summaries({"loss": "cee"}, "ok")
    after = time.time()
    assert before <= plugin_data(start).session_start_info.start_time_secs <= after
    assert before <= plugin_data(end).session_end_info.end_time_secs <= after


def test_a_swept_key_without_a_column_name_keeps_its_override_key_and_its_values():
    hparams = {"loss": "cee", "lr": 0.1, "trainer.max_epochs": 5, "scheduler": "step"}
    swept = {"trainer.max_epochs": ["5", "1"], "scheduler": ["step", "cosine"]}
    columns, differs, domains = tb.hparams_layout(hparams, swept)
    assert differs == columns == ["trainer.max_epochs", "scheduler"]
    assert domains == {
        "trainer.max_epochs": [1.0, 5.0],
        "scheduler": ["cosine", "step"],
    }


def test_a_columns_list_value_is_read_with_its_interpolations_resolved():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {"model": {"width": 64, "hidden": ["${model.width}", 32]},
         "data": {"train_size": 500, "val_size": 0, "sizes": ["${data.train_size}", 2]}}
    )  # fmt: skip
    row = tb.run_hparams(cfg, {"loss": "cee"}, ["data.sizes"])
    assert (row["hidden"], row["data.sizes"]) == ("64-32", "[500, 2]")

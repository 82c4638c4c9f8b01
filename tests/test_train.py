"""losslab-train end to end: event files, checkpoints, configs, determinism, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hp_metadata

from losslab.data import MNISTDataModule
from losslab.models import MLP

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
EPOCH_TAGS = ["loss/train", "loss/test", "acc/train", "acc/test", "gap/acc"]
HP_METRICS = ["hp/test_acc", "hp/test_loss", "hp/best_test_acc", "hp/gap_acc"]
HP_KEYS = {
    "loss",
    "batch_size",
    "lr",
    "optimizer",
    "hidden",
    "seed",
    "epochs",
    "train_size",
    "threads",
}
SMALL = ["data.train_size=500", "data.eval_batch_size=5000", "hydra.callbacks={}"]


def run_train(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the real console entry point (as a user would) and capture its output."""
    cmd = [sys.executable, "-m", "losslab.train", *overrides]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=os.environ)


def events(run_dir: Path) -> EventAccumulator:
    files = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    ea = EventAccumulator(str(files[0]))
    ea.Reload()
    return ea


def scalars(ea: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory, data_dir) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "r"
    res = run_train(
        *SMALL, "trainer.max_epochs=2", "data.val_size=500", f"hydra.run.dir={run_dir}", cwd=REPO
    )
    assert res.returncode == 0, res.stderr
    return run_dir


@pytest.mark.slow
def test_two_epoch_run_writes_every_curve_with_epoch_steps(two_epoch_run):
    s = scalars(events(two_epoch_run))
    for tag in [*EPOCH_TAGS, "loss/val", "acc/val"]:
        assert [step for step, _ in s[tag]] == [0, 1, 2], tag
    assert s["batch/loss"][0][0] == 1  # the first step, x = global step
    for (_, gap), (_, tr), (_, te) in zip(s["gap/acc"], s["acc/train"], s["acc/test"], strict=True):
        assert gap == pytest.approx(tr - te, abs=1e-6)
    # epoch 0 is the untrained model: near chance (10 classes); training improves it
    assert s["acc/test"][0][1] < 0.3 < s["acc/test"][2][1]


@pytest.mark.slow
def test_event_file_has_overfitting_layout_and_real_hparams(two_epoch_run):
    ea = events(two_epoch_run)
    layout = ea.PluginTagToContent("custom_scalars")
    assert b"Overfitting" in next(iter(layout.values())) or "custom_scalars__config__" in layout
    tensor = ea.Tensors("custom_scalars__config__")[0].tensor_proto
    assert b"Overfitting" in tensor.string_val[0]

    content = ea.PluginTagToContent("hparams")
    start = hp_metadata.parse_session_start_info_plugin_data(
        content["_hparams_/session_start_info"]
    )
    assert set(start.hparams) >= HP_KEYS
    assert start.hparams["train_size"].number_value == 500
    assert start.hparams["epochs"].number_value == 2
    assert start.hparams["status"].string_value == "ok"
    exp = hp_metadata.parse_experiment_plugin_data(content["_hparams_/experiment"])
    assert {m.name.tag for m in exp.metric_infos} == set(HP_METRICS)
    s = scalars(ea)
    assert s["hp/test_acc"][-1][1] == pytest.approx(s["acc/test"][-1][1])
    assert s["hp/best_test_acc"][-1][1] == pytest.approx(max(v for _, v in s["acc/test"]))
    assert "hp_metric" not in s


@pytest.mark.slow
def test_checkpoint_loads_weights_only_and_gives_the_logged_test_accuracy(two_epoch_run, data_dir):
    ckpt = torch.load(two_epoch_run / "checkpoints" / "last.ckpt", weights_only=True)
    net = MLP()
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    )
    dm = MNISTDataModule(data_dir, download=False)
    dm.setup()
    x, y = dm.on_after_batch_transfer(dm.splits["test"], 0)
    with torch.no_grad():
        acc = (net.eval()(x).argmax(1) == y).float().mean().item()
    logged = scalars(events(two_epoch_run))["acc/test"][-1][1]
    assert acc == pytest.approx(logged, abs=1e-6)


@pytest.mark.slow
def test_same_seed_and_threads_give_identical_metrics(tmp_path, data_dir):
    runs = []
    for name in ("a", "b"):
        res = run_train(
            *SMALL, "trainer.max_epochs=1", "seed=3", f"hydra.run.dir={tmp_path / name}", cwd=REPO
        )
        assert res.returncode == 0, res.stderr
        s = scalars(events(tmp_path / name))
        runs.append({k: [v for _, v in vals] for k, vals in s.items()})
    assert runs[0] == runs[1]  # bit for bit


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.batch_size=0", "data.batch_size"),
        ("optimizer.lr=-1", "optimizer.lr"),
        ("model.hidden=[0]", "model.hidden"),
        ("data.val_size=-5", "data.val_size"),
        ("loss.label_smoothing=2", "loss.label_smoothing"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
    ],
)
def test_out_of_range_values_fail_before_training_naming_the_key(tmp_path, override, key):
    res = run_train(override, f"hydra.run.dir={tmp_path / 'r'}", "hydra.callbacks={}", cwd=REPO)
    assert res.returncode != 0
    assert key in res.stderr
    assert "out of range" in res.stderr
    assert not (tmp_path / "r" / "tensorboard").exists()


def test_unknown_loss_lists_the_available_losses(tmp_path):
    res = run_train("loss=foo", f"hydra.run.dir={tmp_path / 'r'}", cwd=REPO)
    assert res.returncode != 0
    assert "loss" in res.stderr
    assert "cee" in res.stderr
    assert "sse" in res.stderr


def test_wrong_type_and_unknown_key_are_rejected_by_name(tmp_path):
    res = run_train("data.batch_size=abc", f"hydra.run.dir={tmp_path / 'a'}", cwd=REPO)
    assert res.returncode != 0
    assert "data.batch_size" in res.stderr
    assert "abc" in res.stderr
    res = run_train("data.batchsize=3", f"hydra.run.dir={tmp_path / 'b'}", cwd=REPO)
    assert res.returncode != 0
    assert "batchsize" in res.stderr


def _config_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "overrides",
    [
        [f"{group}={name}"]
        for group in ("data", "model", "loss", "optimizer", "trainer")
        for name in _config_names(group)
    ]
    + [[f"experiment={name}"] for name in _config_names("experiment")],
)
def test_every_config_in_conf_composes_and_validates(overrides):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    import losslab.train  # registers the schemas  # noqa: F401

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = "/tmp/losslab-compose-test"  # Hydra sets it when it runs
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    OmegaConf.to_object(cfg)  # runs every schema's range checks
    assert cfg.data.batch_size > 0
    assert cfg.trainer.max_epochs > 0


def test_trainer_test_reports_the_test_accuracy_of_the_module(data_dir):
    import lightning as L

    from losslab import CEELoss
    from losslab.module import Classifier

    torch.manual_seed(0)
    net = MLP()
    module = Classifier(net, CEELoss(), optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    dm = MNISTDataModule(data_dir, download=False)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    (result,) = trainer.test(module, datamodule=dm, verbose=False)
    x, y = dm.on_after_batch_transfer(dm.splits["test"], 0)
    with torch.no_grad():
        expected = (net.eval()(x).argmax(1) == y).float().mean().item()
    assert result["acc/test"] == pytest.approx(expected, abs=1e-6)

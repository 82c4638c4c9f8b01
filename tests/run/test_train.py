"""losslab-train end to end, in this process: event files, HPARAMS, result.json, checkpoints,
train.log, determinism, threads, divergence, calibration metrics against the checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import ok, train
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hp_metadata
from torchmetrics.functional.classification import multiclass_calibration_error

from losslab.lit.classifier import Classifier, scale_pixels
from losslab.lit.data import MNISTDataModule

SPLIT_TAGS = ["loss", "acc", "nll", "brier", "ece"]
SMALL = ["data.train_size=500", "data.eval_batch_size=5000", "~hydra.callbacks.report"]
pytestmark = pytest.mark.slow


def events(run_dir: Path) -> EventAccumulator:
    files = list(run_dir.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    ea = EventAccumulator(str(files[0]), size_guidance={"scalars": 0})
    ea.Reload()
    return ea


def scalars(ea: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def hparams_of(ea: EventAccumulator) -> tuple[dict, api_pb2.Experiment]:
    content = ea.PluginTagToContent("hparams")
    start = hp_metadata.parse_session_start_info_plugin_data(
        content[hp_metadata.SESSION_START_INFO_TAG]
    )
    values = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return values, hp_metadata.parse_experiment_plugin_data(content[hp_metadata.EXPERIMENT_TAG])


def load_module(run_dir: Path) -> Classifier:
    """The run's last checkpoint, rebuilt from the checkpoint alone."""
    return Classifier.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt").eval()


def split_tensors(data_dir: Path, split: str, **dm_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's raw uint8 images and labels: what the module takes (it scales them itself)."""
    dm = MNISTDataModule(data_dir, download=False, **dm_kwargs)
    dm.setup()
    images, labels = dm.splits[split]
    assert images.dtype == torch.uint8
    return images, labels


@pytest.fixture(scope="module")
def two_epoch_run(shared_run) -> Path:
    return shared_run("two_epoch", *SMALL, "trainer.max_epochs=2", "data.val_size=500")


def test_two_epoch_run_writes_every_curve_with_epoch_steps(two_epoch_run):
    s = scalars(events(two_epoch_run))
    for split in ("train", "val", "test"):
        for kind in SPLIT_TAGS:
            assert [step for step, _ in s[f"{kind}/{split}"]] == [0, 1, 2], (kind, split)
    assert [step for step, _ in s["time/epoch"]] == [1, 2]
    assert all(0 < v < 60 for _, v in s["time/epoch"])
    assert s["batch/loss"][0][0] == 1  # the first step, x = global step
    assert [v for _, v in s["lr"]] == pytest.approx([0.1, 0.1, 0.1])  # no schedule
    for (_, gap), (_, tr), (_, te) in zip(s["gap/acc"], s["acc/train"], s["acc/test"], strict=True):
        assert gap == pytest.approx(tr - te, abs=1e-6)
    # epoch 0 is the untrained model: near chance (10 classes); training improves it
    assert s["acc/test"][0][1] < 0.3 < s["acc/test"][2][1]
    # CEE on logits: the training loss is the plain cross-entropy, so loss/* == nll/*
    assert s["loss/test"][-1][1] == pytest.approx(s["nll/test"][-1][1], rel=1e-5)
    assert "acc/train_true" not in s  # no label noise: nothing to measure against


def test_event_file_has_the_layout_and_typed_hparams_with_val_first(two_epoch_run):
    ea = events(two_epoch_run)
    tensor = ea.Tensors("custom_scalars__config__")[0].tensor_proto
    assert b"Overfitting" in tensor.string_val[0]

    values, experiment = hparams_of(ea)
    assert values["loss"] == "cee"
    assert values["from_logits"] is True  # a boolean, not 1.0
    assert (values["train_size"], values["val_size"], values["epochs"]) == (500, 500, 2)
    assert (values["status"], values["label_noise"]) == ("ok", 0.0)
    infos = {h.name: h for h in experiment.hparam_infos}
    assert infos["from_logits"].type == api_pb2.DATA_TYPE_BOOL
    assert infos["loss"].WhichOneof("domain") is None  # no checkbox for a loss no run used
    # a single run: loss, lr, batch_size are the columns TensorBoard shows first
    assert [h.name for h in experiment.hparam_infos if h.differs] == ["loss", "lr", "batch_size"]
    metric_tags = [m.name.tag for m in experiment.metric_infos]
    # chosen on val; test reported, at the last epoch and at the early-stopping epoch
    assert metric_tags[:3] == ["hp/val_acc", "hp/test_acc", "hp/test_at_best"]
    assert {"hp/test_ece", "hp/test_nll", "hp/test_brier", "hp/best_val_acc"} <= set(metric_tags)
    s = scalars(ea)
    assert s["hp/val_acc"][-1][1] == pytest.approx(s["acc/val"][-1][1])
    assert s["hp/test_ece"][-1][1] == pytest.approx(s["ece/test"][-1][1])
    assert s["hp/best_val_acc"][-1][1] == pytest.approx(max(v for _, v in s["acc/val"]))
    assert "hp_metric" not in s
    assert yaml.safe_load((two_epoch_run / "hparams.yaml").read_text())["loss"] == "cee"


def test_result_json_holds_the_status_epochs_and_the_hparams_metrics(two_epoch_run):
    result = json.loads((two_epoch_run / "result.json").read_text())
    s = scalars(events(two_epoch_run))
    assert (result["status"], result["epochs"]) == ("ok", 2)
    assert result["metrics"]["hp/val_acc"] == pytest.approx(s["acc/val"][-1][1], abs=1e-7)
    assert result["hparams"]["loss"] == "cee"
    assert result["hparams"]["train_size"] == 500
    assert 0 < result["seconds"] < 120
    # every epoch's metrics, as the curves have them
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2]
    for tag in ("acc/val", "loss/test", "ece/train"):
        assert [h[tag] for h in result["history"]] == pytest.approx([v for _, v in s[tag]]), tag


def test_the_resolved_config_is_what_the_run_trained_with(two_epoch_run):
    resolved = yaml.safe_load((two_epoch_run / ".hydra" / "resolved.yaml").read_text())
    assert resolved["data"]["seed"] == 0  # ${seed}, resolved
    assert resolved["data"]["data_dir"] == os.environ["LOSSLAB_DATA_DIR"]
    assert resolved["callbacks"]["model_checkpoint"]["dirpath"].endswith("two_epoch/checkpoints")
    composed = (two_epoch_run / ".hydra" / "config.yaml").read_text()
    assert "${seed}" in composed  # Hydra's own file keeps the interpolations


def test_calibration_tags_equal_an_independent_computation_on_the_checkpoint(
    two_epoch_run, data_dir
):
    x, y = split_tensors(data_dir, "test")
    with torch.no_grad():
        logits = load_module(two_epoch_run)(x)
    probs = logits.softmax(1)
    logged = {k: v[-1][1] for k, v in scalars(events(two_epoch_run)).items()}
    assert logged["acc/test"] == pytest.approx(
        (logits.argmax(1) == y).float().mean().item(), abs=1e-6
    )
    assert logged["nll/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    ece = multiclass_calibration_error(probs, y, num_classes=10, n_bins=15, norm="l1")
    assert logged["ece/test"] == pytest.approx(ece.item(), abs=1e-6)
    brier = (probs - F.one_hot(y, 10)).square().sum(1).mean()
    assert logged["brier/test"] == pytest.approx(brier.item(), rel=1e-5)
    # reliability.json: the diagram's bins of the same outputs, whose ECE is the logged one
    bins = json.loads((two_epoch_run / "reliability.json").read_text())["bins"]["test"]
    assert sum(bins["count"]) == len(y)
    gaps = [
        n * abs(a - c)
        for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
    ]
    assert sum(gaps) / len(y) == pytest.approx(ece.item(), abs=1e-6)


def test_train_log_holds_the_epoch_lines_and_the_summary(two_epoch_run):
    log = (two_epoch_run / "train.log").read_text()
    assert [
        line.split("|")[0].split() for line in log.splitlines() if line.startswith("epoch")
    ] == [
        ["epoch", "0"],
        ["epoch", "1"],
        ["epoch", "2"],
    ]
    assert "losslab: ok after 2 epochs" in log
    assert "max_epochs=2` reached" in log  # Lightning's own line, as the console showed it


def test_checkpoints_are_named_by_the_epochs_they_hold_as_the_console_counts(two_epoch_run):
    folder = two_epoch_run / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=2-step=10.ckpt", "last.ckpt"]
    assert (folder / "last.ckpt").is_symlink()  # written once an epoch, linked
    assert os.readlink(folder / "last.ckpt") == "epoch=2-step=10.ckpt"
    saved = torch.load(folder / "last.ckpt", weights_only=True)
    assert saved["losslab"]["history"][-1]["epoch"] == 2


def test_checkpoint_loads_weights_only_and_gives_the_logged_test_accuracy(two_epoch_run, data_dir):
    x, y = split_tensors(data_dir, "test")
    with torch.no_grad():
        acc = (load_module(two_epoch_run)(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(scalars(events(two_epoch_run))["acc/test"][-1][1], abs=1e-6)


def run_scalars(run_dir: Path) -> dict[str, list[float]]:
    s = scalars(events(run_dir))
    return {k: [v for _, v in vals] for k, vals in s.items() if k != "time/epoch"}


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(tmp_path, data_dir):
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        ok(
            train(
                *SMALL,
                "trainer.max_epochs=1",
                f"seed={seed}",
                f"hydra.run.dir={name}",
                cwd=tmp_path,
            )
        )
        runs.append(run_scalars(tmp_path / name))
    assert runs[0] == runs[1]  # bit for bit
    # another seed is another network: its untrained epoch 0 already differs
    assert runs[2]["loss/test"][0] != runs[0]["loss/test"][0]
    assert runs[2]["acc/train"][1] != runs[0]["acc/train"][1]


def test_the_threads_setting_reaches_torch_inside_the_run(tmp_path, data_dir):
    probe = tmp_path / "threads.txt"
    ok(
        train(
            *SMALL,
            "trainer.max_epochs=1",
            "threads=2",
            "+callbacks.probe._target_=probe_callback.ThreadsProbe",
            f"+callbacks.probe.file={probe}",
            "hydra.run.dir=r",
            cwd=tmp_path,
        )
    )
    assert probe.read_text() == "2"


def test_a_diverging_run_stops_after_its_first_epoch_with_its_own_status(tmp_path, data_dir):
    run_dir = tmp_path / "r"
    result = ok(
        train(*SMALL, "optimizer.lr=1e30", "trainer.max_epochs=3", "hydra.run.dir=r", cwd=tmp_path)
    )
    assert "losslab: diverged after 1 epochs" in result.stdout
    ea = events(run_dir)
    values, _ = hparams_of(ea)
    assert (values["status"], values["epochs"]) == ("diverged", 1)  # stopped, not 3 epochs
    steps = [s for s, _ in scalars(ea)["batch/loss"]]
    assert max(steps) < 5  # stopped at the first non-finite loss, not at the end of epoch 1
    assert json.loads((run_dir / "result.json").read_text())["status"] == "diverged"


def test_label_smoothing_shows_in_loss_and_not_in_nll(tmp_path, data_dir):
    run_dir = tmp_path / "r"
    ok(
        train(
            *SMALL,
            "trainer.max_epochs=1",
            "loss.label_smoothing=0.1",
            "hydra.run.dir=r",
            cwd=tmp_path,
        )
    )
    logged = {k: v[-1][1] for k, v in scalars(events(run_dir)).items()}
    x, y = split_tensors(data_dir, "test")
    logits = load_module(run_dir)(x).detach()
    assert logged["nll/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    smoothed = F.cross_entropy(logits, y, label_smoothing=0.1).item()
    assert logged["loss/test"] == pytest.approx(smoothed, rel=1e-5)
    assert logged["loss/test"] > logged["nll/test"]


def test_max_steps_mid_epoch_logs_a_last_point_that_matches_the_checkpoint(tmp_path, data_dir):
    # 500 images / batch 100 = 5 steps an epoch: max_steps=7 stops 2 steps into epoch 2
    run_dir = tmp_path / "r"
    ok(
        train(
            *SMALL, "trainer.max_epochs=3", "trainer.max_steps=7", "hydra.run.dir=r", cwd=tmp_path
        )
    )
    s = scalars(events(run_dir))
    assert [step for step, _ in s["acc/test"]] == [0, 1, 2]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 7
    assert ckpt["losslab"]["history"][-1]["step"] == 7
    assert (run_dir / "checkpoints" / "epoch=2-step=7.ckpt").is_file()  # stopped in epoch 2
    x, y = split_tensors(data_dir, "test")
    with torch.no_grad():
        acc = (load_module(run_dir)(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(s["acc/test"][-1][1], abs=1e-6)


def test_square_loss_on_logits_gets_the_raw_outputs(tmp_path, data_dir):
    """loss=sse_logits: 0.5 * sum_k (z_k - t_k)^2 of the raw logits z, no softmax anywhere."""
    ok(train(*SMALL, "loss=sse_logits", "trainer.max_epochs=1", "hydra.run.dir=r", cwd=tmp_path))
    x, y = split_tensors(data_dir, "test")
    with torch.no_grad():
        z = load_module(tmp_path / "r")(x)
    expected = 0.5 * (z - F.one_hot(y, 10)).square().sum(1).mean()
    logged = scalars(events(tmp_path / "r"))["loss/test"][-1][1]
    assert logged == pytest.approx(expected.item(), rel=1e-5)


def test_trainer_test_reports_the_test_metrics_of_the_module(data_dir):
    import lightning as L

    from losslab import CEELoss
    from losslab.models import MLP

    torch.manual_seed(0)
    net = MLP()
    module = Classifier(net, CEELoss(), optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    dm = MNISTDataModule(data_dir, download=False)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    (result,) = trainer.test(module, datamodule=dm, verbose=False)
    x, y = dm.splits["test"]  # raw images: the module scales them, standardised by default
    with torch.no_grad():
        logits = net.eval()(scale_pixels(x, normalize=True))
    assert result["acc/test"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert result["loss/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)


def test_a_run_that_measures_val_alone_logs_the_same_val_curve_and_nothing_else(
    two_epoch_run, tmp_path, data_dir
):
    """A study's tuning runs (``data.eval_splits=[val]``) measure what they choose on, nothing
    else: not a single test prediction. Evaluation draws no random numbers, so the val curve is
    the full run's, bit for bit."""
    args = (*SMALL, "trainer.max_epochs=2", "data.val_size=500", "data.eval_splits=[val]")
    ok(train(*args, "hydra.run.dir=r", cwd=tmp_path))
    s, full = scalars(events(tmp_path / "r")), scalars(events(two_epoch_run))
    assert s["acc/val"] == full["acc/val"]
    assert s["loss/val"] == full["loss/val"]
    assert not [tag for tag in s if tag.endswith(("/train", "/test"))]
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert (result["status"], result["epochs"]) == ("ok", 2)
    assert result["metrics"]["hp/val_acc"] == pytest.approx(full["acc/val"][-1][1], abs=1e-7)
    assert not [key for key in result["metrics"] if "test" in key]
    log = (tmp_path / "r" / "train.log").read_text()
    assert "val acc" in log
    assert "test acc" not in log
    assert "test nll" not in log

"""losslab-train end to end: event files, HPARAMS, checkpoints, configs, determinism, metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hp_metadata
from torchmetrics.functional.classification import multiclass_calibration_error

from losslab.data import MNISTDataModule
from losslab.models import MLP

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SPLIT_TAGS = ["loss", "acc", "nll", "brier", "ece"]
SMALL = ["data.train_size=500", "data.eval_batch_size=5000", "hydra.callbacks={}"]


def run_train(
    *overrides: str, cwd: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the real entry point (as a user would) and capture its output."""
    cmd = [sys.executable, "-m", "losslab.train", *overrides]
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), **(env or {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


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


def load_net(run_dir: Path, **mlp_kwargs) -> MLP:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    net = MLP(**mlp_kwargs)
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    )
    return net.eval()


def split_tensors(data_dir: Path, split: str, **dm_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    dm = MNISTDataModule(data_dir, download=False, **dm_kwargs)
    dm.setup()
    return dm.on_after_batch_transfer(dm.splits[split], 0)


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory, data_dir) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "r"
    res = run_train(*SMALL, "trainer.max_epochs=2", "data.val_size=500", f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr
    return run_dir


@pytest.mark.slow
def test_two_epoch_run_writes_every_curve_with_epoch_steps(two_epoch_run):
    s = scalars(events(two_epoch_run))
    for split in ("train", "val", "test"):
        for kind in SPLIT_TAGS:
            assert [step for step, _ in s[f"{kind}/{split}"]] == [0, 1, 2], (kind, split)
    assert [step for step, _ in s["time/epoch"]] == [1, 2]
    assert all(0 < v < 60 for _, v in s["time/epoch"])
    assert s["batch/loss"][0][0] == 1  # the first step, x = global step
    for (_, gap), (_, tr), (_, te) in zip(s["gap/acc"], s["acc/train"], s["acc/test"], strict=True):
        assert gap == pytest.approx(tr - te, abs=1e-6)
    # epoch 0 is the untrained model: near chance (10 classes); training improves it
    assert s["acc/test"][0][1] < 0.3 < s["acc/test"][2][1]
    # CEE on logits: the training loss is the plain cross-entropy, so loss/* == nll/*
    assert s["loss/test"][-1][1] == pytest.approx(s["nll/test"][-1][1], rel=1e-5)


@pytest.mark.slow
def test_event_file_has_the_layout_and_typed_hparams_with_val_first(two_epoch_run):
    ea = events(two_epoch_run)
    tensor = ea.Tensors("custom_scalars__config__")[0].tensor_proto
    assert b"Overfitting" in tensor.string_val[0]

    values, experiment = hparams_of(ea)
    assert values["loss"] == "cee"
    assert values["from_logits"] is True  # a boolean, not 1.0
    assert (values["train_size"], values["val_size"], values["epochs"]) == (500, 500, 2)
    assert values["status"] == "ok"
    infos = {h.name: h for h in experiment.hparam_infos}
    assert infos["from_logits"].type == api_pb2.DATA_TYPE_BOOL
    assert {v.string_value for v in infos["loss"].domain_discrete.values} >= {
        "cee",
        "sse",
        "sse_logits",
    }
    # a single run: loss, lr, batch_size are the columns TensorBoard shows first
    assert [h.name for h in experiment.hparam_infos if h.differs] == ["loss", "lr", "batch_size"]
    metric_tags = [m.name.tag for m in experiment.metric_infos]
    assert metric_tags[:2] == ["hp/val_acc", "hp/test_acc"]  # chosen on val, test reported
    assert {"hp/test_ece", "hp/test_nll", "hp/test_brier", "hp/best_val_acc"} <= set(metric_tags)
    s = scalars(ea)
    assert s["hp/val_acc"][-1][1] == pytest.approx(s["acc/val"][-1][1])
    assert s["hp/test_ece"][-1][1] == pytest.approx(s["ece/test"][-1][1])
    assert s["hp/best_val_acc"][-1][1] == pytest.approx(max(v for _, v in s["acc/val"]))
    assert "hp_metric" not in s
    assert yaml.safe_load((two_epoch_run / "hparams.yaml").read_text())["loss"] == "cee"


@pytest.mark.slow
def test_calibration_tags_equal_an_independent_computation_on_the_checkpoint(
    two_epoch_run, data_dir
):
    net = load_net(two_epoch_run)
    x, y = split_tensors(data_dir, "test")
    with torch.no_grad():
        logits = net(x)
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_and_another_seed_does_not(tmp_path, data_dir):
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        res = run_train(
            *SMALL, "trainer.max_epochs=1", f"seed={seed}", f"hydra.run.dir={tmp_path / name}"
        )
        assert res.returncode == 0, res.stderr
        s = scalars(events(tmp_path / name))
        runs.append({k: [v for _, v in vals] for k, vals in s.items() if k != "time/epoch"})
    assert runs[0] == runs[1]  # bit for bit
    # another seed is another network: its untrained epoch 0 already differs
    assert runs[2]["loss/test"][0] != runs[0]["loss/test"][0]
    assert runs[2]["acc/train"][1] != runs[0]["acc/train"][1]


@pytest.mark.slow
def test_the_threads_setting_reaches_torch_inside_the_run(tmp_path, data_dir):
    probe = tmp_path / "threads.txt"
    res = run_train(
        *SMALL,
        "trainer.max_epochs=1",
        "threads=2",
        "+callbacks.probe._target_=probe_callback.ThreadsProbe",
        f"+callbacks.probe.file={probe}",
        f"hydra.run.dir={tmp_path / 'r'}",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr
    assert probe.read_text() == "2"


@pytest.mark.slow
def test_a_diverging_run_stops_after_its_first_epoch_with_its_own_status(tmp_path, data_dir):
    run_dir = tmp_path / "r"
    res = run_train(*SMALL, "optimizer.lr=1e30", "trainer.max_epochs=3", f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr
    assert "losslab: diverged after 1 epochs" in res.stdout
    ea = events(run_dir)
    values, _ = hparams_of(ea)
    assert (values["status"], values["epochs"]) == ("diverged", 1)  # stopped, not 3 epochs
    steps = [s for s, _ in scalars(ea)["batch/loss"]]
    assert max(steps) < 5  # stopped at the first non-finite loss, not at the end of epoch 1


@pytest.mark.slow
def test_label_smoothing_shows_in_loss_and_not_in_nll(tmp_path, data_dir):
    run_dir = tmp_path / "r"
    res = run_train(
        *SMALL, "trainer.max_epochs=1", "loss.label_smoothing=0.1", f"hydra.run.dir={run_dir}"
    )
    assert res.returncode == 0, res.stderr
    logged = {k: v[-1][1] for k, v in scalars(events(run_dir)).items()}
    logits = load_net(run_dir)(split_tensors(data_dir, "test")[0]).detach()
    y = split_tensors(data_dir, "test")[1]
    assert logged["nll/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    smoothed = F.cross_entropy(logits, y, label_smoothing=0.1).item()
    assert logged["loss/test"] == pytest.approx(smoothed, rel=1e-5)
    assert logged["loss/test"] > logged["nll/test"]


@pytest.mark.slow
def test_max_steps_mid_epoch_logs_a_last_point_that_matches_the_checkpoint(tmp_path, data_dir):
    # 500 images / batch 100 = 5 steps an epoch: max_steps=7 stops 2 steps into epoch 2
    run_dir = tmp_path / "r"
    res = run_train(
        *SMALL, "trainer.max_epochs=3", "trainer.max_steps=7", f"hydra.run.dir={run_dir}"
    )
    assert res.returncode == 0, res.stderr
    s = scalars(events(run_dir))
    assert [step for step, _ in s["acc/test"]] == [0, 1, 2]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 7
    assert ckpt["losslab"]["history"][-1]["step"] == 7
    x, y = split_tensors(data_dir, "test")
    with torch.no_grad():
        acc = (load_net(run_dir)(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(s["acc/test"][-1][1], abs=1e-6)


@pytest.mark.slow
def test_checkpoint_loads_weights_only_and_gives_the_logged_test_accuracy(two_epoch_run, data_dir):
    x, y = split_tensors(data_dir, "test")
    with torch.no_grad():
        acc = (load_net(two_epoch_run)(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(scalars(events(two_epoch_run))["acc/test"][-1][1], abs=1e-6)


# -- configs ------------------------------------------------------------------------------------


def _config_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_train(overrides: list[str]):
    """The task config as losslab-train composes it (schemas registered, range checks run)."""
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
    return cfg


def _leaves(node, prefix=""):
    """``dotted.key -> value`` of every leaf of a plain dict (the experiment file's keys)."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize(
    "overrides",
    [
        [f"{group}={name}"]
        for group in ("data", "model", "loss", "optimizer", "trainer")
        for name in _config_names(group)
    ],
)
def test_every_group_config_composes_and_takes_effect(overrides):
    cfg = compose_train(overrides)
    group, name = overrides[0].split("=")
    own = {
        k: v
        for k, v in yaml.safe_load((CONF / group / f"{name}.yaml").read_text()).items()
        if k != "defaults"
    }
    for key, value in own.items():
        if isinstance(value, str) and value.startswith("${"):
            continue  # an interpolation (resolved against the environment)
        assert cfg[group][key] == value, (group, key)


@pytest.mark.parametrize("name", _config_names("experiment"))
def test_every_experiment_sets_every_key_it_names(name, tmp_path):
    """Top-level keys (task_name, seed, ...) included: the experiment wins over train.yaml."""
    from omegaconf import OmegaConf

    overrides = [f"experiment={name}"]
    if name == "study_final":  # its lr comes from the tuning stage's choices.yaml
        (tmp_path / "tune").mkdir()
        (tmp_path / "tune" / "choices.yaml").write_text("cee:\n  100:\n    lr: 0.3\n")
        overrides.append(f"hydra.sweep.dir={tmp_path / 'final'}")
    cfg = compose_train(overrides)
    if name == "study_final":
        assert cfg.optimizer.lr == 0.3
    spec = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text())
    checked = 0
    for key, value in _leaves({k: v for k, v in spec.items() if k not in ("defaults", "hydra")}):
        if isinstance(value, str) and "${" in value:
            continue
        assert OmegaConf.select(cfg, key) == value, key
        checked += 1
    assert checked >= 2
    assert "task_name" in spec  # every experiment names its own log folder


def test_the_command_line_wins_over_an_experiment():
    cfg = compose_train(["experiment=overfit", "task_name=mine", "optimizer.lr=0.5"])
    assert (cfg.task_name, cfg.optimizer.lr, cfg.data.train_size) == ("mine", 0.5, 300)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=sse", "loss.input=probabilities"], "softmax twice"),
        (["loss=cee", "loss.from_logits=false", "loss.input=logits"], "log of raw outputs"),
        (["trainer.steps_per_call=0"], "trainer.steps_per_call"),
    ],
)
def test_contradictory_loss_and_trainer_settings_are_refused_by_name(overrides, message):
    from losslab.config import UsageError

    with pytest.raises(UsageError, match=message):
        compose_train(overrides)


def test_square_loss_on_logits_gets_the_raw_outputs():
    """loss=sse_logits: 0.5 * sum_k (z_k - t_k)^2 of the raw logits z, no softmax anywhere."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from losslab.module import Classifier

    cfg = compose_train(["loss=sse_logits"])
    kwargs = OmegaConf.to_container(cfg.loss)
    loss_input = kwargs.pop("input")
    module = Classifier(MLP(), instantiate(kwargs), optimizer=lambda p: None, loss_input=loss_input)
    z, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    expected = 0.5 * (z - F.one_hot(y, 10)).square().sum() / 8
    assert module._loss(z, y).item() == pytest.approx(expected.item(), rel=1e-6)


def test_trainer_test_reports_the_test_metrics_of_the_module(data_dir):
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
        logits = net.eval()(x)
    assert result["acc/test"] == pytest.approx(
        (logits.argmax(1) == y).float().mean().item(), abs=1e-6
    )
    assert result["nll/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)

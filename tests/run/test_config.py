"""The config tree, composed in this process: every group's configs and every experiment take
effect, the command line wins, the YAML values the code relies on reach it (the seed reaches the
data split), the usual groups (scheduler, debug, csv logger, paths) compose and train, and
``--help`` lists the groups a user chooses from."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import TINY, compose_train, ok, train
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from losslab.errors import UsageError

CONF = Path(__file__).resolve().parents[2] / "conf"
USER_GROUPS = ("data", "model", "loss", "optimizer", "scheduler", "trainer", "logger", "callbacks",
               "paths", "debug", "experiment")  # fmt: skip


def config_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def leaves(node, prefix=""):
    """``dotted.key -> value`` of every leaf of a plain dict (a config file's keys)."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize(
    "overrides",
    [
        [f"{g}={n}"]
        for g in ("data", "model", "loss", "optimizer", "trainer")
        for n in config_names(g)
    ],
)
def test_every_group_config_composes_and_takes_effect(overrides):
    import torch

    gpu_missing = overrides == ["trainer=gpu"] and not torch.cuda.is_available()
    if gpu_missing:
        with pytest.raises(UsageError, match="needs a CUDA GPU"):
            compose_train(overrides)
    cfg = compose_train(overrides, checked=not gpu_missing)
    group, name = overrides[0].split("=")
    text = (CONF / group / f"{name}.yaml").read_text()
    own = yaml.safe_load(text)
    # a config in the global package (loss=sse_logits also sets classifier.loss_input) names
    # its keys from the root
    node = cfg if "# @package _global_" in text else cfg[group]
    checked = 0
    for key, value in leaves({k: v for k, v in own.items() if k != "defaults"}):
        if isinstance(value, str) and value.startswith("${"):
            continue  # an interpolation (resolved against the environment)
        assert OmegaConf.select(node, key) == value, (group, key)
        checked += 1
    assert checked or group == "data" or own.keys() <= {"defaults"}, (group, name)


def test_the_square_loss_on_logits_is_sse_fed_the_raw_outputs():
    cfg = compose_train(["loss=sse_logits"])
    assert cfg.loss._target_ == "losslab.losses.SSELoss"
    assert cfg.loss.from_logits is False
    assert cfg.classifier.loss_input == "logits"
    assert compose_train(["loss=sse"]).classifier.loss_input == "auto"


@pytest.mark.parametrize("name", config_names("experiment"))
def test_every_experiment_sets_every_key_it_names(name, tmp_path):
    """Top-level keys (task_name, seed, ...) included: the experiment wins over train.yaml."""
    overrides = [f"experiment={name}"]
    # a final stage's lr comes from the tuning stage's candidates, the fixed arm's from the final
    # stage's selection at the clean rate
    (tmp_path / "tune").mkdir()
    (tmp_path / "tune" / "candidates.yaml").write_text(
        "cee:\n  100:\n    lrs: [0.3, 0.1]\n  0.0:\n    lrs: [0.2, 0.02]\n"
    )
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "selection.yaml").write_text(
        "clean: 0.0\nchoices:\n  cee:\n    0.0:\n      0:\n        test_acc: {lr: 0.05}\n"
    )
    if name.endswith(("_final", "_fixed")):
        overrides.append(f"hydra.sweep.dir={tmp_path / name.split('_')[1]}")
    cfg = compose_train(overrides)
    if name.endswith("_final"):
        assert cfg.optimizer.lr == (0.3 if name == "study_final" else 0.2)  # rank 0: the best
        assert compose_train([*overrides, "study.lr_rank=1"]).optimizer.lr == (
            0.1 if name == "study_final" else 0.02
        )
    if name == "noise_fixed":
        assert cfg.optimizer.lr == 0.05  # seed 0's lr at p = 0, whatever p this run has
    spec = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text())
    checked = 0
    for key, value in leaves({k: v for k, v in spec.items() if k not in ("defaults", "hydra")}):
        if isinstance(value, str) and "${" in value:
            continue
        assert OmegaConf.select(cfg, key) == value, key
        checked += 1
    assert checked >= 2
    assert "task_name" in spec  # every experiment names its own log folder


def test_the_command_line_wins_over_an_experiment():
    cfg = compose_train(["experiment=overfit", "task_name=mine", "optimizer.lr=0.5"])
    assert (cfg.task_name, cfg.optimizer.lr, cfg.data.train_size) == ("mine", 0.5, 300)


def test_the_seed_reaches_the_data_split_and_the_label_noise_keys_the_data_module():
    cfg = compose_train(["seed=7", "data.label_noise=0.2", "data.noise_seed=3"])
    assert OmegaConf.to_container(cfg.data, resolve=True)["seed"] == 7
    from losslab.run.build import parts

    datamodule, _ = parts(cfg)
    assert (datamodule.seed, datamodule.label_noise, datamodule.noise_seed) == (7, 0.2, 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=sse", "classifier.loss_input=probabilities"], "softmax twice"),
        (
            ["loss=cee", "loss.from_logits=false", "classifier.loss_input=logits"],
            "log of raw outputs",
        ),
        (["classifier.loss_input=raw"], "^classifier.loss_input must be one of"),
        (["classifier.scheduler_interval=batch"], "^classifier.scheduler_interval must be"),
        (["trainer.steps_per_call=0"], "trainer.steps_per_call"),
        (
            ["trainer.steps_per_call=10", "trainer.gradient_clip_val=1.0"],
            "^trainer.steps_per_call=10 cannot be combined with trainer.gradient_clip_val=1.0: ",
        ),
        (["scheduler=step", "scheduler.gamma=2"], "scheduler.gamma"),
        (["experiment=study_tune", "data.val_size=0"], "data.val_size=0"),
    ],
)
def test_contradictory_settings_are_refused_by_name(overrides, message):
    with pytest.raises(UsageError, match=message):
        compose_train(overrides)


# -- the usual groups -------------------------------------------------------------------------


def test_the_schedulers_compose_and_step_each_epoch_unless_the_classifier_says():
    step = compose_train(["scheduler=step"])
    assert (step.scheduler.step_size, step.scheduler.gamma, step.classifier.scheduler_interval) == (
        2,
        0.5,
        "epoch",
    )
    assert "interval" not in step.scheduler  # the scheduler's keys are its constructor's
    every_step = compose_train(["scheduler=step", "classifier.scheduler_interval=step"])
    assert every_step.classifier.scheduler_interval == "step"
    cosine = compose_train(["scheduler=cosine", "trainer.max_epochs=7"])
    assert OmegaConf.to_container(cosine.scheduler, resolve=True)["T_max"] == 7  # the whole run
    assert compose_train([]).scheduler is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [("step", [0.1, 0.1, 0.1, 0.05]), ("cosine", [0.1, 0.1, 0.075, 0.025])],
)
def test_a_scheduler_trains_and_the_lr_is_logged_each_epoch(
    tmp_path, data_dir, scheduler, expected
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ok(
        train(
            *TINY, f"scheduler={scheduler}", "trainer.max_epochs=3", "hydra.run.dir=r", cwd=tmp_path
        )
    )
    events = EventAccumulator(str(tmp_path / "r"))
    events.Reload()
    lrs = [e.value for e in events.Scalars("lr")]
    assert lrs == pytest.approx(
        expected
    )  # epoch 0: the initial lr; epoch n: the lr it trained with


@pytest.mark.slow
def test_debug_fast_runs_one_batch_of_each_and_writes_no_checkpoint(tmp_path, data_dir):
    res = ok(train("debug=fast", "hydra.run.dir=r", cwd=tmp_path))
    assert "losslab: ok" in res.stdout
    assert not (tmp_path / "r" / "checkpoints").exists()


@pytest.mark.slow
def test_debug_overfit_drives_the_training_loss_of_a_few_batches_down(tmp_path, data_dir):
    import json

    ok(train("debug=overfit", "trainer.max_epochs=10", "hydra.run.dir=r", cwd=tmp_path))
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["status"] == "ok"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "r"), size_guidance={"scalars": 0})
    events.Reload()
    loss = [e.value for e in events.Scalars("loss/train")]
    assert loss[-1] < loss[0] / 4  # the 3 batches are being memorised


@pytest.mark.slow
def test_debug_limit_trains_a_tenth_of_the_batches(tmp_path, data_dir):
    import torch

    ok(train("debug=limit", "trainer.max_epochs=1", "hydra.run.dir=r", cwd=tmp_path))
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 60  # 600 batches of 100, 10% of them


@pytest.mark.slow
@pytest.mark.parametrize("logger", ["csv", "[tensorboard,csv]"])
def test_the_csv_logger_alone_or_beside_tensorboard(tmp_path, data_dir, logger):
    import csv

    ok(train(*TINY, f"logger={logger}", "hydra.run.dir=r", cwd=tmp_path))
    with (tmp_path / "r" / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    epochs = [r for r in rows if r.get("acc/test")]
    assert [int(r["step"]) for r in epochs] == [0, 1]
    assert bool(list((tmp_path / "r").glob("events.out.tfevents.*"))) == ("tensorboard" in logger)


@pytest.mark.slow
def test_paths_log_dir_from_the_environment_or_the_command_line(tmp_path, data_dir):
    ok(train(*TINY, cwd=tmp_path, env={"LOSSLAB_LOG_DIR": str(tmp_path / "elsewhere")}))
    assert len(list((tmp_path / "elsewhere" / "train" / "runs").iterdir())) == 1
    ok(train(*TINY, "paths.log_dir=mine", cwd=tmp_path))
    assert len(list((tmp_path / "mine" / "train" / "runs").iterdir())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "mine"]


def test_help_lists_the_groups_a_user_chooses_from_and_no_internal_one(tmp_path):
    res = train("--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "losslab-train" in text
    assert "powered by Hydra" not in text
    assert "schema" not in text
    for group in USER_GROUPS:
        assert f"\n  {group}:" in text, group  # one line per group, with its choices
    for name in config_names("loss") + config_names("scheduler") + config_names("debug"):
        assert name in text
    assert list(tmp_path.iterdir()) == []


def test_the_yaml_values_the_code_relies_on():
    """Values the code depends on without checking them itself: change one, and this fails."""
    cfg = compose_train([])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    trainer = resolved["trainer"]
    assert trainer["num_sanity_val_steps"] == -1  # the full sanity pass is epoch 0 of the curves
    assert trainer["use_distributed_sampler"] is False  # the data module shards its batches
    # auto: the K = 10 docs/performance.md measures, 1 where it is not exact
    assert trainer["steps_per_call"] == "auto"
    assert trainer["_target_"] == "losslab.lit.trainer.Trainer"  # what knows steps_per_call
    assert trainer["max_time"] is None
    assert trainer["deterministic"] is True  # same seed, same numbers
    checkpoint = resolved["callbacks"]["model_checkpoint"]
    assert checkpoint["_target_"] == "losslab.run.callbacks.EpochCheckpoint"
    assert (checkpoint["save_last"], checkpoint["save_top_k"]) == ("link", 1)  # one write an epoch
    assert (checkpoint["monitor"], checkpoint["mode"]) == (None, None)  # the most recent epoch
    assert resolved["classifier"] == {
        "normalize": True,  # standardised pixels
        "loss_input": "auto",
        "scheduler_interval": "epoch",
    }
    assert (resolved["verbose"], resolved["study"]) == (False, {"stage": None, "lr_rank": 0})
    assert "normalize" not in resolved["data"]
    assert "input" not in resolved["loss"]
    assert checkpoint["dirpath"] == "/tmp/losslab-compose-test/checkpoints"  # rundir's layout
    tensorboard = resolved["logger"]["tensorboard"]
    assert (tensorboard["save_dir"], tensorboard["name"], tensorboard["version"]) == (
        "/tmp/losslab-compose-test",
        "",
        "",
    )  # event files in the run folder itself: TensorBoard names runs by their folders
    assert resolved["data"]["seed"] == resolved["seed"]
    for debug in ("fast", "overfit"):  # they leave it at auto: 1 for Lightning's own step
        assert compose_train([f"debug={debug}"]).trainer.steps_per_call == "auto"
    ddp = compose_train(["trainer=ddp", "trainer.accelerator=cpu"], checked=False).trainer
    assert ddp.steps_per_call == "auto"  # 1: two processes need Lightning's own step
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        hydra = compose(config_name="train", return_hydra_config=True).hydra
    assert hydra.job.chdir is False  # runs write where hydra.run.dir says, relative paths stay
    assert hydra.output_subdir is None  # losslab writes .hydra/ itself, after every check
    assert hydra.sweeper._target_ == "hydra_plugins.losslab_sweeper.LosslabSweeper"
    assert hydra.sweeper.retrain is False
    # a refused single run takes away the folders Hydra made for it
    assert hydra.callbacks.new_folders._target_ == "losslab.train.NewFolders"


# -- the schemas' ranges, at their edges ----------------------------------------------------------

# (schema, key, values on the edge that pass, values just past it, what the message allows)
RANGES = [
    ("SGDConfig", "lr", [1e-12], [0, -1.0], "> 0"),
    ("SGDConfig", "momentum", [0, 0.99], [1, -0.1], "in [0, 1)"),
    ("SGDConfig", "weight_decay", [0], [-1e-9], ">= 0"),
    ("AdamConfig", "lr", [1e-12], [0], "> 0"),
    ("AdamConfig", "betas", [[0, 0.5], [0.5, 0.999]], [[1, 0.5], [0.5, -0.1], [0.9], [0.9, 0.9, 0.9]],
     "two numbers in [0, 1)"),
    ("AdamConfig", "eps", [1e-30], [0], "> 0"),
    ("AdamConfig", "weight_decay", [0], [-1], ">= 0"),
    ("StepLRConfig", "step_size", [1], [0], ">= 1"),
    ("StepLRConfig", "gamma", [1, 1e-6], [0, 1.5], "in (0, 1]"),
    ("CosineConfig", "T_max", [1], [0], ">= 1"),
    ("CosineConfig", "eta_min", [0], [-1e-9], ">= 0"),
    ("TrainerConfig", "steps_per_call", ["auto", 1, 10], [], ""),
    ("TrainerConfig", "accumulate_grad_batches", [1], [0], ">= 1"),
    ("TrainerConfig", "max_epochs", [1], [0, -1, -2],
     "a positive integer, or -1 (no limit) together with trainer.max_steps or trainer.max_time"),
    ("TrainerConfig", "max_steps", [-1, 1], [0, -2], "-1 or > 0"),
    ("TrainerConfig", "log_every_n_steps", [1], [0], "> 0"),
    ("TrainerConfig", "num_nodes", [1], [0], "> 0"),
    ("TrainerConfig", "devices", ["auto", -1, 1, [0, 1]], [0, -2, "cpu"],
     "a positive integer, a list of device ids, -1 or 'auto'"),
    ("TrainConfig", "seed", [0, 2**32 - 1], [-1, 2**32], "in [0, 2**32)"),
    ("TrainConfig", "threads", [1], [0], ">= 1"),
    ("StudyConfig", "stage", [None, "tune", "final", "fixed"], ["verdict", "Tune"],
     "null or one of tune, final, fixed"),
    ("StudyConfig", "lr_rank", [0, 3], [-1], ">= 0"),
]  # fmt: skip
PREFIX = {"SGDConfig": "optimizer", "AdamConfig": "optimizer", "StepLRConfig": "scheduler",
          "CosineConfig": "scheduler", "TrainerConfig": "trainer", "TrainConfig": None,
          "StudyConfig": "study"}  # fmt: skip


@pytest.mark.parametrize(("schema", "key", "good", "bad", "allowed"), RANGES)
def test_each_schema_accepts_the_edge_of_its_range_and_refuses_just_past_it_by_name(
    schema, key, good, bad, allowed
):
    from losslab.run import config

    cls = getattr(config, schema)
    for value in good:
        assert getattr(cls(**{key: value}), key) == value
    name = f"{PREFIX[schema]}.{key}" if PREFIX[schema] else key
    for value in bad:
        with pytest.raises(UsageError) as refused:
            cls(**{key: value})
        assert str(refused.value) == f"{name}={value!r} is out of range: {name} must be {allowed}"


@pytest.mark.parametrize("value", [0, -1, True, "all", 2.5])
def test_steps_per_call_is_auto_or_a_positive_integer_by_name(value):
    from losslab.run.config import TrainerConfig

    with pytest.raises(UsageError) as refused:
        TrainerConfig(steps_per_call=value)
    assert str(refused.value) == (
        f"trainer.steps_per_call must be 'auto' or a positive integer, got {value!r}"
    )


@pytest.mark.parametrize(
    ("limit", "allowed"),
    [({"max_steps": 100}, True), ({"max_time": "00:00:10:00"}, True),
     ({"max_time": {"minutes": 5}}, True), ({}, False), ({"max_steps": -1}, False)],
)  # fmt: skip
def test_max_epochs_minus_1_needs_another_limit(limit, allowed):
    from losslab.run.config import TrainerConfig

    if allowed:
        assert TrainerConfig(max_epochs=-1, **limit).max_epochs == -1
        with pytest.raises(UsageError, match=r"^trainer\.max_epochs=-2 is out of range"):
            TrainerConfig(max_epochs=-2, **limit)
        return
    with pytest.raises(UsageError, match=r"^trainer\.max_epochs=-1 is out of range: .* together "
                       r"with trainer\.max_steps or trainer\.max_time$"):  # fmt: skip
        TrainerConfig(max_epochs=-1, **limit)


def test_a_study_node_holds_the_stage_and_the_lr_rank():
    cfg = compose_train(["experiment=study_tune"])
    assert (cfg.study.stage, cfg.study.lr_rank) == ("tune", 0)
    assert compose_train([]).study.stage is None  # no study


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"gradient_clip_val": 1.0}, "trainer.gradient_clip_val=1.0"),
        ({"accumulate_grad_batches": 2}, "trainer.accumulate_grad_batches=2"),
        ({"precision": "16-mixed"}, "trainer.precision=16-mixed"),
        ({"overfit_batches": 0.1}, "trainer.overfit_batches=0.1"),
        ({"fast_dev_run": True}, "trainer.fast_dev_run=True"),
        ({"num_nodes": 2}, "trainer.devices=2 processes"),
        ({"devices": 2}, "trainer.devices=2 processes"),
        ({"devices": [0, 1]}, "trainer.devices=2 processes"),
        ({"strategy": "ddp", "devices": 2, "num_nodes": 2}, "trainer.devices=4 processes"),
    ],
)
def test_several_steps_per_call_refuse_what_only_lightnings_loop_does(settings, named):
    from losslab.run.config import TrainerConfig

    with pytest.raises(UsageError) as refused:
        TrainerConfig(steps_per_call=2, **settings)  # the fewest steps that are several
    assert str(refused.value) == (
        f"trainer.steps_per_call=2 cannot be combined with {named}: several optimizer steps per "
        f"call need one process, 32-bit precision, no gradient clipping, accumulation, "
        f"overfit_batches or fast_dev_run; leave steps_per_call at auto (it is then 1) or set it "
        f"to 1"
    )
    TrainerConfig(steps_per_call=1, **settings)  # one step per call: Lightning's loop does it
    TrainerConfig(steps_per_call="auto", **settings)  # auto: then 1


@pytest.mark.parametrize(
    ("candidates", "says"),
    [
        (None, "optimizer.lr: no tuning candidates at TUNE/candidates.yaml: run the study's stage "
               "1 first"),
        ("cee:\n  32:\n    lrs: [0.3]\n  64:\n    lrs: [0.1]\nsse:\n  100:\n    lrs: [1.0]\n",
         "optimizer.lr: TUNE/candidates.yaml holds no lr for loss=cee at 100 (it has: cee: [32, "
         "64], sse: [100])"),
    ],
)  # fmt: skip
def test_a_final_stage_without_its_candidate_lrs_is_refused_naming_what_the_file_holds(
    tmp_path, candidates, says
):
    from omegaconf.errors import InterpolationResolutionError

    tune = tmp_path / "tune"
    tune.mkdir()
    if candidates is not None:
        (tune / "candidates.yaml").write_text(candidates)
    with pytest.raises(InterpolationResolutionError) as refused:  # OmegaConf wraps our UsageError
        compose_train(["experiment=study_final", f"hydra.sweep.dir={tmp_path / 'final'}"])
    assert says.replace("TUNE", str(tune)) in str(refused.value)


@pytest.mark.parametrize(
    "settings",
    [{}, {"gradient_clip_val": 0}, {"precision": "32"}, {"precision": 32}, {"devices": [3]},
     {"strategy": "single_device"}, {"overfit_batches": 0}, {"fast_dev_run": False},
     {"strategy": "ddp"},  # on one device: one process
     {"devices": "auto"}],  # auto: decided at run time
)  # fmt: skip
def test_several_steps_per_call_run_on_one_device_in_32_bit(settings):
    from losslab.run.config import TrainerConfig

    assert TrainerConfig(steps_per_call=3, **settings).steps_per_call == 3


def test_register_stores_each_schema_where_the_configs_name_it_and_both_resolvers(tmp_path):
    """``register()`` into an empty ConfigStore: each schema under the path the YAML defaults
    lists name (``/schema/loss/sse``, ...), nothing else, and the two resolvers, which call
    losslab's own functions (registered even when an older, other resolver is gone)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf.basecontainer import BaseContainer

    from losslab.run import config

    def stored(repo: dict, prefix: str = "") -> dict[str, type]:
        found = {}
        for key, value in repo.items():
            if isinstance(value, dict):
                found.update(stored(value, f"{prefix}{key}/"))
            else:
                found[prefix + key.removesuffix(".yaml")] = OmegaConf.get_type(value.node)
        return found

    cs = ConfigStore.instance()
    repo, resolvers = cs.repo, dict(BaseContainer._resolvers)
    try:
        cs.repo = {}
        for name in ("losslab_candidate_lr", "losslab_fixed_lr", "losslab_groups"):
            OmegaConf.clear_resolver(name)
        config.register()
        assert stored(cs.repo) == {
            "train_schema": config.TrainConfig,
            "schema/data": config.DataConfig,
            "schema/model": config.ModelConfig,
            "schema/trainer": config.TrainerConfig,
            "schema/paths": config.PathsConfig,
            "schema/loss/sse": config.SSEConfig,
            "schema/loss/cee": config.CEEConfig,
            "schema/loss/mae": config.MAEConfig,
            "schema/optimizer/sgd": config.SGDConfig,
            "schema/optimizer/adam": config.AdamConfig,
            "schema/scheduler/step": config.StepLRConfig,
            "schema/scheduler/cosine": config.CosineConfig,
        }
        (tmp_path / "candidates.yaml").write_text("sse:\n  50:\n    lrs: [0.3, 1.0]\n")
        (tmp_path / "selection.yaml").write_text(
            "clean: 0\nchoices:\n  sse:\n    0:\n      4:\n        test_acc: {lr: 3.0}\n"
        )
        node = OmegaConf.create(
            {
                "lr": f"${{losslab_candidate_lr:sse,50,1,{tmp_path}/candidates.yaml}}",
                "fixed": f"${{losslab_fixed_lr:sse,4,{tmp_path}/selection.yaml}}",
                "help": "${losslab_groups:}",
            }
        )
        assert (node.lr, node.fixed) == (1.0, 3.0)
        assert node.help == config._groups_help()
        assert "  loss: cee, mae, sse" in node.help
    finally:
        cs.repo = repo
        BaseContainer._resolvers.clear()
        BaseContainer._resolvers.update(resolvers)

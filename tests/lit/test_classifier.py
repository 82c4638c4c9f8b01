"""The Classifier, in process and fast: every epoch metric against an independent computation
(torch's functions, torchmetrics' functional API), the HPARAMS metrics chosen by validation, the
divergence stop (a non-finite batch loss, a non-finite epoch metric), what the loss is fed, the
input preprocessing it owns (raw pixels scaled bit for bit as the data module used to), and
checkpoints that rebuild the module alone from plain configs and classify raw images."""

from __future__ import annotations

import functools
import math
import re
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import multiclass_calibration_error

from losslab import CEELoss, SSELoss
from losslab.errors import UsageError
from losslab.lit.classifier import Classifier, scale_pixels
from losslab.lit.data import MNISTDataModule
from losslab.lit.metrics import objective
from losslab.lit.spec import make, target
from losslab.lit.trainer import Trainer
from losslab.models import MLP
from losslab.names import PIXEL_MEAN, PIXEL_STD
from losslab.run.checkpoints import read_checkpoint


def classifier(loss=None, net=None, **kwargs) -> Classifier:
    """A Classifier whose net is the identity by default and that only casts float inputs
    (``normalize=False``: floats in [0, 1] are multiplied by 1): its inputs are its logits."""
    kwargs.setdefault("normalize", False)
    return Classifier(net or nn.Identity(), loss or CEELoss(), optimizer=lambda p: None, **kwargs)


def old_scale(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    """What MNISTDataModule.scale did to a batch before the module took the preprocessing over
    (the formula as it was, with MNIST's mean and std written out)."""
    x = x.to(torch.float32, copy=True)
    if normalize:
        return x.mul_(1.0 / (255.0 * 0.3081)).sub_(0.1307 / 0.3081)
    return x.mul_(1.0 / 255.0)


@pytest.fixture
def outputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(300, 10) * 3, torch.randint(0, 10, (300,))


# -- epoch metrics ------------------------------------------------------------------------------


def test_epoch_metrics_equal_independent_computations(outputs):
    logits, y = outputs
    module = classifier()
    for part in torch.arange(300).split(70):  # batches of unequal size: weights matter
        module._update_metrics("test", logits[part], y[part])
    values = {k: v.item() for k, v in module._compute("test").items()}
    probs = logits.softmax(1)
    assert values["loss/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert values["nll/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert values["acc/test"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    brier = (probs - F.one_hot(y, 10)).square().sum(1).mean().item()
    assert values["brier/test"] == pytest.approx(brier, rel=1e-5)
    ece = multiclass_calibration_error(probs, y, num_classes=10, n_bins=15, norm="l1").item()
    assert values["ece/test"] == pytest.approx(ece, abs=1e-6)
    bins = module.reliability["test"]
    assert sum(bins["count"]) == 300
    gaps = sum(
        n * abs(a - c)
        for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
    )
    assert gaps / 300 == pytest.approx(ece, abs=1e-6)
    # reset after compute: the next epoch starts from nothing
    module._update_metrics("test", logits[:10], y[:10])
    assert module._compute("test")["acc/test"].item() == pytest.approx(
        (logits[:10].argmax(1) == y[:10]).float().mean().item()
    )


@pytest.mark.parametrize("normalize", [True, False])
def test_update_metrics_takes_raw_images_scales_them_and_runs_the_net(normalize):
    torch.manual_seed(0)
    net = MLP(hidden=(8,))
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (40,))
    module = classifier(net=net, normalize=normalize)
    module._update_metrics("val", x, y)
    by_inputs = module._compute("val")
    reference = classifier()  # identity net: fed the logits themselves
    with torch.no_grad():
        reference._update_metrics("val", net(old_scale(x, normalize)), y)
    expected = reference._compute("val")
    assert {k: v.item() for k, v in by_inputs.items()} == {k: v.item() for k, v in expected.items()}


# -- the input preprocessing the module owns ----------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
def test_scale_pixels_is_the_data_modules_old_scaling_bit_for_bit(normalize):
    """Every uint8 value, and a batch of random images: the same float32 bits as before the
    move (runs and checkpoints trained then give the same numbers now)."""
    every = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(scale_pixels(every, normalize), old_scale(every, normalize))
    images = torch.randint(
        0, 256, (7, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    scaled = scale_pixels(images, normalize)
    assert scaled.dtype == torch.float32
    assert scaled.shape == images.shape
    assert torch.equal(scaled, old_scale(images, normalize))
    assert (PIXEL_MEAN, PIXEL_STD) == (0.1307, 0.3081)


@pytest.mark.parametrize("normalize", [True, False])
def test_scale_pixels_of_floats_in_0_1_matches_the_uint8_scaling(normalize):
    pixels = torch.tensor([[0, 1, 128, 254, 255]], dtype=torch.uint8)
    floats = pixels.double() / 255
    expected = (floats - 0.1307) / 0.3081 if normalize else floats
    for x in (pixels, floats.float(), floats):
        out = scale_pixels(x, normalize)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-6)
    assert scale_pixels(torch.tensor([0.0, 1.0]), normalize=False).tolist() == [0.0, 1.0]


def test_scale_pixels_returns_a_new_tensor_and_never_writes_into_the_callers():
    for x in (torch.tensor([[0, 128, 255]], dtype=torch.uint8), torch.tensor([[0.0, 0.5, 1.0]])):
        before = x.clone()
        for normalize in (True, False):
            out = scale_pixels(x, normalize)
            assert out.data_ptr() != x.data_ptr()
            assert torch.equal(x, before)


@pytest.mark.parametrize("normalize", [True, False])
def test_the_module_takes_raw_images_and_predicts_class_probabilities(normalize):
    torch.manual_seed(0)
    net = MLP(hidden=(8,))
    module = Classifier(net, CEELoss(), optimizer=lambda p: None, normalize=normalize)
    assert module.normalize is normalize
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        logits = module(x)
        assert torch.equal(logits, net(old_scale(x, normalize)))
        for batch in (x, (x, torch.zeros(5, dtype=torch.long)), [x]):
            probabilities = module.predict_step(batch, 0)
            assert torch.equal(probabilities, logits.softmax(dim=1))
    assert probabilities.shape == (5, 10)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(5))


def test_the_module_normalizes_by_default():
    module = Classifier(nn.Identity(), CEELoss(), optimizer=lambda p: None)
    assert module.normalize is True
    x = torch.tensor([[0, 255]], dtype=torch.uint8)
    assert torch.equal(module(x), old_scale(x, True))


@pytest.mark.parametrize(("trainer", "automatic"), [
    (SimpleNamespace(), True),  # a plain Lightning trainer: one step per call
    (SimpleNamespace(steps_per_call=1), True),
    (SimpleNamespace(steps_per_call=10), False),
])  # fmt: skip
def test_setup_takes_the_steps_per_call_from_the_trainer(trainer, automatic):
    module = classifier()
    module._trainer = trainer
    module.setup("fit")
    assert module.automatic_optimization is automatic


def test_the_training_loss_is_what_loss_says_and_nll_stays_plain(outputs):
    logits, y = outputs
    module = classifier(CEELoss(label_smoothing=0.2))
    module._update_metrics("val", logits, y)
    values = module._compute("val")
    assert values["loss/val"].item() == pytest.approx(
        F.cross_entropy(logits, y, label_smoothing=0.2).item(), rel=1e-6
    )
    assert values["nll/val"].item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


def test_a_noisy_split_batch_also_measures_the_true_labels(outputs):
    logits, y = outputs
    true_y = y.clone()
    true_y[:30] = (y[:30] + 1) % 10  # 30 flipped labels
    module = classifier()
    module._splits = ["train"]
    module.validation_step((logits, y, true_y), batch_idx=0, dataloader_idx=0)
    values = module._compute("train")
    prediction = logits.argmax(1)
    assert values["acc/train"].item() == pytest.approx((prediction == y).float().mean().item())
    assert values["acc/train_true"].item() == pytest.approx(
        (prediction == true_y).float().mean().item()
    )
    assert values["memo/train"].item() == pytest.approx(
        (prediction[:30] == y[:30]).float().mean().item()
    )


# -- HPARAMS metrics and the sweeper's objective ------------------------------------------------


def history(with_val: bool) -> list[dict]:
    out = []
    for epoch, (val, test) in enumerate([(0.1, 0.1), (0.90, 0.80), (0.85, 0.95)]):
        h = {"epoch": epoch, "acc/test": test, "loss/test": 1 - test, "gap/acc": 0.01}
        h |= {"ece/test": 0.02, "nll/test": 0.3, "brier/test": 0.1}
        if with_val:
            h |= {"acc/val": val, "loss/val": 1 - val}
        out.append(h)
    return out


def test_final_metrics_put_the_selection_metric_first():
    module = classifier()
    module.history = history(with_val=True)
    metrics = module.final_metrics()
    assert metrics == {  # the last epoch's, best by validation (0.90), not test (0.95)
        "hp/val_acc": 0.85,
        "hp/test_acc": 0.95,
        "hp/test_ece": 0.02,
        "hp/test_nll": 0.3,
        "hp/test_brier": 0.1,
        "hp/test_loss": pytest.approx(0.05),
        "hp/gap_acc": 0.01,
        "hp/val_loss": pytest.approx(0.15),
        "hp/best_val_acc": 0.90,
        "hp/test_at_best": 0.8,  # test at the epoch of the best validation accuracy
    }
    assert list(metrics)[:3] == ["hp/val_acc", "hp/test_acc", "hp/test_at_best"]
    module.history[-1].pop("gap/acc")  # no train split measured: the gap is unknown, not NaN
    assert "hp/gap_acc" not in module.final_metrics()
    assert classifier().final_metrics() == {}
    module.history = history(with_val=False)
    metrics = module.final_metrics()
    assert next(iter(metrics)) == "hp/test_acc"
    assert metrics["hp/best_test_acc"] == 0.95


def test_a_sweeper_is_given_validation_accuracy_and_never_test_accuracy():
    assert objective(history(with_val=True)) == 0.85
    assert math.isnan(objective(history(with_val=False)))  # test (0.95) is not offered instead
    assert math.isnan(objective([]))


# -- divergence ---------------------------------------------------------------------------------


def attach(module: Classifier, log_every: int = 5) -> SimpleNamespace:
    """A stand-in trainer with just what ``_after_step`` and ``on_validation_epoch_end`` read."""
    logged = []
    logger = SimpleNamespace(log_metrics=lambda m, step: logged.append((step, m)))
    trainer = SimpleNamespace(
        global_step=0,
        current_epoch=0,
        log_every_n_steps=log_every,
        world_size=1,
        should_stop=False,
        sanity_checking=False,
        num_sanity_val_steps=float("inf"),
        optimizers=[torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)],
        loggers=[logger],
    )
    module._trainer = trainer
    module.log_dict = lambda *args, **kwargs: None  # Lightning's own logging is not tested here
    return SimpleNamespace(trainer=trainer, logged=logged)


def test_the_first_non_finite_loss_stops_training_on_any_step():
    module = classifier()
    fake = attach(module)
    for step, value in enumerate([2.0, 1.5, 1.2, math.inf, 1.0], start=1):
        fake.trainer.global_step = step
        if math.isinf(value):
            with pytest.warns(UserWarning, match=r"diverged \(batch/loss=inf at step 4\)"):
                stop = module._after_step(torch.tensor(value))
        else:
            stop = module._after_step(torch.tensor(value))
        if stop:
            break
    assert step == 4  # not a logged step (1, 6, ...): checked anyway
    assert module.status == "diverged"
    assert fake.trainer.should_stop is True
    assert fake.logged == [(1, {"batch/loss": 2.0})]


def end_epoch(module: Classifier, outputs, broken: str | None) -> SimpleNamespace:
    """One evaluation of splits train, val, test (the same outputs each), then the epoch's end;
    ``broken`` (``kind/split``) is made non-finite in that split's batch."""
    logits, y = outputs
    fake = attach(module)
    fake.trainer.current_epoch = 2
    module.on_train_epoch_start()
    # Lightning steps an epoch-interval scheduler after the last batch, before the evaluation
    fake.trainer.optimizers[0].param_groups[0]["lr"] = 0.05
    module._splits = ["train", "val", "test"]
    for split in module._splits:
        batch_logits, loss = logits.clone(), F.cross_entropy(logits, y)
        if broken == f"loss/{split}":
            loss = torch.tensor(math.inf if split == "train" else math.nan)
        elif broken == f"nll/{split}":
            batch_logits[0, y[0]] = -math.inf  # the target's probability is 0: log 0
        elif broken == f"ece/{split}":
            batch_logits[0] = math.nan
            loss = F.cross_entropy(batch_logits, y)
        module.eval_metrics.update(split, batch_logits, y, loss)
    module.on_validation_epoch_end()
    return fake


@pytest.mark.parametrize("broken", ["loss/train", "loss/val", "nll/test", "ece/val"])
def test_any_non_finite_epoch_metric_marks_the_run_diverged_and_stops_it(broken, outputs):
    module = classifier()
    with pytest.warns(UserWarning, match=r"diverged \(non-finite epoch metrics at epoch 3\)"):
        fake = end_epoch(module, outputs, broken)
    assert module.status == "diverged"
    assert fake.trainer.should_stop is True
    last = module.history[-1]
    assert last["epoch"] == 3
    assert not math.isfinite(last[broken])
    assert fake.logged[-1][0] == 3  # the curves still get the epoch, non-finite value included


def test_finite_epoch_metrics_log_the_epoch_and_its_lr_and_do_not_stop(outputs):
    module = classifier()
    fake = end_epoch(module, outputs, broken=None)
    assert (module.status, fake.trainer.should_stop) == ("ok", False)
    step, values = fake.logged[-1]
    assert step == 3
    assert values["lr"] == 0.1  # the lr the epoch trained with, not the next epoch's
    assert values["gap/acc"] == 0.0  # train and test saw the same outputs
    assert {"time/epoch", "acc/train", "loss/val", "ece/test"} <= set(values)


def test_an_undefined_memorization_is_not_a_divergence(outputs):
    logits, y = outputs
    module = classifier()
    fake = attach(module)
    module.on_train_epoch_start()
    module._splits = ["train"]
    module.eval_metrics.update("train", logits, y, F.cross_entropy(logits, y), y)  # no flips
    module.on_validation_epoch_end()
    assert math.isnan(module.history[-1]["memo/train"])
    assert (module.status, fake.trainer.should_stop) == ("ok", False)


# -- what the loss is fed, and the arguments ----------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "loss_input", "fed"),
    [
        (CEELoss(), "auto", "logits"),
        (CEELoss(from_logits=False), "auto", "probabilities"),
        (SSELoss(from_logits=False), "logits", "logits"),
        (SSELoss(from_logits=False), "probabilities", "probabilities"),
        (SSELoss(), "auto", "logits"),
    ],
)
def test_what_the_loss_is_fed(loss, loss_input, fed, outputs):
    logits, y = outputs
    module = classifier(loss, loss_input=loss_input)
    expected = loss(logits.softmax(1) if fed == "probabilities" else logits, y)
    assert module._loss(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bad_module_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^loss_input must be one of .*'raw'"):
        classifier(loss_input="raw")
    with pytest.raises(ValueError, match=r"^scheduler_interval must be .*'batch'"):
        classifier(scheduler_interval="batch")
    for value in ("yes", 1, None):
        with pytest.raises(ValueError, match=rf"^normalize must be true or false, got {value!r}$"):
            classifier(normalize=value)
    with pytest.raises(TypeError, match="steps_per_call"):  # the trainer's setting now
        classifier(steps_per_call=2)


@pytest.mark.parametrize(
    ("loss", "loss_input", "why"),
    [
        (SSELoss(), "probabilities", "softmax twice"),
        (CEELoss(), "probabilities", "softmax twice"),
        (CEELoss(from_logits=False), "logits", "log of raw outputs"),
        ({"_target_": "losslab.losses.CEELoss", "from_logits": False}, "logits", "log of raw"),
    ],
)
def test_a_loss_input_that_contradicts_the_loss_is_refused(loss, loss_input, why):
    with pytest.raises(ValueError, match=rf"^loss_input='{loss_input}' .*{why}"):
        classifier(loss, loss_input=loss_input)


# -- plain configs and checkpoints ---------------------------------------------------------------

NET = {"_target_": "losslab.models.MLP", "hidden": [8]}
LOSS = {"_target_": "losslab.losses.CEELoss"}
SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
STEP_LR = {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 1}


def test_make_builds_what_a_plain_config_describes():
    assert target(NET) is MLP  # resolved, not called
    assert target(SGD) is torch.optim.SGD
    assert make({"_target_": "collections.Counter", "a": 2}) == {"a": 2}
    assert make(NET, hidden=[3]).layers[1].out_features == 3  # extra keyword arguments
    net = make(NET)
    assert isinstance(net, MLP)
    assert net(torch.zeros(2, 784)).shape == (2, 10)
    optimizer = make(SGD)
    assert isinstance(optimizer, functools.partial)
    assert optimizer(net.parameters()).param_groups[0]["lr"] == 0.1
    loss = CEELoss()
    assert make(loss) is loss  # an object is passed through
    assert make(None) is None
    with pytest.raises(ValueError, match=r"_target_.*\['hidden'\]"):
        make({"hidden": [8]})


def test_parts_given_as_objects_are_not_saved_as_hyperparameters():
    assert "net" not in classifier().hparams
    assert Classifier(NET, LOSS, SGD).hparams["net"] == NET


@pytest.mark.parametrize(("steps_per_call", "normalize"), [(1, True), (2, False)])
def test_a_checkpoint_of_plain_configs_rebuilds_the_module_alone(
    steps_per_call, normalize, tiny_mnist, tmp_path
):
    torch.manual_seed(0)
    module = Classifier(NET, LOSS, SGD, {**STEP_LR, "gamma": 0.5}, normalize=normalize)
    dm = MNISTDataModule(tiny_mnist["root"], download=False, batch_size=10, eval_batch_size=16)
    trainer = Trainer(
        steps_per_call=steps_per_call,
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=-1,  # epoch 0: the untrained model
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    contents = torch.load(path, map_location="cpu", weights_only=True)  # plain data only
    assert contents["hyper_parameters"]["net"] == NET
    assert contents["hyper_parameters"]["normalize"] is normalize
    assert "steps_per_call" not in contents["hyper_parameters"]
    loaded = Classifier.load_from_checkpoint(path)  # no other argument
    assert loaded.normalize is normalize
    x, _ = dm.splits["test"]  # raw uint8 images: the module scales them itself
    assert x.dtype == torch.uint8
    module.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), module(x))
        assert torch.equal(loaded(x), module.net(old_scale(x, normalize)))
    predicted = torch.cat(trainer.predict(loaded, datamodule=dm))  # the test split
    with torch.no_grad():
        assert torch.equal(predicted, module(x).softmax(dim=1))
    assert loaded.history == module.history
    assert loaded.status == "ok"
    assert [h["epoch"] for h in loaded.history] == [0, 1, 2]
    # the lr each epoch trained with (epoch 0: the initial one), halved after each epoch
    assert [h["lr"] for h in loaded.history] == [0.1, 0.1, 0.05]
    assert read_checkpoint(path, "ckpt_path")["state_dict"].keys() == module.state_dict().keys()


def test_read_checkpoint_refuses_what_is_not_a_checkpoint_naming_the_key(tmp_path: Path):
    with pytest.raises(UsageError, match=r"^init_from=.*missing\.ckpt: no such checkpoint file"):
        read_checkpoint(tmp_path / "missing.ckpt", "init_from")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint\n" * 10)
    with pytest.raises(UsageError, match=r"^ckpt_path=.*garbage\.ckpt: not a checkpoint torch"):
        read_checkpoint(garbage, "ckpt_path")
    weights = tmp_path / "weights.pt"
    torch.save(MLP(hidden=(8,)).state_dict(), weights)  # a state_dict, not a Lightning checkpoint
    with pytest.raises(UsageError, match=r"^ckpt_path=.*weights\.pt: not a Lightning checkpoint"):
        read_checkpoint(weights, "ckpt_path")


def test_init_from_loads_weights_that_fit_and_names_the_first_misfit_and_the_count(tmp_path):
    from losslab.run.build import _load_weights

    def saved(hidden: list[int], name: str) -> Path:
        module = Classifier({**NET, "hidden": hidden}, LOSS, SGD)
        torch.save({"state_dict": module.state_dict()}, tmp_path / name)
        return tmp_path / name

    same = Classifier(NET, LOSS, SGD)
    torch.save({"state_dict": same.state_dict()}, tmp_path / "same.ckpt")
    fresh = Classifier(NET, LOSS, SGD)
    _load_weights(fresh, str(tmp_path / "same.ckpt"))
    for key, value in same.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    wider = saved([7], "wider.ckpt")
    with pytest.raises(UsageError) as refused:
        _load_weights(Classifier({**NET, "hidden": [5]}, LOSS, SGD), str(wider))
    assert str(refused.value) == (
        f"init_from={wider}: its weights do not fit this run's model (net.layers.1.weight is "
        f"[7, 784] there, [5, 784] here, and 2 more); init_from needs the model.* settings of the "
        f"run that wrote it"
    )
    deeper = saved([5, 5], "deeper.ckpt")
    with pytest.raises(
        UsageError, match=r"\(net\.layers\.5\.weight is not in this model, and 3 more\)"
    ):
        _load_weights(Classifier({**NET, "hidden": [5]}, LOSS, SGD), str(deeper))
    with pytest.raises(UsageError, match=r"\(net\.layers\.5\.weight is missing, and 3 more\)"):
        _load_weights(Classifier({**NET, "hidden": [5, 5]}, LOSS, SGD), str(saved([5], "s.ckpt")))
    with pytest.raises(UsageError, match=r"init_from=.*nope\.ckpt: no such checkpoint file"):
        _load_weights(fresh, str(tmp_path / "nope.ckpt"))


def test_a_classifier_of_plain_objects_steps_once_per_batch_on_logits_per_epoch():
    """The defaults a plain-torch user gets: the loss fed logits (a loss without a
    ``from_logits`` attribute too), Lightning's own optimisation (one step a batch), the
    scheduler stepped per epoch; no hyperparameters saved for objects that are not configs."""
    module = classifier()
    assert (module.scheduler_interval, module.wants_probabilities) == ("epoch", False)
    assert module.automatic_optimization
    assert classifier(loss=nn.MSELoss()).wants_probabilities is False
    assert classifier(loss=SSELoss(from_logits=False)).wants_probabilities is True
    assert dict(module.hparams) == {}
    assert classifier(scheduler_interval="step").scheduler_interval == "step"
    with pytest.raises(ValueError, match=r"^scheduler_interval must be 'epoch' or 'step', got 'x'"):
        classifier(scheduler_interval="x")


# -- what Lightning is told, the epoch's bookkeeping, checkpoint state ---------------------------


def test_neither_the_module_nor_the_data_module_hands_its_hyperparameters_to_the_loggers():
    """losslab writes its own HPARAMS summary; Lightning's fit-start hook must log nothing."""
    from lightning.pytorch.loggers.utilities import _log_hyperparams

    logged = []
    logger = SimpleNamespace(
        log_hyperparams=logged.append, log_graph=lambda module: None, save=lambda: None
    )
    module = Classifier(NET, LOSS, SGD)
    trainer = SimpleNamespace(loggers=[logger], lightning_module=module, datamodule=None)
    _log_hyperparams(trainer)
    assert logged == []


def test_the_config_contradictions_are_refused_with_the_keys_and_values_to_set():
    twice = (
        "loss_input='probabilities' with loss.from_logits=True would apply the softmax twice: "
        "set loss.from_logits=false, or classifier.loss_input=auto"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(twice)}$"):
        classifier(SSELoss(), loss_input="probabilities")
    raw = (
        "loss_input='logits' with CEELoss(from_logits=False) would take the log of raw outputs: "
        "CEE needs loss.from_logits=true (logits in) or classifier.loss_input=auto (softmax in)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(raw)}$"):
        classifier(CEELoss(from_logits=False), loss_input="logits")


def test_an_evaluation_before_any_training_epoch_records_no_lr_and_an_unknown_epoch_time():
    """``trainer.validate`` on a fresh module: no split was announced, no epoch was timed, no
    learning rate was read; the epoch is recorded with just what is known."""
    module = classifier()
    fake = attach(module)
    module.on_validation_epoch_end()
    (entry,) = module.history
    assert entry.keys() == {"epoch", "step", "time/epoch"}
    assert (entry["epoch"], entry["step"]) == (1, 0)
    assert math.isnan(entry["time/epoch"])
    assert fake.logged[-1][0] == 1
    assert module.status == "ok"


def test_the_first_epoch_is_timed_and_given_the_lr_it_trained_with(outputs):
    logits, y = outputs
    module = classifier()
    fake = attach(module)
    started = time.perf_counter()
    module.on_train_epoch_start()
    fake.trainer.optimizers[0].param_groups[0]["lr"] = 0.05  # an epoch scheduler's step
    module._splits = ["test"]
    module.eval_metrics.update("test", logits, y, F.cross_entropy(logits, y))
    module.on_validation_epoch_end()
    elapsed = time.perf_counter() - started
    entry = module.history[-1]
    assert entry["epoch"] == 1
    assert 0 <= entry["time/epoch"] <= elapsed
    assert entry["lr"] == 0.1


def test_only_the_accuracies_to_choose_by_go_to_the_progress_bar(outputs):
    logits, y = outputs
    module = classifier()
    attach(module)
    calls = []
    module.log_dict = lambda values, **kwargs: calls.append((sorted(values), kwargs))
    module._splits = ["train", "val", "test"]
    for split in module._splits:
        module.eval_metrics.update(split, logits, y, F.cross_entropy(logits, y))
    module.on_validation_epoch_end()
    shown, rest = calls
    assert shown == (
        ["acc/test", "acc/val"],
        {"logger": False, "sync_dist": True, "prog_bar": True},
    )
    assert rest[1] == {"logger": False, "sync_dist": True}
    expected = {f"{kind}/{split}" for kind in ("loss", "acc", "nll", "brier", "ece")
                for split in ("train", "val", "test")} | {"gap/acc"}  # fmt: skip
    assert set(rest[0]) == expected - {"acc/val", "acc/test"}


def test_a_sanity_check_that_is_not_run_in_full_warns_how_to_log_epoch_0(outputs):
    logits, y = outputs
    module = classifier()
    fake = attach(module)
    fake.trainer.sanity_checking, fake.trainer.num_sanity_val_steps = True, 2
    module._splits = ["test"]
    module.eval_metrics.update("test", logits, y, F.cross_entropy(logits, y))
    with pytest.warns(
        UserWarning, match=r"^epoch 0 is not logged: set trainer\.num_sanity_val_steps=-1$"
    ):
        module.on_validation_epoch_end()
    assert module.history == []
    assert fake.logged == []


def test_epoch_0_without_an_optimizer_records_no_lr(outputs):
    logits, y = outputs
    module = classifier()
    fake = attach(module)
    fake.trainer.sanity_checking, fake.trainer.optimizers = True, []
    module._splits = ["test"]
    module.eval_metrics.update("test", logits, y, F.cross_entropy(logits, y))
    module.on_validation_epoch_end()
    assert module.history[-1]["epoch"] == 0
    assert "lr" not in module.history[-1]


def test_a_run_diverges_once_and_warns_once():
    module = classifier()
    attach(module)
    with pytest.warns(UserWarning, match="diverged"):
        module._diverged("first")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module._diverged("second")
    assert module.status == "diverged"


def splits_module(loaders) -> Classifier:
    module = classifier()
    module._trainer = SimpleNamespace(val_dataloaders=loaders)
    return module


@pytest.mark.parametrize("keys", [["train", "val", "test"], ["test"], ["val"], ["train", "test"]])
def test_an_evaluation_of_any_splits_among_train_val_test_is_accepted(keys):
    module = splits_module({k: object() for k in keys})
    module.on_validation_epoch_start()
    assert module._splits == keys


@pytest.mark.parametrize(
    ("loaders", "got"), [([object()], "list"), ({"dev": object()}, "dict"), (None, "NoneType")]
)
def test_evaluation_loaders_that_are_not_a_dict_of_splits_are_refused(loaders, got):
    with pytest.raises(TypeError) as info:
        splits_module(loaders).on_validation_epoch_start()
    assert str(info.value) == (
        "val_dataloader() must return a dict with keys among ('train', 'val', 'test'), one "
        f"fixed-order loader per split to measure (MNISTDataModule does), got {got}"
    )


def test_a_single_evaluation_loader_is_measured_without_a_dataloader_index(outputs):
    """Lightning passes no ``dataloader_idx`` when there is one loader."""
    logits, y = outputs
    module = classifier()
    module._splits = ["test"]
    module.validation_step((logits, y), 0)
    values = module._compute("test")
    assert values["acc/test"].item() == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_max_steps_stops_the_epoch_at_that_step_and_a_non_positive_one_never(outputs):
    module = classifier()
    fake = attach(module)
    fake.trainer.fit_loop = SimpleNamespace(
        epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(is_last_batch=False))
    )
    for max_steps, step, stops in [(1, 1, True), (3, 2, False), (3, 3, True), (0, 5, False),
                                   (-1, 5, False)]:  # fmt: skip
        fake.trainer.max_steps, fake.trainer.global_step, fake.trainer.should_stop = (
            max_steps,
            step,
            False,
        )
        module.on_train_batch_end({"loss": torch.tensor(1.0)}, None, 0)
        assert fake.trainer.should_stop is stops, (max_steps, step)


def test_history_and_a_diverged_status_survive_a_checkpoint_and_old_ones_load_as_ok():
    module = classifier()
    module.history, module.status = [{"epoch": 0, "acc/test": 0.1}], "diverged"
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    loaded = classifier()
    loaded.on_load_checkpoint(checkpoint)
    assert (loaded.history, loaded.status) == ([{"epoch": 0, "acc/test": 0.1}], "diverged")
    for old in ({}, {"losslab": {}}):  # written before losslab kept its own state
        fresh = classifier()
        fresh.on_load_checkpoint(old)
        assert (fresh.history, fresh.status) == ([], "ok")
        assert fresh.normalize is False  # as built: nothing says otherwise


@pytest.mark.parametrize(("datamodule", "normalize"), [
    ({"normalize": False}, False),
    ({"normalize": True}, True),
    ({}, True),  # the data module's old default
])  # fmt: skip
def test_a_checkpoint_from_before_the_module_scaled_takes_the_data_modules_normalize(
    datamodule, normalize
):
    """Written when the data module scaled the batches: the module scales as it did."""
    old = {"hyper_parameters": {"net": NET}, "datamodule_hyper_parameters": datamodule}
    module = classifier(normalize=not normalize)
    module.on_load_checkpoint(old)
    assert module.normalize is normalize
    new = {"hyper_parameters": {"normalize": False}, "datamodule_hyper_parameters": datamodule}
    module = classifier(normalize=False)
    module.on_load_checkpoint(new)  # the module's own setting wins
    assert module.normalize is False


def test_an_unloadable_checkpoint_error_gives_torchs_reason_on_one_line(tmp_path: Path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"PK\x03\x04 not a zip\n" * 40)
    try:
        torch.load(garbage, map_location="cpu", weights_only=True)
    except Exception as err:  # whatever torch says, as it says it
        reason = " ".join(str(err).split())
    with pytest.raises(UsageError) as info:
        read_checkpoint(garbage, "ckpt_path")
    assert (
        str(info.value) == f"ckpt_path={garbage}: not a checkpoint torch can load ({reason[:200]})"
    )


# -- a checkpoint on its own: raw images in, classes out --------------------------------------


@pytest.fixture(scope="module")
def finished_run(shared_run) -> Path:
    return shared_run(
        "standalone", "data.train_size=1000", "trainer.max_epochs=1", "~hydra.callbacks.report"
    )


def raw_test_images(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's test split as torchvision reads the files: uint8 (10000, 28, 28) and labels."""
    from torchvision.datasets import MNIST

    test = MNIST(str(data_dir), train=False, download=False)
    return test.data, test.targets


def test_a_checkpoint_alone_classifies_raw_images_with_the_runs_own_test_accuracy(
    finished_run, data_dir
):
    import json

    run_acc = json.loads((finished_run / "result.json").read_text())["metrics"]["hp/test_acc"]
    model = Classifier.load_from_checkpoint(finished_run / "checkpoints" / "last.ckpt").eval()
    images, labels = raw_test_images(data_dir)  # uint8 0..255: no scaling by the caller
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
        from_floats = model(images.float() / 255).argmax(dim=1)  # or floats in [0, 1]
    assert (predicted == labels).float().mean().item() == pytest.approx(run_acc, abs=1e-6)
    assert (from_floats != predicted).sum() <= 2  # the same scaling up to the last bit


def test_trainer_predict_gives_class_probabilities_of_the_test_images(finished_run, data_dir):
    model = Classifier.load_from_checkpoint(finished_run / "checkpoints" / "last.ckpt")
    datamodule = MNISTDataModule(data_dir, download=False, eval_batch_size=5000)
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    batches = trainer.predict(model, datamodule=datamodule)
    probabilities = torch.cat(batches)
    assert probabilities.shape == (10_000, 10)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(10_000))
    images, _labels = raw_test_images(data_dir)
    with torch.no_grad():
        assert torch.equal(probabilities.argmax(dim=1), model.eval()(images).argmax(dim=1))

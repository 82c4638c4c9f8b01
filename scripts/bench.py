"""Speed of losslab against a plain PyTorch loop (the floor) and the tutorial pipeline.

    python scripts/bench.py              # full run (make bench), writes bench.json
    python scripts/bench.py --quick      # a smoke run: fewer repetitions, fewer batch sizes
    python scripts/bench.py data         # only the data-loading section
    python scripts/bench.py --device cuda --quick   # on a GPU

Everything is measured in ONE process, interleaved (each repetition runs every contender once),
and reported as the median of the repetitions, so the ratios compare like with like even on a
busy machine. Sections:

- data:    one epoch of training batches: MNISTDataModule vs a bare tensor-slicing loop vs
           torchvision's ToTensor+Normalize+DataLoader (the canonical tutorial pipeline).
- train:   one training epoch of the MLP 784-100-10 (SGD): `floor` (a hand-written loop over
           preloaded normalised tensors, same net, same loss module, same optimizer), `bare L`
           (Lightning's own floor: a LightningModule with only training_step, on losslab's data
           module, no logger, no evaluation), `losslab`
           (Classifier + MNISTDataModule + lightning.Trainer, TensorBoard on, progress bar off,
           the default trainer.steps_per_call=10;
           training time, and the epoch including its full train+test evaluation), and
           `canonical` (Lightning + the tutorial pipeline + per-step self.log; timed on a fixed
           number of steps and scaled to an epoch).
- steps:   losslab with K optimizer steps per Lightning training step (trainer.steps_per_call),
           K in 1, 3, 10, 30, against the hand-written loop, at batch 32, 100, 256, 1024:
           training only, and with the per-epoch evaluation on both sides (the hand loop's:
           loss and accuracy of the train and test splits, no_grad, batches of 2000).
- threads: losslab's training epoch with 1 vs 2 torch threads.
- losses:  CEELoss / SSELoss forward+backward vs F.cross_entropy.
- overhead: what a user waits for: the default run (``losslab-train``, batch 100) on the wall
           clock, per epoch (the 4-epoch run minus the 1-epoch run, / 3) against the hand loop
           that trains an epoch and computes loss and accuracy on train and test; the fixed cost
           of a run alone (its wall time minus its epoch) and in a sweep (what one more job
           adds: the 5-job sweep minus the 1-job sweep, / 4, minus an epoch), the once-a-sweep
           cost and the report apart; and where an epoch's time goes, phase by phase
           (Lightning's SimpleProfiler). The runs are the real entry point called in this
           process: interpreter start and imports are not counted.

Targets are printed with PASS/MISS; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from losslab import CEELoss, SSELoss
from losslab.lit.classifier import Classifier, scale_pixels
from losslab.lit.data import MNISTDataModule
from losslab.lit.trainer import DEFAULT_STEPS, Trainer
from losslab.models import MLP
from losslab.names import PIXEL_MEAN, PIXEL_STD

warnings.filterwarnings("ignore")
# Lightning's advertising line, printed by every Trainer.fit: it says nothing about speed
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "Tip:" not in record.getMessage()
)
LOSSES = {"cee": CEELoss, "sse": SSELoss}
DEFAULT_STEPS_PER_CALL = DEFAULT_STEPS  # trainer.steps_per_call=auto on one CPU: the real path's
CANONICAL_STEPS = 150  # the tutorial pipeline is slow: time this many steps, scale to an epoch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


# -- contenders ---------------------------------------------------------------------------------


def floor_epoch(x: torch.Tensor, y: torch.Tensor, batch_size: int, loss_name: str, device) -> float:
    """A hand-written epoch: preloaded normalised tensors, same MLP, loss module and optimizer."""
    net, loss_fn = MLP().to(device), LOSSES[loss_name]()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def run() -> None:
        perm = torch.randperm(len(y), device=device)
        for k in range(0, len(y), batch_size):
            idx = perm[k : k + batch_size]
            loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return timed(run, device)


def floor_eval(net: torch.nn.Module, splits: list, loss_fn: torch.nn.Module, device) -> float:
    """The hand loop's evaluation: loss and accuracy of every split, no_grad, batches of 2000."""

    def run() -> None:
        net.eval()
        with torch.no_grad():
            for x, y in splits:
                total, correct = 0.0, 0
                for k in range(0, len(y), 2000):
                    logits = net(x[k : k + 2000])
                    total += loss_fn(logits, y[k : k + 2000]).item() * len(logits)
                    correct += (logits.argmax(1) == y[k : k + 2000]).sum().item()
        net.train()

    return timed(run, device)


class EpochTimer(L.Callback):
    """Training time of each epoch, and the time of the evaluation at its end."""

    def __init__(self) -> None:
        self.train: list[float] = []
        self.evaluation: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        sync(module.device)
        self._start, self._eval = time.perf_counter(), 0.0

    def on_validation_start(self, trainer, module) -> None:
        sync(module.device)
        self._v = time.perf_counter()

    def on_validation_end(self, trainer, module) -> None:
        sync(module.device)
        if not trainer.sanity_checking:
            self._eval += time.perf_counter() - self._v

    def on_train_epoch_end(self, trainer, module) -> None:  # after the epoch's evaluation
        sync(module.device)
        total = time.perf_counter() - self._start
        self.train.append(total - self._eval)
        self.evaluation.append(self._eval)


def one_epoch_trainer(
    device, logger, *callbacks: L.Callback, steps_per_call: int | None = None, **extra
) -> L.Trainer:
    """The Trainer every Lightning contender uses: one epoch, no bar, no summary, no checkpoint;
    with ``steps_per_call``, losslab's (K optimizer steps per training step), else Lightning's."""
    trainer = L.Trainer if steps_per_call is None else Trainer
    more = {} if steps_per_call is None else {"steps_per_call": steps_per_call}
    return trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=1,
        logger=logger,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **more,
        **extra,
    )


def canonical_loader(data_dir: str, batch_size: int) -> torch.utils.data.DataLoader:
    """The tutorial pipeline: torchvision's per-sample ToTensor + Normalize, DataLoader collate."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((PIXEL_MEAN,), (PIXEL_STD,))]
    )
    dataset = datasets.MNIST(data_dir, train=True, transform=tf, download=False)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)


def losslab_epoch(
    data_dir: str,
    batch_size: int,
    loss_name: str,
    device,
    logdir: str,
    steps_per_call: int = DEFAULT_STEPS_PER_CALL,
) -> tuple[float, float]:
    """The real training path for one epoch: (training time, training + evaluation time)."""
    dm = MNISTDataModule(data_dir, batch_size=batch_size, download=False)
    module = Classifier(MLP(), LOSSES[loss_name](), optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    timer = EpochTimer()
    logger = L.pytorch.loggers.TensorBoardLogger(logdir, name="bench", default_hp_metric=False)
    trainer = one_epoch_trainer(
        device,
        logger,
        timer,
        steps_per_call=steps_per_call,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=dm)
    return timer.train[0], timer.train[0] + timer.evaluation[0]


class BareModule(L.LightningModule):
    """The least a LightningModule can be: training_step and an optimizer, nothing logged; it
    scales the data module's raw pixels as losslab's Classifier does."""

    def __init__(self, loss_name: str) -> None:
        super().__init__()
        self.net, self.loss = MLP(), LOSSES[loss_name]()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss(self.net(scale_pixels(x)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def bare_lightning_epoch(data_dir: str, batch_size: int, loss_name: str, device) -> float:
    """Lightning's own floor: BareModule on losslab's data module, no logger, no evaluation."""
    timer = EpochTimer()
    trainer = one_epoch_trainer(device, False, timer, use_distributed_sampler=False)
    trainer.fit(
        BareModule(loss_name), datamodule=MNISTDataModule(data_dir, batch_size, download=False)
    )
    return timer.train[0]


class TutorialModule(L.LightningModule):
    """What the tutorials write: per-step self.log and a per-step torchmetrics accuracy."""

    def __init__(self, loss_name: str) -> None:
        super().__init__()
        import torchmetrics

        self.net, self.loss = MLP(), LOSSES[loss_name]()
        self.acc = torchmetrics.classification.MulticlassAccuracy(10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = self.loss(logits, y)
        self.acc(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.acc, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def canonical_epoch(data_dir: str, batch_size: int, loss_name: str, device, logdir: str) -> float:
    """Lightning + torchvision ToTensor/Normalize + DataLoader, scaled from CANONICAL_STEPS."""
    loader = canonical_loader(data_dir, batch_size)
    steps = min(CANONICAL_STEPS, len(loader))
    logger = L.pytorch.loggers.TensorBoardLogger(logdir, name="canonical")
    trainer = one_epoch_trainer(device, logger, limit_train_batches=steps, limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(TutorialModule(loss_name), train_dataloaders=loader)
    return (time.perf_counter() - start) * len(loader) / steps


def data_epochs(data_dir: str, batch_size: int, device) -> dict[str, float]:
    """One epoch of training batches, ready for the model (normalised float32 on device)."""
    dm = MNISTDataModule(data_dir, batch_size=batch_size, download=False)
    dm.setup()
    dm.splits = {k: (a.to(device), b.to(device)) for k, (a, b) in dm.splits.items()}
    images, labels = dm.splits["train"]

    def datamodule() -> None:  # raw batches, scaled as the model scales them
        for x, _ in dm.train_dataloader():
            scale_pixels(x)

    def bare() -> None:
        perm = torch.randperm(len(labels), device=device)
        scale, shift = 1 / (255 * PIXEL_STD), PIXEL_MEAN / PIXEL_STD
        for k in range(0, len(labels), batch_size):
            idx = perm[k : k + batch_size]
            _ = (
                images.index_select(0, idx).float().mul_(scale).sub_(shift),
                labels.index_select(0, idx),
            )

    loader = canonical_loader(data_dir, batch_size)
    steps = min(CANONICAL_STEPS, len(loader))

    def canonical() -> None:
        for i, (x, y) in enumerate(loader):
            x.to(device), y.to(device)
            if i + 1 == steps:
                break

    return {
        "datamodule": timed(datamodule, device),
        "bare": timed(bare, device),
        "canonical": timed(canonical, device) * len(loader) / steps,
    }


def loss_times(device, reps: int) -> list[dict]:
    """Forward+backward of our losses vs F.cross_entropy, median of `reps` x 10 calls."""
    rows = []
    for n, c in [(4096, 10), (512, 32000)]:
        x = torch.randn(n, c, device=device, requires_grad=True)
        t = torch.randint(0, c, (n,), device=device)
        fns = {"F.cross_entropy": F.cross_entropy, "CEELoss": CEELoss(), "SSELoss": SSELoss()}
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(reps):
            for name, fn in fns.items():
                times[name].append(
                    timed(lambda fn=fn, x=x, t=t: [fn(x, t).backward() for _ in range(10)], device)
                    / 10
                )
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"N": n, "C": c, **{f"{k}_ms": v * 1e3 for k, v in med.items()}})
    return rows


# -- report -------------------------------------------------------------------------------------


def target(what: str, value: float, limit: float, above: bool = False, unit: str = "x") -> bool:
    """Print one target line with PASS or MISS; returns whether it passed."""
    ok = value >= limit if above else value <= limit
    shown = f"{value:.2f}x" if unit == "x" else f"{value:.3f} {unit}"
    print(f"target: {what}: {shown} {'PASS' if ok else 'MISS'}")
    return ok


# -- overhead: what a user waits for around the math ----------------------------------------------


@dataclass
class Context:
    """What every section needs: the options, the device, the repetitions, the data."""

    args: argparse.Namespace
    device: torch.device
    reps: int
    batch_sizes: list[int]
    losses: list[str]
    logdir: str
    dm: MNISTDataModule
    x_all: torch.Tensor
    y_all: torch.Tensor


def section_data(ctx: Context) -> dict:
    samples = {
        bs: [data_epochs(ctx.args.data_dir, bs, ctx.device) for _ in range(ctx.reps)]
        for bs in ctx.batch_sizes
    }
    print("data: one epoch of 60,000 training images as normalised batches (seconds)")
    print(
        f"{'batch':>6} {'datamodule':>11} {'bare':>8} {'canonical':>10} {'dm/bare':>8} {'canon/dm':>9}"
    )
    rows = []
    for bs, runs in samples.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        row = {
            "batch_size": bs,
            **med,
            "dm_over_bare": med["datamodule"] / med["bare"],
            "canonical_over_dm": med["canonical"] / med["datamodule"],
        }
        rows.append(row)
        print(
            f"{bs:>6} {med['datamodule']:>11.3f} {med['bare']:>8.3f} {med['canonical']:>10.2f} "
            f"{row['dm_over_bare']:>8.2f} {row['canonical_over_dm']:>9.1f}"
        )
    row100 = next((r for r in rows if r["batch_size"] == 100), None)
    if row100:
        target("datamodule <= 1.2x bare at batch 100", row100["dm_over_bare"], 1.2)
        target(
            "canonical >= 20x datamodule at batch 100", row100["canonical_over_dm"], 20, above=True
        )
    return {"data": rows}


def section_train(ctx: Context) -> dict:
    data_dir, device, logdir = ctx.args.data_dir, ctx.device, ctx.logdir
    contenders = {
        "floor": lambda bs, loss: floor_epoch(ctx.x_all, ctx.y_all, bs, loss, device),
        "bare": lambda bs, loss: bare_lightning_epoch(data_dir, bs, loss, device),
        "losslab": lambda bs, loss: losslab_epoch(data_dir, bs, loss, device, logdir),
        "canonical": lambda bs, loss: canonical_epoch(data_dir, bs, loss, device, logdir),
    }
    times: dict[tuple, list] = {}
    for _ in range(ctx.reps):
        for bs in ctx.batch_sizes:
            for loss in ctx.losses:
                for name, run in contenders.items():
                    times.setdefault((name, bs, loss), []).append(run(bs, loss))
    print(
        "train: one epoch of the MLP 784-100-10 with SGD (seconds; samples/s of the training epoch)"
    )
    print(
        f"{'batch':>6} {'loss':>5} {'floor':>7} {'bare L':>7} {'losslab':>8} {'+eval':>7} "
        f"{'canonical':>10} {'samples/s':>10} {'bare/fl':>8} {'ll/floor':>9} {'ll+eval/fl':>11} "
        f"{'canon/ll':>9}"
    )
    rows = []
    for bs in ctx.batch_sizes:
        for loss in ctx.losses:
            med = {
                k: statistics.median(times[(k, bs, loss)]) for k in ("floor", "bare", "canonical")
            }
            ll = statistics.median(t for t, _ in times[("losslab", bs, loss)])
            ll_eval = statistics.median(t for _, t in times[("losslab", bs, loss)])
            floor, bare, canon = med["floor"], med["bare"], med["canonical"]
            rows.append(
                {
                    "batch_size": bs,
                    "loss": loss,
                    "floor_s": floor,
                    "bare_lightning_s": bare,
                    "bare_over_floor": bare / floor,
                    "losslab_s": ll,
                    "losslab_with_eval_s": ll_eval,
                    "canonical_s": canon,
                    "losslab_samples_per_s": 60000 / ll,
                    "losslab_over_floor": ll / floor,
                    "losslab_with_eval_over_floor": ll_eval / floor,
                    "canonical_over_losslab": canon / ll,
                }
            )
            print(
                f"{bs:>6} {loss:>5} {floor:>7.3f} {bare:>7.3f} {ll:>8.3f} {ll_eval:>7.3f} {canon:>10.2f} "
                f"{60000 / ll:>10.0f} {bare / floor:>8.2f} {ll / floor:>9.2f} {ll_eval / floor:>11.2f} "
                f"{canon / ll:>9.1f}"
            )
    for row in (r for r in rows if r["loss"] == "cee"):
        bs = row["batch_size"]
        if bs in (100, 1024):
            limit = 1.25 if bs == 100 else 1.15
            target(
                f"losslab epoch <= {limit}x floor at batch {bs}", row["losslab_over_floor"], limit
            )
        if bs == 100:
            target(
                "canonical >= 10x losslab at batch 100",
                row["canonical_over_losslab"],
                10,
                above=True,
            )
    return {"train": rows}


def section_steps(ctx: Context) -> dict:
    ks = [1, 3, 10, 30]
    step_sizes = [100, 1024] if ctx.args.quick else [32, 100, 256, 1024]
    test_x, test_y = ctx.dm.splits["test"]
    test_x = scale_pixels(test_x)
    splits = [(ctx.x_all, ctx.y_all), (test_x.flatten(1).to(ctx.device), test_y.to(ctx.device))]
    runs: dict[tuple, list] = {}
    for _ in range(ctx.reps):
        for bs in step_sizes:
            net, loss_fn = MLP().to(ctx.device), CEELoss()
            runs.setdefault(("floor", bs), []).append(
                floor_epoch(ctx.x_all, ctx.y_all, bs, "cee", ctx.device)
            )
            runs.setdefault(("floor_eval", bs), []).append(
                floor_eval(net, splits, loss_fn, ctx.device)
            )
            for k in ks:
                runs.setdefault((k, bs), []).append(
                    losslab_epoch(
                        ctx.args.data_dir, bs, "cee", ctx.device, ctx.logdir, steps_per_call=k
                    )
                )
    print("steps: losslab with K optimizer steps per training step vs the hand loop (CEE)")
    print(
        f"{'batch':>6} {'K':>3} {'hand':>7} {'losslab':>8} {'x hand':>7} {'hand+eval':>10} {'ll+eval':>8} {'x hand':>7}"
    )
    rows = []
    for bs in step_sizes:
        floor = statistics.median(runs[("floor", bs)])
        floor_ev = floor + statistics.median(runs[("floor_eval", bs)])
        for k in ks:
            ll = statistics.median(t for t, _ in runs[(k, bs)])
            ll_ev = statistics.median(t for _, t in runs[(k, bs)])
            rows.append(
                {
                    "batch_size": bs,
                    "steps_per_call": k,
                    "hand_s": floor,
                    "losslab_s": ll,
                    "over_hand": ll / floor,
                    "hand_with_eval_s": floor_ev,
                    "losslab_with_eval_s": ll_ev,
                    "with_eval_over_hand": ll_ev / floor_ev,
                }
            )
            print(
                f"{bs:>6} {k:>3} {floor:>7.3f} {ll:>8.3f} {ll / floor:>7.2f} "
                f"{floor_ev:>10.3f} {ll_ev:>8.3f} {ll_ev / floor_ev:>7.2f}"
            )
    for bs, limit, key in (
        (100, 1.15, "over_hand"),
        (32, 1.25, "over_hand"),
        (100, 1.3, "with_eval_over_hand"),
    ):
        chosen = [r for r in rows if r["batch_size"] == bs]
        if chosen:
            best = min(chosen, key=lambda r: r[key])
            what = "training" if key == "over_hand" else "training + evaluation"
            target(
                f"{what} <= {limit}x the hand loop at batch {bs} (best K = {best['steps_per_call']})",
                best[key],
                limit,
            )
    return {"steps": rows}


def section_threads(ctx: Context) -> dict:
    if ctx.device.type != "cpu":
        return {}
    per_threads: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(ctx.reps):
        for n in per_threads:
            torch.set_num_threads(n)
            per_threads[n].append(
                losslab_epoch(ctx.args.data_dir, 100, "cee", ctx.device, ctx.logdir)[0]
            )
    torch.set_num_threads(ctx.args.threads)
    med = {n: statistics.median(v) for n, v in per_threads.items()}
    print(
        f"threads: losslab training epoch at batch 100: 1 thread {med[1]:.3f} s, "
        f"2 threads {med[2]:.3f} s (2/1 = {med[2] / med[1]:.2f})"
    )
    return {"threads": {str(n): v for n, v in med.items()}}


def section_losses(ctx: Context) -> dict:
    rows = loss_times(ctx.device, ctx.reps)
    print("losses: forward+backward per call (ms)")
    print(
        f"{'N':>6} {'C':>6} {'F.cross_entropy':>16} {'CEELoss':>8} {'SSELoss':>8} {'CEE/F.ce':>9}"
    )
    for r in rows:
        r["cee_over_torch"] = r["CEELoss_ms"] / r["F.cross_entropy_ms"]
        print(
            f"{r['N']:>6} {r['C']:>6} {r['F.cross_entropy_ms']:>16.3f} {r['CEELoss_ms']:>8.3f} "
            f"{r['SSELoss_ms']:>8.3f} {r['cee_over_torch']:>9.2f}"
        )
    for r in rows:
        target(
            f"CEELoss <= 1.5x F.cross_entropy at N={r['N']}, C={r['C']}", r["cee_over_torch"], 1.5
        )
    return {"losses": rows}


class FitClock:
    """Seconds spent inside ``Trainer.fit`` (and, of those, in epoch 0's evaluation) while
    active: what a run spends training, against what it spends around it."""

    def __enter__(self) -> FitClock:
        self.fit = self.epoch0 = 0.0
        self._fit, self._sanity = L.Trainer.fit, L.Trainer._run_sanity_check
        L.Trainer.fit = self._timed(self._fit, "fit")
        L.Trainer._run_sanity_check = self._timed(self._sanity, "epoch0")
        return self

    def _timed(self, method: Any, field: str) -> Any:
        """``method``, its seconds added to ``self.<field>`` at each call."""

        def timed(trainer: L.Trainer, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(trainer, *args, **kwargs)
            finally:
                setattr(self, field, getattr(self, field) + time.perf_counter() - start)

        return timed

    def __exit__(self, *exc: object) -> None:
        L.Trainer.fit, L.Trainer._run_sanity_check = self._fit, self._sanity


def run_command(args: list[str], cwd: str) -> tuple[float, float, float]:
    """``losslab-train ARGS`` (the entry the console script calls) run in this process: its wall
    time, the part of it inside ``Trainer.fit``, and epoch 0's evaluation within that. The real
    command less the interpreter's start and imports."""
    import contextlib
    import sys

    from hydra.core.global_hydra import GlobalHydra

    import losslab.train

    entry = getattr(losslab.train, "entry", None)
    if entry is None:  # losslab before the orchestration redesign: the console script's function
        from losslab.cli import train_main as entry
    argv, before, code = sys.argv, os.getcwd(), 0
    os.chdir(cwd)
    sys.argv = ["losslab-train", *args]
    start = time.perf_counter()
    try:
        with (
            FitClock() as clock,
            open(os.devnull, "w") as null,
            contextlib.redirect_stdout(null),
            contextlib.redirect_stderr(null),
        ):
            try:
                entry()
            except SystemExit as exit_:
                code = exit_.code or 0
    finally:
        wall = time.perf_counter() - start
        sys.argv = argv
        os.chdir(before)
        GlobalHydra.instance().clear()
    if code:
        raise RuntimeError(f"losslab-train {' '.join(args)} exited with {code}")
    return wall, clock.fit, clock.epoch0


def profile_epochs(ctx: Context, epochs: int = 4) -> dict[str, float]:
    """Seconds per epoch of each phase of the default run, measured by Lightning's SimpleProfiler
    (every hook, callback and loop step is timed) on an ``epochs``-epoch run."""
    from lightning.pytorch.profilers import SimpleProfiler

    profilers: list[SimpleProfiler] = []
    original = L.Trainer.__init__
    work = tempfile.mkdtemp(dir=ctx.logdir)

    def with_profiler(self, *args, **kwargs):
        profilers.append(SimpleProfiler(dirpath=work, filename="profile"))  # its table to a file
        original(self, *args, **{**kwargs, "profiler": profilers[-1]})

    L.Trainer.__init__ = with_profiler
    try:
        run_command([f"trainer.max_epochs={epochs}", "hydra.run.dir=profiled"], work)
    finally:
        L.Trainer.__init__ = original
    durations = profilers[-1].recorded_durations
    phases = {
        "training steps (forward, backward, optimizer)": ("run_training_batch",),
        "evaluation forward passes and metric updates": ("validation_step",),
        "epoch metrics: compute, log, history": ("on_validation_epoch_end",),
        # raw uint8: the model scales them, inside the steps and the evaluation passes
        "batches: to the device": ("SingleDeviceStrategy.batch_to_device",),
        "batches: fetching from the loaders": ("train_dataloader_next", "val_next"),
        "checkpoint": ("[Callback]EpochCheckpoint",),
        "other callbacks (epoch line, TensorBoard)": (
            "[Callback]EpochLog",
            "[Callback]TensorBoardSummary",
        ),
    }
    out = {}
    for phase, keys in phases.items():
        total = sum(sum(v) for k, v in durations.items() if any(key in k for key in keys))
        evaluations = "evaluation" in phase or "metrics" in phase  # epoch 0 has one too
        out[phase] = total / (epochs + 1 if evaluations else epochs)
    return out


def report_time(sweep: Path) -> float:
    """Seconds of the report a sweep writes at its end (``losslab-report``), on ``sweep``."""
    import contextlib

    from losslab.read.report import report

    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        start = time.perf_counter()
        report(sweep, out_dir=sweep / "report")
        return time.perf_counter() - start


def section_overhead(ctx: Context) -> dict:
    """The default run's per-epoch and per-run cost on the wall clock, against the hand loop."""
    work = tempfile.mkdtemp(dir=ctx.logdir)
    test_x, test_y = ctx.dm.splits["test"]
    test_x = scale_pixels(test_x)
    splits = [(ctx.x_all, ctx.y_all), (test_x.flatten(1).to(ctx.device), test_y.to(ctx.device))]
    run_command(["trainer.max_epochs=1", "hydra.run.dir=warmup"], work)  # imports, first file read
    reps = []
    for rep in range(ctx.reps):  # each repetition's runs back to back: drift stays out of ratios
        floor = floor_epoch(ctx.x_all, ctx.y_all, 100, "cee", ctx.device)
        floor += floor_eval(MLP().to(ctx.device), splits, CEELoss(), ctx.device)
        run1, _, _ = run_command(["trainer.max_epochs=1", f"hydra.run.dir=r{rep}_1"], work)
        run4, _, _ = run_command(["trainer.max_epochs=4", f"hydra.run.dir=r{rep}_4"], work)
        sweeps = {}  # a sweep of 1 job and one of 5 (seeds), 1 epoch each, without the report
        for jobs in (1, 5):
            seeds = ",".join(map(str, range(jobs)))
            sweep = [
                "-m",
                f"seed={seeds}",
                "trainer.max_epochs=1",
                f"hydra.sweep.dir=s{rep}_{jobs}",
            ]
            sweeps[jobs] = run_command([*sweep, "~hydra.callbacks.report"], work)
        report = report_time(Path(work) / f"s{rep}_5")
        per_epoch = (run4 - run1) / 3
        (wall1, fit1, zero1), (wall5, fit5, zero5) = sweeps[1], sweeps[5]
        per_run = (wall5 - wall1) / 4 - per_epoch  # what one more job of a sweep costs
        reps.append(
            {
                "per_epoch": per_epoch,
                "floor": floor,
                "ratio": per_epoch / floor,
                "fixed_alone": run1 - per_epoch,
                "fixed_sweep": per_run,
                "outside_fit": ((wall5 - fit5) - (wall1 - fit1)) / 4,
                "epoch0": (zero5 - zero1) / 4,
                "fit_rest": ((fit5 - zero5) - (fit1 - zero1)) / 4 - per_epoch,
                "once_a_sweep": wall1 - per_epoch - per_run,
                "report": report,
            }
        )
    med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
    print("overhead: the default run (losslab-train, batch 100, CEE) on the wall clock, the real")
    print(f"entry point called in this process (no interpreter start); medians of {ctx.reps}")
    print(f"  per epoch = (4-epoch run - 1-epoch run) / 3:               {med['per_epoch']:.3f} s")
    print(
        f"  floor = hand loop: an epoch + loss and accuracy of train and test: {med['floor']:.3f} s"
    )
    print(
        f"  fixed cost of a run alone = its wall time minus its epoch:   {med['fixed_alone']:.3f} s"
    )
    print(
        "  fixed cost of a run in a sweep = (5-job sweep - 1-job sweep) / 4 - per epoch: "
        f"{med['fixed_sweep']:.3f} s, of which"
    )
    print(
        f"    outside Trainer.fit (compose, checks, data, model, files): {med['outside_fit']:.3f} s"
    )
    print(f"    epoch 0's evaluation (the untrained model's curve point):  {med['epoch0']:.3f} s")
    print(f"    the rest of Trainer.fit (Lightning's setup, teardown):     {med['fit_rest']:.3f} s")
    print(
        f"  once a sweep: {med['once_a_sweep']:.3f} s (Hydra's start, the sweep's own config, "
        f"its checks), and its report (losslab-report) {med['report']:.3f} s"
    )
    target("per-epoch wall cost <= 1.25x the floor with evaluation, batch 100", med["ratio"], 1.25)
    target("fixed cost per run in a sweep <= 0.5 s", med["fixed_sweep"], 0.5, unit="s")
    breakdown = profile_epochs(ctx) if hasattr(__import__("losslab.train").train, "entry") else {}
    if breakdown:
        print(
            "  where an epoch's time goes (SimpleProfiler, s per epoch; evaluations count epoch 0):"
        )
        for phase, seconds in breakdown.items():
            print(f"    {phase:<52} {seconds:.3f}")
    return {"overhead": {**med, "repetitions": reps, "breakdown": breakdown}}


SECTIONS = {
    "data": section_data,
    "train": section_train,
    "steps": section_steps,
    "threads": section_threads,
    "losses": section_losses,
    "overhead": section_overhead,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sections", nargs="*", metavar="section", help=f"of {list(SECTIONS)} (default: all)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 repetitions, batch sizes 100 and 1024"
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5, --quick 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=os.environ.get("LOSSLAB_DATA_DIR", "data"))
    parser.add_argument("--out", default="bench.json")
    args = parser.parse_args()
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose among {', '.join(SECTIONS)}")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reps = args.reps or (3 if args.quick else 5)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    result: dict = {
        "torch": torch.__version__,
        "lightning": L.__version__,
        "device": f"{device} ({name})",
        "threads": torch.get_num_threads(),
        "reps": reps,
    }
    print(
        f"losslab bench: torch {torch.__version__}, lightning {L.__version__}, device {result['device']}, "
        f"{result['threads']} thread(s), median of {reps} interleaved repetitions\n"
    )
    dm = MNISTDataModule(args.data_dir, download=False)
    dm.setup()
    x_all, y_all = dm.splits["train"]
    x_all = scale_pixels(x_all)  # the hand loop's preloaded normalised tensors
    ctx = Context(
        args,
        device,
        reps,
        [100, 1024] if args.quick else [32, 100, 1024],
        ["cee"] if args.quick else ["cee", "sse"],
        tempfile.mkdtemp(prefix="losslab-bench-"),
        dm,
        x_all.flatten(1).to(device).contiguous(),
        y_all.to(device),
    )
    for section in args.sections or SECTIONS:
        result.update(SECTIONS[section](ctx))
        print()
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

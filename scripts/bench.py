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

Targets are printed with PASS/MISS; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from losslab import CEELoss, SSELoss
from losslab.data import MNIST_MEAN, MNIST_STD, MNISTDataModule
from losslab.models import MLP
from losslab.module import Classifier

warnings.filterwarnings("ignore")
LOSSES = {"cee": CEELoss, "sse": SSELoss}
DEFAULT_STEPS_PER_CALL = 10  # conf/trainer/cpu.yaml: the real path's default
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


def one_epoch_trainer(device, logger, *callbacks: L.Callback, **extra) -> L.Trainer:
    """The Trainer every Lightning contender uses: one epoch, no bar, no summary, no checkpoint."""
    return L.Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=1,
        logger=logger,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **extra,
    )


def canonical_loader(data_dir: str, batch_size: int) -> torch.utils.data.DataLoader:
    """The tutorial pipeline: torchvision's per-sample ToTensor + Normalize, DataLoader collate."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
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
    dm = MNISTDataModule(
        data_dir, batch_size=batch_size, download=False, steps_per_call=steps_per_call
    )
    module = Classifier(
        MLP(),
        LOSSES[loss_name](),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        steps_per_call=steps_per_call,
    )
    timer = EpochTimer()
    logger = L.pytorch.loggers.TensorBoardLogger(logdir, name="bench", default_hp_metric=False)
    trainer = one_epoch_trainer(
        device, logger, timer, num_sanity_val_steps=0, use_distributed_sampler=False
    )
    trainer.fit(module, datamodule=dm)
    return timer.train[0], timer.train[0] + timer.evaluation[0]


class BareModule(L.LightningModule):
    """The least a LightningModule can be: training_step and an optimizer, nothing logged."""

    def __init__(self, loss_name: str) -> None:
        super().__init__()
        self.net, self.loss = MLP(), LOSSES[loss_name]()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss(self.net(x), y)

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

    def datamodule() -> None:
        for batch in dm.train_dataloader():
            dm.on_after_batch_transfer(batch, 0)

    def bare() -> None:
        perm = torch.randperm(len(labels), device=device)
        scale, shift = 1 / (255 * MNIST_STD), MNIST_MEAN / MNIST_STD
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


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sections", nargs="*", default=["data", "train", "steps", "threads", "losses"]
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

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reps = args.reps or (3 if args.quick else 5)
    batch_sizes = [100, 1024] if args.quick else [32, 100, 1024]
    losses = ["cee"] if args.quick else ["cee", "sse"]
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

    # preloaded normalised tensors for the floor
    dm = MNISTDataModule(args.data_dir, download=False)
    dm.setup()
    x_all, y_all = dm.on_after_batch_transfer(dm.splits["train"], 0)
    x_all, y_all = x_all.flatten(1).to(device).contiguous(), y_all.to(device)
    logdir = tempfile.mkdtemp(prefix="losslab-bench-")

    if "data" in args.sections:
        samples = {
            bs: [data_epochs(args.data_dir, bs, device) for _ in range(reps)] for bs in batch_sizes
        }
        print("data: one epoch of 60,000 training images as normalised batches (seconds)")
        print(
            f"{'batch':>6} {'datamodule':>11} {'bare':>8} {'canonical':>10} {'dm/bare':>8} {'canon/dm':>9}"
        )
        result["data"] = []
        for bs, runs in samples.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            row = {
                "batch_size": bs,
                **med,
                "dm_over_bare": med["datamodule"] / med["bare"],
                "canonical_over_dm": med["canonical"] / med["datamodule"],
            }
            result["data"].append(row)
            print(
                f"{bs:>6} {med['datamodule']:>11.3f} {med['bare']:>8.3f} {med['canonical']:>10.2f} "
                f"{row['dm_over_bare']:>8.2f} {row['canonical_over_dm']:>9.1f}"
            )
        row100 = next((r for r in result["data"] if r["batch_size"] == 100), None)
        if row100:
            print(
                f"target: datamodule <= 1.2x bare at batch 100: {row100['dm_over_bare']:.2f}x "
                f"{verdict(row100['dm_over_bare'] <= 1.2)}"
            )
            print(
                f"target: canonical >= 20x datamodule at batch 100: {row100['canonical_over_dm']:.1f}x "
                f"{verdict(row100['canonical_over_dm'] >= 20)}"
            )
        print()

    if "train" in args.sections:
        times: dict[tuple, list] = {}
        for _ in range(reps):
            for bs in batch_sizes:
                for loss in losses:
                    times.setdefault(("floor", bs, loss), []).append(
                        floor_epoch(x_all, y_all, bs, loss, device)
                    )
                    times.setdefault(("bare", bs, loss), []).append(
                        bare_lightning_epoch(args.data_dir, bs, loss, device)
                    )
                    times.setdefault(("losslab", bs, loss), []).append(
                        losslab_epoch(args.data_dir, bs, loss, device, logdir)
                    )
                    times.setdefault(("canonical", bs, loss), []).append(
                        canonical_epoch(args.data_dir, bs, loss, device, logdir)
                    )
        print(
            "train: one epoch of the MLP 784-100-10 with SGD (seconds; samples/s of the training epoch)"
        )
        print(
            f"{'batch':>6} {'loss':>5} {'floor':>7} {'bare L':>7} {'losslab':>8} {'+eval':>7} "
            f"{'canonical':>10} {'samples/s':>10} {'bare/fl':>8} {'ll/floor':>9} {'ll+eval/fl':>11} "
            f"{'canon/ll':>9}"
        )
        result["train"] = []
        for bs in batch_sizes:
            for loss in losses:
                floor = statistics.median(times[("floor", bs, loss)])
                bare = statistics.median(times[("bare", bs, loss)])
                ll = statistics.median(t for t, _ in times[("losslab", bs, loss)])
                ll_eval = statistics.median(t for _, t in times[("losslab", bs, loss)])
                canon = statistics.median(times[("canonical", bs, loss)])
                row = {
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
                result["train"].append(row)
                print(
                    f"{bs:>6} {loss:>5} {floor:>7.3f} {bare:>7.3f} {ll:>8.3f} {ll_eval:>7.3f} {canon:>10.2f} "
                    f"{60000 / ll:>10.0f} {bare / floor:>8.2f} {ll / floor:>9.2f} {ll_eval / floor:>11.2f} "
                    f"{canon / ll:>9.1f}"
                )
        for row in (r for r in result["train"] if r["loss"] == "cee"):
            bs = row["batch_size"]
            if bs in (100, 1024):
                limit = 1.25 if bs == 100 else 1.15
                print(
                    f"target: losslab epoch <= {limit}x floor at batch {bs}: "
                    f"{row['losslab_over_floor']:.2f}x {verdict(row['losslab_over_floor'] <= limit)}"
                )
            if bs == 100:
                print(
                    f"target: epoch + full train/test evaluation <= 1.5x floor at batch 100: "
                    f"{row['losslab_with_eval_over_floor']:.2f}x "
                    f"{verdict(row['losslab_with_eval_over_floor'] <= 1.5)}"
                )
                print(
                    f"target: canonical >= 10x losslab at batch 100: "
                    f"{row['canonical_over_losslab']:.1f}x {verdict(row['canonical_over_losslab'] >= 10)}"
                )
        print()

    if "steps" in args.sections:
        ks = [1, 3, 10, 30]
        step_sizes = [100, 1024] if args.quick else [32, 100, 256, 1024]
        test_x, test_y = dm.on_after_batch_transfer(dm.splits["test"], 0)
        splits = [(x_all, y_all), (test_x.flatten(1).to(device), test_y.to(device))]
        runs: dict[tuple, list] = {}
        for _ in range(reps):
            for bs in step_sizes:
                net, loss_fn = MLP().to(device), CEELoss()
                runs.setdefault(("floor", bs), []).append(
                    floor_epoch(x_all, y_all, bs, "cee", device)
                )
                runs.setdefault(("floor_eval", bs), []).append(
                    floor_eval(net, splits, loss_fn, device)
                )
                for k in ks:
                    runs.setdefault((k, bs), []).append(
                        losslab_epoch(args.data_dir, bs, "cee", device, logdir, steps_per_call=k)
                    )
        print("steps: losslab with K optimizer steps per training step vs the hand loop (CEE)")
        print(
            f"{'batch':>6} {'K':>3} {'hand':>7} {'losslab':>8} {'x hand':>7} "
            f"{'hand+eval':>10} {'ll+eval':>8} {'x hand':>7}"
        )
        result["steps"] = []
        for bs in step_sizes:
            floor = statistics.median(runs[("floor", bs)])
            floor_ev = floor + statistics.median(runs[("floor_eval", bs)])
            for k in ks:
                ll = statistics.median(t for t, _ in runs[(k, bs)])
                ll_ev = statistics.median(t for _, t in runs[(k, bs)])
                row = {
                    "batch_size": bs,
                    "steps_per_call": k,
                    "hand_s": floor,
                    "losslab_s": ll,
                    "over_hand": ll / floor,
                    "hand_with_eval_s": floor_ev,
                    "losslab_with_eval_s": ll_ev,
                    "with_eval_over_hand": ll_ev / floor_ev,
                }
                result["steps"].append(row)
                print(
                    f"{bs:>6} {k:>3} {floor:>7.3f} {ll:>8.3f} {ll / floor:>7.2f} "
                    f"{floor_ev:>10.3f} {ll_ev:>8.3f} {ll_ev / floor_ev:>7.2f}"
                )
        for bs, limit, key in (
            (100, 1.15, "over_hand"),
            (32, 1.25, "over_hand"),
            (100, 1.3, "with_eval_over_hand"),
        ):
            rows = [r for r in result["steps"] if r["batch_size"] == bs]
            if rows:
                best = min(rows, key=lambda r: r[key])
                what = "training" if key == "over_hand" else "training + evaluation"
                print(
                    f"target: {what} <= {limit}x the hand loop at batch {bs}: best K = "
                    f"{best['steps_per_call']}: {best[key]:.2f}x {verdict(best[key] <= limit)}"
                )
        print()

    if "threads" in args.sections and device.type == "cpu":
        per_threads: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(reps):
            for n in per_threads:
                torch.set_num_threads(n)
                per_threads[n].append(losslab_epoch(args.data_dir, 100, "cee", device, logdir)[0])
        torch.set_num_threads(args.threads)
        med = {n: statistics.median(v) for n, v in per_threads.items()}
        result["threads"] = {str(n): v for n, v in med.items()}
        print(
            f"threads: losslab training epoch at batch 100: 1 thread {med[1]:.3f} s, "
            f"2 threads {med[2]:.3f} s (2/1 = {med[2] / med[1]:.2f})\n"
        )

    if "losses" in args.sections:
        result["losses"] = loss_times(device, reps)
        print("losses: forward+backward per call (ms)")
        print(
            f"{'N':>6} {'C':>6} {'F.cross_entropy':>16} {'CEELoss':>8} {'SSELoss':>8} {'CEE/F.ce':>9}"
        )
        for r in result["losses"]:
            ratio = r["CEELoss_ms"] / r["F.cross_entropy_ms"]
            r["cee_over_torch"] = ratio
            print(
                f"{r['N']:>6} {r['C']:>6} {r['F.cross_entropy_ms']:>16.3f} {r['CEELoss_ms']:>8.3f} "
                f"{r['SSELoss_ms']:>8.3f} {ratio:>9.2f}"
            )
        for r in result["losses"]:
            print(
                f"target: CEELoss <= 1.5x F.cross_entropy at N={r['N']}, C={r['C']}: "
                f"{r['cee_over_torch']:.2f}x {verdict(r['cee_over_torch'] <= 1.5)}"
            )
        print()

    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Why we train on a loss and not on the accuracy: move one weight, watch both.

Takes a trained MLP (a losslab-train checkpoint, or one trained here in a few seconds), moves a
single output-layer weight across a range, and measures on a fixed batch of test images:

- the CEE loss: a smooth curve, its derivative is non-zero almost everywhere, so it tells the
  optimizer which way to move the weight and by how much;
- the accuracy: a staircase (it only changes when an image crosses a decision boundary), so its
  derivative is exactly 0 almost everywhere and infinite at the steps: no signal to learn from.

Prints the fraction of points where each numerical derivative is exactly 0 and writes the figure
(loss and accuracy on top, their derivatives below). Run it:

    python scripts/loss_vs_accuracy.py                        # trains a small model (seconds)
    python scripts/loss_vs_accuracy.py --ckpt logs/train/runs/<time>/checkpoints/last.ckpt
    python scripts/loss_vs_accuracy.py --points 101 --images 200 --train-images 1000  # tiny

A checkpoint brings its run's own config: its network (sizes, activation) is rebuilt from the
checkpoint alone (``Classifier.load_from_checkpoint``), and the images are scaled as that run
scaled them (``data.normalize``). The figure goes to ``--out``: ``docs/loss_vs_accuracy.png``
for the model trained here (docs/loss_vs_accuracy.png), ``loss_vs_accuracy.png`` in the current folder
for a checkpoint.

The helpers ``load_mnist``, ``train_quickly`` and ``load_checkpoint`` are shared with
``scripts/gradients.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from losslab import CEELoss, cee_loss
from losslab.lit.classifier import Classifier, scale_pixels
from losslab.lit.data import MNISTDataModule
from losslab.models import MLP
from losslab.read.style import loss_color
from losslab.run.checkpoints import read_checkpoint

torch.set_num_threads(1)

# -----------------------------------------------------------------------------
# shared helpers: data, a quickly trained model, a model from a checkpoint


def load_mnist(
    data_dir: str | Path, train_images: int, normalize: bool = True
) -> tuple[tuple[Tensor, Tensor], ...]:
    """``((x_train, y_train), (x_test, y_test))``: float images ``(N, 1, 28, 28)`` (scaled to
    [0, 1], standardised if ``normalize``), a seeded class-balanced subset of ``train_images``
    training images and the official 10k test images."""
    dm = MNISTDataModule(data_dir, download=False, train_size=train_images)
    dm.setup()
    # the raw pixels scaled as a losslab model scales its input
    return tuple(
        (scale_pixels(x, normalize), y) for x, y in (dm.splits[s] for s in ("train", "test"))
    )


def train_quickly(x: Tensor, y: Tensor, epochs: int = 1, lr: float = 0.1, seed: int = 0) -> MLP:
    """An MLP 784-100-10 trained with CEE and plain SGD (batch 100): a few seconds on a CPU.

    Its starting point is ``torch.manual_seed(seed); MLP()``, the "untrained" model."""
    torch.manual_seed(seed)
    net, loss_fn = MLP(), CEELoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(100):
            loss = loss_fn(net(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()


def load_checkpoint(path: str | Path) -> tuple[MLP, bool]:
    """The network of a losslab-train checkpoint, rebuilt with its run's own config, and whether
    its module standardises the images (its own input scaling, ``normalize``; a checkpoint from
    before the module scaled: its data module's setting)."""
    read_checkpoint(path, "--ckpt")  # a file torch loads, with a state_dict: else one line
    try:
        module = Classifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except (KeyError, TypeError) as err:
        raise SystemExit(
            f"--ckpt {path}: not a checkpoint that losslab-train wrote ({err!r})"
        ) from err
    return module.net.eval(), module.normalize


def model_and_data(args: argparse.Namespace) -> tuple[MLP, tuple[tuple[Tensor, Tensor], ...]]:
    """The model (the checkpoint's, or one trained here) and the data scaled as it was trained."""
    if args.ckpt:
        net, normalize = load_checkpoint(args.ckpt)
        return net, load_mnist(args.data_dir, args.train_images, normalize)
    data = load_mnist(args.data_dir, args.train_images)
    return train_quickly(*data[0], epochs=args.epochs, seed=args.seed), data


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=os.environ.get("LOSSLAB_DATA_DIR") or "data")
    parser.add_argument("--ckpt", help="losslab-train checkpoint; default: train a model here")
    parser.add_argument("--train-images", type=int, default=10000, help="to train on")
    parser.add_argument("--epochs", type=int, default=1, help="of training")
    parser.add_argument("--seed", type=int, default=0)


# -----------------------------------------------------------------------------
# the demonstration


def sweep_weight(
    net: MLP, x: Tensor, y: Tensor, c: int, j: int, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CEE loss (mean) and accuracy on ``(x, y)`` with output weight ``W[c, j]`` set to each of
    ``values``, everything else fixed."""
    *body, head = net.layers
    with torch.no_grad():
        # only the output layer changes: compute the hidden features once; float64 so that
        # two nearby loss values never round to the same number
        features = torch.nn.Sequential(*body)(x).double()
        weight, bias = head.weight.double().clone(), head.bias.double()
        losses, accuracies = [], []
        for v in values:
            weight[c, j] = v
            logits = features @ weight.T + bias
            losses.append(cee_loss(logits, y).item())
            # an exact ratio of counts: equal counts give bit-equal accuracies
            accuracies.append((logits.argmax(1) == y).sum().item() / len(y))
    return np.array(losses), np.array(accuracies)


def plot(values, losses, accuracies, d_loss, d_acc, w0, c, j, n_images) -> Figure:
    zero_acc, zero_loss = np.mean(d_acc == 0), np.mean(d_loss == 0)
    fig = Figure(figsize=(8, 9), layout="constrained")
    top, mid, bottom = fig.subplots(3, 1, sharex=True, height_ratios=[1.4, 1, 1])

    cee = loss_color("cee")  # the loss in its colour; the accuracy, no loss's, in black
    top.plot(values, losses, color=cee, label="CEE loss (left axis)")
    top.set_ylabel("CEE loss (mean)", color=cee)
    right = top.twinx()
    right.plot(
        values, accuracies, color="black", drawstyle="steps-mid", label="accuracy (right axis)"
    )
    right.set_ylabel("accuracy")
    for ax in (top, mid, bottom):
        ax.axvline(w0, color="gray", linestyle=":", label="trained value" if ax is top else None)
    handles = top.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside upper center", ncols=3)
    top.set_title(
        f"one weight moved, {n_images} MNIST test images: smooth loss, staircase accuracy"
    )

    mid.plot(values, d_loss, color=cee)
    mid.axhline(0, color="black", linewidth=0.5)
    mid.set_ylabel("d loss / dw")
    mid.set_title(f"derivative of the loss: exactly 0 at {zero_loss:.1%} of the points")

    bottom.plot(values, d_acc, color="black")
    bottom.set_ylabel("d accuracy / dw")
    bottom.set_title(
        f"derivative of the accuracy: exactly 0 at {zero_acc:.1%} of the points, spikes at steps"
    )
    bottom.set_xlabel(f"output-layer weight W[{c}, {j}] (hidden unit {j} -> class {c})")
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_args(parser)
    parser.add_argument("--images", type=int, default=500, help="test images in the batch")
    parser.add_argument("--points", type=int, default=401, help="weight values")
    parser.add_argument("--span", type=float, default=0.5, help="weight moves by +-span")
    parser.add_argument("--out", help="default: docs/loss_vs_accuracy.png, ./ with --ckpt")
    args = parser.parse_args(argv)
    out = args.out or ("loss_vs_accuracy.png" if args.ckpt else "docs/loss_vs_accuracy.png")

    start = time.perf_counter()
    net, (_, (x_test, y_test)) = model_and_data(args)
    x, y = x_test[: args.images], y_test[: args.images]

    # The weight: from the hidden unit most active on this batch (so moving it changes many
    # logits) to the class it votes for most strongly.
    *body, head = net.layers
    with torch.no_grad():
        j = int(torch.nn.Sequential(*body)(x).mean(0).argmax())
        c = int(head.weight[:, j].argmax())
        w0 = head.weight[c, j].item()
    values = w0 + np.linspace(-args.span, args.span, args.points)
    losses, accuracies = sweep_weight(net, x, y, c, j, values)
    d_loss, d_acc = np.gradient(losses, values), np.gradient(accuracies, values)

    with torch.no_grad():
        logits = net(x)
    print(
        f"the model: CEE loss {cee_loss(logits, y).item():.4f}, accuracy "
        f"{(logits.argmax(1) == y).float().mean().item():.4f} on the batch"
    )
    print(f"weight W[{c}, {j}] = {w0:.4f} moved over +-{args.span} in {args.points} points")
    print(f"test batch: {len(y)} images (accuracy steps of 1/{len(y)} = {1 / len(y):.4g})")
    print(f"loss     {losses.min():.4f} .. {losses.max():.4f}")
    print(
        f"accuracy {accuracies.min():.4f} .. {accuracies.max():.4f}, "
        f"{np.count_nonzero(np.diff(accuracies))} steps"
    )
    print("fraction of points where the numerical derivative is exactly 0:")
    print(f"  accuracy {np.mean(d_acc == 0):.4f}")
    print(f"  loss     {np.mean(d_loss == 0):.4f}")

    fig = plot(values, losses, accuracies, d_loss, d_acc, w0, c, j, len(y))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

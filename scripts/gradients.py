"""How hard SSE and CEE push: the gradient of each loss with respect to the logits.

For logits z, softmax y and one-hot target t (C classes, one sample):

    CEE:  dE/dz = y - t
    SSE:  dE/dz = J^T (y - t),  J = dy/dz = diag(y) - y y^T

So SSE's gradient is CEE's pushed through the softmax Jacobian, which shrinks it twice over:

- at a uniform start (z = 0, y = 1/C) J (y - t) = (1/C)(y - t), because y - t sums to 0:
  g_SSE = g_CEE / C exactly, an SSE network starts learning C times slower;
- on a confident mistake (a wrong class saturates, y -> one-hot) J -> 0: g_SSE vanishes while
  |g_CEE| -> sqrt(2). SSE stops correcting exactly the samples that most need it. (On the way
  the ratio first rises a little, to ~0.15 near s = 2.7, where the wrong class holds about half
  the probability and the softmax is steepest; past that it falls like e^-s.)

This script measures both on real MNIST test images, for an untrained and a trained MLP,
checks g_SSE = g_CEE / C at z = 0, and follows the ratio |g_SSE| / |g_CEE| as a wrong class's
score s grows. Gradients are taken with reduction="sum", so each row is one sample's gradient,
not divided by the batch size. Prints a table and writes the figure. Run it:

    python scripts/gradients.py                          # trains a small model (seconds)
    python scripts/gradients.py --ckpt logs/train/runs/<time>/checkpoints/last.ckpt
    python scripts/gradients.py --images 200 --train-images 1000     # tiny
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from loss_vs_accuracy import add_model_args, model_and_data  # scripts/, shared
from matplotlib.figure import Figure
from torch import Tensor

from losslab import cee_loss, sse_loss
from losslab.models import MLP
from losslab.read.style import loss_color

torch.set_num_threads(1)


def logit_gradients(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(g_SSE, g_CEE)``: per-sample gradients ``dE/dz`` of shape ``(N, C)``, in float64."""
    z = logits.detach().double().requires_grad_()
    (g_sse,) = torch.autograd.grad(sse_loss(z, y, reduction="sum"), z)
    (g_cee,) = torch.autograd.grad(cee_loss(z, y, reduction="sum"), z)
    return g_sse, g_cee


def plot(norms: dict, s: np.ndarray, sat_sse: Tensor, sat_cee: Tensor, C: int) -> Figure:
    fig = Figure(figsize=(13, 5), layout="constrained")
    left, right = fig.subplots(1, 2)

    # per-sample norms span 6 decades on a trained model: log-spaced bins, tiny norms clipped
    bins = np.logspace(-6, math.log10(2), 61)
    for (model, loss), g in norms.items():
        left.hist(
            g.clamp(bins[0], bins[-1]).numpy(),
            bins=bins,
            histtype="step",
            linewidth=1.5,
            color=loss_color(loss.lower()),  # the project's colour of the loss
            linestyle="--" if model == "untrained" else "-",
            label=f"{loss}, {model} model (mean {g.mean():.3g})",
        )
    # log counts: the untrained model's norms all sit in one or two bins, the trained ones spread
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("per-sample gradient norm |dE/dz| w.r.t. the logits (below 1e-6: first bin)")
    left.set_ylabel("number of test images (log scale)")
    left.set_title(f"MNIST test images ({len(g)}): SSE pushes less than CEE")
    left.legend(loc="upper left", fontsize="small")

    ratio = (sat_sse.norm(dim=1) / sat_cee.norm(dim=1)).numpy()
    right.semilogy(s, ratio, color="black", linewidth=2, label="|g_SSE| / |g_CEE|")
    cee, sse = loss_color("cee"), loss_color("sse")
    right.semilogy(s, sat_cee.norm(dim=1).numpy(), color=cee, linestyle="--", label="|g_CEE|")
    right.semilogy(s, sat_sse.norm(dim=1).numpy(), color=sse, linestyle="--", label="|g_SSE|")
    right.axhline(1 / C, color="gray", linestyle=":", label=f"1/C = {1 / C:g} (uniform start)")
    right.axhline(math.sqrt(2), color=cee, linewidth=0.5, label="sqrt(2): CEE's limit")
    right.set_xlabel("score s of one wrong class (logits z = s * e_wrong, the others 0)")
    right.set_ylabel("gradient norm, or ratio")
    right.set_title("a confident mistake: CEE keeps pushing, SSE's gradient vanishes")
    right.legend(loc="lower left", fontsize="small")
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_args(parser)
    parser.add_argument("--images", type=int, default=1000, help="test images")
    parser.add_argument("--smax", type=float, default=15.0, help="largest wrong-class score")
    parser.add_argument("--out", help="default: docs/gradients.png, ./gradients.png with --ckpt")
    args = parser.parse_args(argv)
    out = args.out or ("gradients.png" if args.ckpt else "docs/gradients.png")

    start = time.perf_counter()
    trained, (_, (x_test, y_test)) = model_and_data(args)
    x, y = x_test[: args.images], y_test[: args.images]
    torch.manual_seed(args.seed)
    models = {"untrained": MLP(), "trained": trained}

    rows, norms = [], {}
    for name, net in models.items():
        with torch.no_grad():
            logits = net(x)
        accuracy = (logits.argmax(1) == y).double().mean().item()
        g_sse, g_cee = logit_gradients(logits, y)
        norms[name, "SSE"], norms[name, "CEE"] = g_sse.norm(dim=1), g_cee.norm(dim=1)
        rows.append((f"{name} model (acc {accuracy:.3f})", g_sse, g_cee))
    C = logits.shape[1]

    # Uniform start: all-zero logits (what a network with a zeroed last layer outputs).
    g_sse, g_cee = logit_gradients(torch.zeros(len(y), C), y)
    uniform_diff = (g_sse - g_cee / C).abs().max().item()
    rows.append(("uniform start, z = 0", g_sse, g_cee))

    # Saturation: one wrong class (1) gets score s, the target is another class (0).
    s = np.linspace(0, args.smax, 301)
    z = torch.zeros(len(s), C)
    z[:, 1] = torch.from_numpy(s)
    sat_sse, sat_cee = logit_gradients(z, torch.zeros(len(s), dtype=torch.long))
    for i in range(0, len(s), 50):
        rows.append((f"saturated, s = {s[i]:4.1f}", sat_sse[i : i + 1], sat_cee[i : i + 1]))

    print(f"{len(y)} MNIST test images, C = {C} classes; per-sample gradient norms w.r.t. the")
    print('logits (reduction="sum"), mean over the images; ratio = mean |g_SSE| / mean |g_CEE|')
    print(f"{'case':<30} {'|g_SSE|':>10} {'|g_CEE|':>10} {'ratio':>10}")
    for label, g_sse, g_cee in rows:
        a, b = g_sse.norm(dim=1).mean().item(), g_cee.norm(dim=1).mean().item()
        print(f"{label:<30} {a:>10.4g} {b:>10.4g} {a / b:>10.4g}")
    print(f"uniform start: max |g_SSE - g_CEE / C| = {uniform_diff:.3g} (float64)")
    ratio = sat_sse.norm(dim=1) / sat_cee.norm(dim=1)
    peak = int(ratio.argmax())
    print(
        f"saturation: the ratio peaks at {ratio[peak]:.4f} (s = {s[peak]:.2f}), then falls to "
        f"{ratio[-1]:.3g} at s = {s[-1]:g}"
    )

    fig = plot(norms, s, sat_sse, sat_cee, C)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

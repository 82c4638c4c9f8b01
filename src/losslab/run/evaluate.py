"""``losslab-eval <checkpoint or run folder>``: every metric of a checkpoint on the test split
(and the validation split, when its run held one out), with the run's own config.

The checkpoint rebuilds everything alone: the module from its hyperparameters (the configs of
the net, the loss, the optimizer) with ``Classifier.load_from_checkpoint``, the data from the data
module's (``MNISTDataModule.load_from_checkpoint``: the same split seed, validation split, label
noise and normalisation). The evaluation is the one the epoch curves use, so on a run's last
checkpoint it gives the run's last logged numbers. It reads the run and writes elsewhere:
``eval.json`` and ``eval.md`` in ``--out`` (default ``<log dir>/eval/<time>``).

    losslab-eval logs/train/runs/<time>                       # its checkpoints/last.ckpt
    losslab-eval logs/train/runs/<time>/checkpoints/epoch=3-step=1800.ckpt --out eval3
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from losslab.errors import UsageError, check_out_dir, user_main
from losslab.lit.classifier import Classifier
from losslab.lit.data import MNISTDataModule
from losslab.names import KINDS
from losslab.read.tables import markdown_table
from losslab.run.checkpoints import find_checkpoint, read_checkpoint

__all__ = ["evaluate", "main"]


def _device(name: str) -> torch.device:
    """``--device``: a torch device that is there."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(
            f"--device={name}: not a torch device ({' '.join(str(err).split())}); e.g. cpu, "
            f"cuda, cuda:1"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device={name}: no CUDA GPU is visible here; use --device cpu")
    return device


def evaluate(
    checkpoint: Path, data_dir: str | None = None, device: str = "cpu"
) -> dict[str, dict[str, float]]:
    """``{split: {"acc": ..., "loss": ..., ...}}`` for ``test`` and, when the run held one out,
    ``val``. ``data_dir``: where MNIST lies (default: where the run read it, else
    ``$LOSSLAB_DATA_DIR``)."""
    device = _device(str(device))
    contents = read_checkpoint(checkpoint, "checkpoint")
    if "hyper_parameters" not in contents or "datamodule_hyper_parameters" not in contents:
        raise UsageError(
            f"{checkpoint}: the checkpoint holds no module or data config (hyper_parameters); "
            f"losslab-eval needs a checkpoint that losslab-train wrote"
        )
    saved_dir = contents["datamodule_hyper_parameters"]["data_dir"]
    if data_dir is None:
        found = Path(saved_dir, "MNIST", "raw").is_dir()
        data_dir = saved_dir if found else os.environ.get("LOSSLAB_DATA_DIR", saved_dir)
    module = Classifier.load_from_checkpoint(checkpoint, map_location=device, weights_only=True)
    datamodule = MNISTDataModule.load_from_checkpoint(
        checkpoint, data_dir=data_dir, download=False, weights_only=True
    )
    try:
        datamodule.prepare_data()
    except FileNotFoundError as err:
        raise UsageError(
            f"{' '.join(str(err).split())} Pass --data-dir <the folder that holds MNIST/raw/> "
            f"(or set LOSSLAB_DATA_DIR)"
        ) from err
    except RuntimeError as err:
        raise UsageError(" ".join(str(err).split())) from err
    datamodule.setup()
    module.eval()
    out = {}
    with torch.no_grad():
        for split in ("val", "test"):
            if split not in datamodule.splits:
                continue
            for batch in datamodule.eval_dataloader(split):  # raw images: the module scales them
                module._update_metrics(split, *(t.to(device) for t in batch))
            values, _ = module.eval_metrics.compute(split)
            out[split] = {key.split("/")[0]: value.item() for key, value in values.items()}
    return out


def _write(results: dict[str, dict[str, float]], checkpoint: Path, out_dir: Path) -> str:
    kinds = [k for k in KINDS if any(k in v for v in results.values())]
    table = markdown_table(
        ["split", *kinds],
        [[split, *(f"{values[k]:.4f}" for k in kinds)] for split, values in results.items()],
        [True, *([False] * len(kinds))],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"checkpoint": str(checkpoint.resolve()), "metrics": results}
    (out_dir / "eval.json").write_text(json.dumps(record, indent=1) + "\n")
    (out_dir / "eval.md").write_text(f"# losslab-eval: {checkpoint}\n\n{table}\n")
    return table


def main(argv: list[str] | None = None) -> int:
    """``losslab-eval PATH [--out DIR] [--data-dir DIR] [--device cpu]``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="losslab-eval",
        description="Every metric of a checkpoint on test (and val), with its run's own config.",
    )
    parser.add_argument("path", type=Path, help="a checkpoint (.ckpt) or a run folder")
    parser.add_argument("--out", type=Path, help="folder for eval.json, eval.md")
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (default: the run's)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    args = parser.parse_args(argv)
    time = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    out_dir = args.out or Path(os.environ.get("LOSSLAB_LOG_DIR", "logs")) / "eval" / time

    def run() -> None:
        check_out_dir(out_dir, "--out")
        checkpoint = find_checkpoint(args.path, "checkpoint")
        table = _write(evaluate(checkpoint, args.data_dir, args.device), checkpoint, out_dir)
        print(f"{table}\nlosslab-eval: eval.json, eval.md in {out_dir}")

    return user_main("losslab-eval", run)


if __name__ == "__main__":
    raise SystemExit(main())

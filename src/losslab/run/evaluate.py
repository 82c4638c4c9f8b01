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
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from losslab.errors import UsageError
from losslab.lit.classifier import Classifier, read_checkpoint
from losslab.lit.data import MNISTDataModule
from losslab.names import KINDS
from losslab.read.tables import markdown_table
from losslab.run.rundir import RunDir

__all__ = ["evaluate", "main"]


def find_checkpoint(path: Path) -> Path:
    """The checkpoint ``path`` names: itself, or a run folder's ``checkpoints/last.ckpt``."""
    if path.is_dir():
        checkpoint = RunDir(path).checkpoint()
        if checkpoint is None:
            raise UsageError(
                f"{path}: this folder holds no checkpoint (checkpoints/last.ckpt); pass a run "
                f"folder that losslab-train wrote, or a .ckpt file"
            )
        return checkpoint
    if not path.exists():
        raise UsageError(f"{path}: no such checkpoint file or run folder")
    return path


def evaluate(
    checkpoint: Path, data_dir: str | None = None, device: str = "cpu"
) -> dict[str, dict[str, float]]:
    """``{split: {"acc": ..., "loss": ..., ...}}`` for ``test`` and, when the run held one out,
    ``val``. ``data_dir``: where MNIST lies (default: where the run read it, else
    ``$LOSSLAB_DATA_DIR``)."""
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
    except (FileNotFoundError, RuntimeError) as err:
        raise UsageError(" ".join(str(err).split())) from err
    datamodule.setup()
    module.eval()
    out = {}
    with torch.no_grad():
        for split in ("val", "test"):
            if split not in datamodule.splits:
                continue
            for batch in datamodule.eval_dataloader(split):
                batch = datamodule.scale(*(t.to(device) for t in batch))
                module._update_metrics(split, *batch)
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
    try:
        checkpoint = find_checkpoint(args.path)
        results = evaluate(checkpoint, args.data_dir, args.device)
    except UsageError as err:
        print(f"losslab-eval: error: {err}", file=sys.stderr)
        return 2
    time = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    log_dir = Path(os.environ.get("LOSSLAB_LOG_DIR", "logs"))
    out_dir = args.out or log_dir / "eval" / time
    table = _write(results, checkpoint, out_dir)
    print(f"{table}\nlosslab-eval: eval.json, eval.md in {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

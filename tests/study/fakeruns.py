"""Study stage runs built by hand, as losslab-train leaves them: curves, result, resolved config,
group choices and (optionally) the validation predictions. For the tests of losslab.study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from conftest import write_run

from losslab.run.rundir import RunDir


def stage_run(
    folder: Path,
    loss: str,
    lr: float,
    seed: int,
    value: Any,
    *,
    key: str = "data.batch_size",
    val: list[float] | None = None,
    test: list[float] | None = None,
    curves: dict[str, list[float]] | None = None,
    status: str = "ok",
    hits: list[bool] | None = None,
    name: str | None = None,
    rank: int | None = None,
) -> Path:
    """One run of a study stage: ``val`` and ``test`` are its ``acc/val`` / ``acc/test`` at
    epochs 0, 1, ...; ``hits`` its last evaluation's right/wrong validation images."""
    group, leaf = key.split(".")
    config: dict[str, Any] = {
        "data": {"batch_size": 100, "label_noise": 0.0, "val_size": 1000},
        "optimizer": {"_target_": "torch.optim.SGD", "lr": lr},
        "seed": seed,
    }
    config.setdefault(group, {})[leaf] = value
    if rank is not None:  # a final run: which of its cell's candidates it trains
        config["study"] = {"lr_rank": rank}
    all_curves = dict(curves or {})
    if val is not None:
        all_curves["acc/val"] = val
    if test is not None:
        all_curves["acc/test"] = test
    hparams = {"loss": loss, "lr": lr, "seed": seed, "status": status}
    name = name or f"loss={loss},{key}={value},optimizer.lr={lr},seed={seed}"
    overrides = [f"loss={loss}", f"{key}={value}", f"optimizer.lr={lr}", f"seed={seed}"]
    path = write_run(folder / name, all_curves, hparams, overrides)
    run = RunDir(path)
    hydra = yaml.safe_dump({"hydra": {"runtime": {"choices": {"loss": loss}}}})
    run.write_config(yaml.safe_dump(config), config, hydra, overrides)
    if hits is not None:
        run.write_hits(len(val or [0]) - 1, {"val": hits})
    return path

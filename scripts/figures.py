"""Every figure under docs/, made again from the runs it shows (``make figures``).

The two studies are the slow part and are not run here: run ``make study`` and
``make study-noise`` first (about 15 minutes each); this script refuses without their verdicts.
It then trains what the other figures show (about 2 minutes on one CPU thread), reports it, draws
the two demonstrations and takes the TensorBoard screenshots (headless Chromium; without it the
three screenshots are left as they are, and the script says so and exits 2):

    docs/reliability.png        logs/study/reliability.png (make study)
    docs/noise.png              logs/study-noise/noise.png (make study-noise)
    docs/noise_tensorboard.png  the study's view of its fixed arm at label noise 0.4
    docs/hparams.png            the HPARAMS table of the fair study's final stage
    docs/loss_vs_batch.png      losslab-train experiment=loss_vs_batch, its report
    docs/overfit.png            losslab-train experiment=overfit, its report
    docs/tensorboard.png        the same run's Overfitting charts (CUSTOM SCALARS)
    docs/gradients.png          scripts/gradients.py
    docs/loss_vs_accuracy.png   scripts/loss_vs_accuracy.py

The runs it trains go to ``logs/figures/`` (replaced on every call); nothing here names a path of
this machine, so the figures show none.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from losslab.study.catalogue import Catalogue
from losslab.study.views import URL, views

BIN = Path(sys.executable).parent
SCRIPTS = Path(__file__).resolve().parent
NOISE_VIEW = "label noise 0.4"  # the fixed arm's view in docs/noise_tensorboard.png


def run(*command: str | Path) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run([str(c) for c in command], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=Path, default=Path("logs"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    logs, docs = args.logs, args.docs
    study, noise = logs / "study", logs / "study-noise"
    missing = [d for d in (study, noise) if not (d / "verdict.md").is_file()]
    if missing:
        print(
            f"figures.py: no verdict in {', '.join(map(str, missing))}: run make study and "
            f"make study-noise first (about 15 minutes each)",
            file=sys.stderr,
        )
        return 1
    docs.mkdir(exist_ok=True)
    shutil.copy(study / "reliability.png", docs / "reliability.png")
    shutil.copy(noise / "noise.png", docs / "noise.png")

    made = logs / "figures"
    shutil.rmtree(made, ignore_errors=True)
    sweep, single = made / "loss_vs_batch", made / "overfit"
    run(BIN / "losslab-train", "experiment=loss_vs_batch", f"hydra.sweep.dir={sweep}")
    run(BIN / "losslab-report", sweep)
    shutil.copy(sweep / "curves.png", docs / "loss_vs_batch.png")
    run(BIN / "losslab-train", "experiment=overfit", f"hydra.run.dir={single}")
    run(BIN / "losslab-report", single)
    shutil.copy(single / "curves.png", docs / "overfit.png")
    run(sys.executable, SCRIPTS / "gradients.py", "--out", docs / "gradients.png")
    run(sys.executable, SCRIPTS / "loss_vs_accuracy.py", "--out", docs / "loss_vs_accuracy.png")

    catalogue = Catalogue.load(noise)
    fixed = dict(next(pages for command, pages in views(noise, catalogue) if "fixed" in command))
    shots = [
        (noise / "fixed", ["--view", fixed[NOISE_VIEW].removeprefix(URL)], "noise_tensorboard"),
        (study / "final", ["--tab", "hparams", "--window-size", "2000,900"], "hparams"),
        (single, ["--tab", "custom_scalars", "--window-size", "1600,1000"], "tensorboard"),
    ]
    for folder, view, name in shots:
        out = docs / f"{name}.png"
        code = subprocess.run(
            [sys.executable, SCRIPTS / "screenshot.py", folder, *view, "--out", out]
        ).returncode
        if code:
            return code
    print(f"figures.py: every figure in {docs} made again")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``losslab-study``: the fair verdict (``make study``) and the label-noise study
(``make study-noise``), each in one command.

Both follow one protocol, each stage reading the previous one's files:

1. **tune** (a sweep, ``losslab-train experiment=<study>_tune``): every loss x compared value
   (batch size, or label-noise rate) over a log-spaced lr grid, with the **tuning seeds**, scored
   on a validation split held out of the training images (noisy too, in the noise study: a real
   user has only noisy labels). The test set chooses nothing;
2. **choose** (:func:`losslab.study.candidates.choose`): per loss and value, the ``--top-k`` lrs
   with the best mean final validation accuracy, and any lr tied with the k-th of them (the
   **candidates**), near-ties flagged: ``tune/candidates.yaml``, ``tune/candidates.md``;
3. **final** (``experiment=<study>_final``): every candidate with the **final seeds**, which are
   never tuning seeds; each seed keeps the candidate its own validation split prefers
   (:mod:`losslab.study.selection`, ``final/selection.yaml``), and is reported on the test set;
4. **fixed** (the noise study, ``experiment=noise_fixed``): each loss at the lr its seed chose on
   clean labels, held fixed as the noise grows;
5. **verdict** (:func:`losslab.study.verdict.verdict`): paired comparisons by seed, Holm over each
   family, equivalence (TOST) within a margin fixed before the run (``--margin``, default 0.5
   accuracy points), a tuned word held at every lr a loss's seeds kept, the detectable
   difference and the seeds that would decide.

What the study compares (losses, key, values, reference, arms, metrics) is saved as
``<study>/study.yaml`` (:class:`~losslab.study.catalogue.Catalogue`); ``choose`` and ``verdict``
read it. An interrupted study started again with the same command goes on where it stopped (the
sweeper skips finished jobs); one started with other settings into the same folder is refused by
the sweeper before anything runs (``--retrain`` trains the changed jobs again). Its defaults are
the sweeps of its experiment configs (``conf/experiment/<study>_tune.yaml``, ``_final.yaml``).

    losslab-study run                              # the fair verdict, into logs/study
    losslab-study noise                            # label noise, into logs/study-noise
    losslab-study run --dir logs/s2 --losses cee,sse --batch-sizes 100 --seeds 0,1,2 \\
        trainer.max_epochs=3                       # any losslab-train override goes to every run
    losslab-study run --config-dir my_conf --losses cee,gce   # a loss of your own
    losslab-study choose logs/study
    losslab-study verdict logs/study
"""

from __future__ import annotations

import argparse
import importlib.resources
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from losslab.errors import user_main
from losslab.study.candidates import choose
from losslab.study.catalogue import ARMS, MARGIN, Catalogue, StudyError, check_margin
from losslab.study.selection import choose_per_seed, drop_stale, stage_runs, write_selection
from losslab.study.verdict import verdict

__all__ = ["STUDIES", "Study", "main", "run"]


def _positive(v: float) -> bool:
    """every value must be > 0"""
    return v > 0


def _seed(v: int) -> bool:
    """every seed must be in [0, 2**32)"""
    return 0 <= v < 2**32


def _noise(v: float) -> bool:
    """every label-noise rate must be in [0, 1)"""
    return 0 <= v < 1


@dataclass(frozen=True)
class Study:
    """A study's definition: its experiments (``<experiment>_tune``, ``_final``, ``_fixed`` in
    ``conf/experiment``, whose sweeps are its defaults), folder, the key it compares the losses
    at (with its flag, label, type and check), the default reference loss (``"first"``: the first
    of ``--losses``; None: every pair), its default arms, and the clean value the fixed arm takes
    its lrs from (None: no fixed arm)."""

    experiment: str
    folder: str
    key: str
    flag: str
    label: str
    kind: type
    check: Callable[[Any], bool]
    reference: str | None
    arms: tuple[str, ...]
    metrics: dict[str, tuple[str, ...]]
    clean: Any = None
    title: str = ""


STUDIES = {
    "run": Study(
        "study", "logs/study", "data.batch_size", "--batch-sizes", "batch size", int, _positive,
        "first", ("tuned",), {"tuned": ("test_acc",)},
        title="each loss at its own lr, per batch size",
    ),
    "noise": Study(
        "noise", "logs/study-noise", "data.label_noise", "--noise", "label noise", float, _noise,
        None, ("tuned", "fixed"),
        {"tuned": ("test_acc", "test_at_best"), "fixed": ("test_acc", "test_at_best", "memorized")},
        clean=0.0,
        title="each loss at its own lr, per label-noise rate, and at its clean-label lr",
    ),
}  # fmt: skip

# overrides a study sets itself: given on the command line, they would replace its grid
REFUSED_OVERRIDES = {
    "data.val_size=0": "the study chooses on a validation split",
    "hydra.sweep.dir=": "use --dir",
    "seed=": "use --tune-seeds and --seeds",
    "loss=": "use --losses",
    "optimizer.lr=": "use --lrs",
    "study.lr_rank=": "use --top-k",
    "study.stage=": "the study sets each stage",
}
CONF = importlib.resources.files("losslab") / "conf" / "experiment"


def defaults(study: Study) -> dict[str, str]:
    """The study's default lists: the sweeps of its experiment configs (one place each)."""
    tune = yaml.safe_load((CONF / f"{study.experiment}_tune.yaml").read_text())
    final = yaml.safe_load((CONF / f"{study.experiment}_final.yaml").read_text())
    t, f = tune["hydra"]["sweeper"]["params"], final["hydra"]["sweeper"]["params"]
    return {
        "losses": str(t["loss"]),
        "values": str(t[study.key]),
        "lrs": str(t["optimizer.lr"]),
        "tune_seeds": str(t["seed"]),
        "seeds": str(f["seed"]),
        "top_k": str(len(str(f["study.lr_rank"]).split(","))),
    }


def _values(flag: str, text: str, kind: type, check: Callable[[Any], bool]) -> list[Any]:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise StudyError(
            f"{flag}={text}: expected a comma-separated list of {kind.__name__}s"
        ) from err
    if not values:
        raise StudyError(f"{flag}={text}: give at least one value")
    if not all(check(v) for v in values):
        raise StudyError(f"{flag}={text}: {check.__doc__}")
    return values


def _train(args: list[str], stage: str) -> None:
    command = [sys.executable, "-m", "losslab.train", *args]
    print(f"\nlosslab-study: {stage}: {' '.join(['losslab-train', *args])}", flush=True)
    status = subprocess.run(command, check=False).returncode
    if status != 0:
        raise SystemExit(status)


def _listed(values: list[Any]) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def plan(study: Study, options: dict[str, Any], overrides: list[str]) -> Catalogue:
    """The catalogue of the study asked for; every bad setting refused in one line, before
    anything runs."""
    given = {**defaults(study), **{k: v for k, v in options.items() if v is not None}}
    check_margin(float(given.get("margin", MARGIN)))
    losses = [s.strip() for s in str(given["losses"]).split(",") if s.strip()]
    if not losses or len(set(losses)) != len(losses):
        raise StudyError(
            f"--losses={given['losses']}: give distinct loss config names, e.g. cee,sse"
        )
    values = _values(study.flag, str(given["values"]), study.kind, study.check)
    _values("--lrs (optimizer.lr)", str(given["lrs"]), float, _positive)
    tune_seeds = _values("--tune-seeds (seed)", str(given["tune_seeds"]), int, _seed)
    seeds = _values("--seeds (seed)", str(given["seeds"]), int, _seed)
    if len(set(seeds)) < 2:  # a tuning seed may be alone: stage 2 judges ties on the images
        raise StudyError(f"--seeds={_listed(seeds)}: at least 2 distinct seeds are needed")
    shared = sorted(set(tune_seeds) & set(seeds))
    if shared:
        raise StudyError(
            f"--tune-seeds and --seeds share {_listed(shared)}: the seeds that tune the lr must "
            f"never be seeds that report"
        )
    top_k = str(given["top_k"])
    if not top_k.isdigit() or int(top_k) < 1:
        raise StudyError(
            f"--top-k={top_k}: k must be a positive integer, the number of stage 1's best lrs "
            f"each final seed chooses among (1: the best alone)"
        )
    reference = given.get("reference") or study.reference
    if reference == "first":
        reference = losses[0]
    if reference == "all":
        reference = None
    if reference is not None and reference not in losses:
        raise StudyError(
            f"--reference={reference}: not one of --losses ({','.join(losses)}); give one of them, "
            f"or all (every pair)"
        )
    arms = [a.strip() for a in str(given.get("arms") or ",".join(study.arms)).split(",")]
    allowed = [a for a in ARMS if a != "fixed" or study.clean is not None]
    unknown = [a for a in arms if a not in allowed]
    if unknown or not arms:
        raise StudyError(
            f"--arms={','.join(arms)}: no arm {unknown[0] if unknown else ''!r} in this study; "
            f"its arms are {', '.join(allowed)}"
        )
    if "fixed" in arms and study.clean not in values:
        raise StudyError(
            f"--arms=fixed needs the clean rate {study.clean:g} in {study.flag} "
            f"({_listed(values)}): the fixed arm takes each loss's lr from it"
        )
    refused = {**REFUSED_OVERRIDES, f"{study.key}=": f"use {study.flag}"}
    for override in overrides:
        given_key, _, value = override.replace(" ", "").lstrip("+~").partition("=")
        for key, why in refused.items():  # "key=": any value (or deleting it); "key=v": that one
            name, _, refused_value = key.partition("=")
            if given_key == name and refused_value in ("", value):
                raise StudyError(f"{override}: {why}")
    return Catalogue(
        study=study.experiment,
        key=study.key,
        label=study.label,
        losses=tuple(losses),
        values=tuple(values),
        reference=reference,
        arms=tuple(a for a in ARMS if a in arms),
        metrics={a: study.metrics[a] for a in ARMS if a in arms},
        top_k=int(top_k),
        margin=float(given.get("margin", MARGIN)),
        clean=study.clean,
    )


def run(
    study: Study,
    study_dir: Path,
    overrides: list[str],
    options: dict[str, Any],
    retrain: bool = False,
    config_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Every stage of ``study`` into ``study_dir`` (``tune/``, ``final/``, ``fixed/``, the
    verdict); ``options`` override the study's defaults (comma-separated lists, ``top_k``,
    ``reference``, ``arms``, ``margin``)."""
    catalogue = plan(study, options, overrides)
    given = {**defaults(study), **{k: v for k, v in options.items() if v is not None}}
    prefix = ["--config-dir", str(config_dir)] if config_dir is not None else []
    common = [
        f"loss={','.join(catalogue.losses)}",
        f"{study.key}={_listed(list(catalogue.values))}",
    ]
    common += ["hydra.sweeper.retrain=true"] if retrain else []
    seeds = f"seed={_listed(_values('--seeds', str(given['seeds']), int, _seed))}"
    tune_seeds = _values("--tune-seeds", str(given["tune_seeds"]), int, _seed)
    lrs = _values("--lrs", str(given["lrs"]), float, _positive)
    _train(
        [*prefix, f"experiment={study.experiment}_tune", f"hydra.sweep.dir={study_dir / 'tune'}",
         *common, f"optimizer.lr={_listed(lrs)}", f"seed={_listed(tune_seeds)}", *overrides],
        "stage 1 of 4, tune",
    )  # fmt: skip
    catalogue.save(study_dir)
    print("\nlosslab-study: stage 2 of 4, choose the candidate lrs", flush=True)
    chosen = choose(study_dir, catalogue)
    # a cell with fewer candidates names its last one again for the higher ranks: trained once
    most = max(len(cell["lrs"]) for cells in chosen.values() for cell in cells.values())
    ranks = _listed(list(range(most)))
    if retrain:
        drop_stale(study_dir / "final", catalogue, chosen)
    _train(
        [*prefix, f"experiment={study.experiment}_final", f"hydra.sweep.dir={study_dir / 'final'}",
         *common, f"study.lr_rank={ranks}", seeds, *overrides],
        "stage 3 of 4, final",
    )  # fmt: skip
    final = study_dir / "final"
    tuned = choose_per_seed(stage_runs(final, catalogue, "final"), catalogue.arm_metrics("tuned"))
    write_selection(final, tuned, catalogue)
    if "fixed" in catalogue.arms:
        noisy = [v for v in catalogue.values if v != catalogue.clean]
        _train(
            [*prefix, f"experiment={study.experiment}_fixed", f"hydra.sweep.dir={study_dir / 'fixed'}",
             f"loss={','.join(catalogue.losses)}", f"{study.key}={_listed(noisy)}", seeds,
             *(["hydra.sweeper.retrain=true"] if retrain else []), *overrides],
            "stage 3 of 4, the fixed-lr arm",
        )  # fmt: skip
    print("\nlosslab-study: stage 4 of 4, the verdict", flush=True)
    return verdict(study_dir, catalogue)


def main(argv: list[str] | None = None) -> int:
    """``losslab-study {run,noise,choose,verdict} ...``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="losslab-study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, study in STUDIES.items():
        d = defaults(study)
        p = sub.add_parser(name, help=f"tune, choose, final, verdict: {study.title}")
        p.add_argument(
            "--dir",
            type=Path,
            default=Path(study.folder),
            help=f"study folder (default {study.folder})",
        )
        p.add_argument(
            "--losses", help=f"loss configs, in the order tables show them (default: {d['losses']})"
        )
        p.add_argument(
            study.flag, dest="values", help=f"the compared values (default: {d['values']})"
        )
        p.add_argument("--lrs", help=f"the tuning grid (default: {d['lrs']})")
        p.add_argument("--tune-seeds", help=f"tuning seeds (default: {d['tune_seeds']})")
        p.add_argument(
            "--seeds", help=f"final seeds, at least 2, none a tuning seed (default: {d['seeds']})"
        )
        p.add_argument(
            "--top-k",
            dest="top_k",
            help=f"the best lrs of stage 1 each final seed chooses among (default: {d['top_k']})",
        )
        reference = "the first loss" if study.reference else "all: every pair"
        p.add_argument(
            "--reference",
            help=f"compare each loss with this one, or all: every pair (default: {reference})",
        )
        arms = ", ".join(a for a in ARMS if a != "fixed" or study.clean is not None)
        p.add_argument(
            "--arms", help=f"comma-separated arms among {arms} (default: {','.join(study.arms)})"
        )
        p.add_argument(
            "--margin", type=float, help=f"equivalence margin in accuracy (default {MARGIN})"
        )
        p.add_argument(
            "--config-dir",
            type=Path,
            help="a folder of your own configs (a loss of your own: loss/<name>.yaml)",
        )
        p.add_argument(
            "--retrain", action="store_true", help="train again the jobs whose settings changed"
        )
        p.add_argument("overrides", nargs="*", help="losslab-train overrides for every run")
    p_choose = sub.add_parser(
        "choose", help="stage 2: the candidate lrs per loss and compared value, on validation"
    )
    p_choose.add_argument("study_dir", type=Path)
    p_verdict = sub.add_parser("verdict", help="the verdict of a study folder's final stages")
    p_verdict.add_argument("study_dir", type=Path)
    args = parser.parse_args(argv)

    def command() -> None:
        if args.command == "choose":
            choose(args.study_dir, Catalogue.load(args.study_dir))
        elif args.command == "verdict":
            verdict(args.study_dir)
        else:
            keys = (
                "losses",
                "values",
                "lrs",
                "tune_seeds",
                "seeds",
                "top_k",
                "reference",
                "arms",
                "margin",
            )
            options = {k: getattr(args, k) for k in keys}
            run(
                STUDIES[args.command],
                args.dir,
                args.overrides,
                options,
                args.retrain,
                args.config_dir,
            )

    return user_main("losslab-study", command)


if __name__ == "__main__":
    raise SystemExit(main())

"""``losslab-study``: the fair verdict (``make study``) and the label-noise study
(``make study-noise``), each in one command.

Both follow one protocol, each stage reading the previous one's files:

1. **tune** (a sweep, ``losslab-train experiment=<study>_tune``): every loss x compared value
   (batch size, or label-noise rate) over a log-spaced lr grid, with the **tuning seeds**, scored
   on a validation split held out of the training images (noisy too, in the noise study: a real
   user has only noisy labels). The test set chooses nothing;
2. **choose** (:func:`losslab.study.verdict.choose`): per loss and value, the lr with the best mean
   final validation accuracy over the tuning seeds, its margin to the runner-up, near-ties
   flagged: ``tune/choices.yaml``, ``tune/choices.md``;
3. **final** (``experiment=<study>_final``): each loss at its chosen lr with the **final seeds**,
   which are never tuning seeds, measured on the test set;
4. **verdict** (:func:`losslab.study.verdict.verdict`): paired comparisons by seed, Holm over each
   table, equivalence (TOST) within a margin fixed before the run (``--margin``, default 0.5
   accuracy points), the detectable difference and the seeds that would decide.

An interrupted study started again with the same command goes on where it stopped (the sweeper
skips finished jobs); one started with other settings into the same folder is refused by the
sweeper before anything runs (``--retrain`` trains the changed jobs again).

    losslab-study run                              # the fair verdict, into logs/study
    losslab-study noise                            # label noise, into logs/study-noise
    losslab-study run --dir logs/s2 --losses cee,sse --batch-sizes 100 --seeds 0,1,2 \\
        trainer.max_epochs=3                       # any losslab-train override goes to every run
    losslab-study choose logs/study/tune
    losslab-study verdict logs/study
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losslab.study.candidates import choose
from losslab.study.catalogue import FAIR, MARGIN, NOISE, Protocol, StudyError, check_margin
from losslab.study.verdict import verdict

__all__ = ["STUDIES", "main", "run"]


@dataclass(frozen=True)
class Study:
    """A study's defaults: its protocol, experiments, folder, the key it compares the losses at
    and the sweep values of each command-line option."""

    protocol: Protocol
    experiment: str  # <experiment>_tune, <experiment>_final in conf/experiment/
    folder: str
    key: str  # the override key of protocol.by
    defaults: dict[str, str]


STUDIES = {
    "run": Study(
        FAIR,
        "study",
        "logs/study",
        "data.batch_size",
        {
            "losses": "cee,sse,sse_logits",
            "values": "32,100,256,1024",
            "lrs": "0.01,0.03,0.1,0.3,1,3",
            "tune_seeds": "100,101",
            "seeds": "0,1,2,3,4",
        },
    ),
    "noise": Study(
        NOISE,
        "noise",
        "logs/study-noise",
        "data.label_noise",
        {
            "losses": "cee,sse,mae",
            "values": "0,0.2,0.4,0.6",
            "lrs": "0.001,0.003,0.01,0.03,0.1,0.3,1,3",
            "tune_seeds": "100,101",
            "seeds": "0,1,2,3,4",
        },
    ),
}


# overrides a study sets itself: given on the command line, they would replace its grid
REFUSED_OVERRIDES = {
    "data.val_size=0": "the study chooses on a validation split",
    "hydra.sweep.dir=": "use --dir",
    "seed=": "use --tune-seeds and --seeds",
    "loss=": "use --losses",
    "optimizer.lr=": "use --lrs",
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


def _positive(v: float) -> bool:
    """every value must be > 0"""
    return v > 0


def _seed(v: int) -> bool:
    """every seed must be in [0, 2**32)"""
    return 0 <= v < 2**32


def _noise(v: float) -> bool:
    """every label-noise rate must be in [0, 1)"""
    return 0 <= v < 1


def _train(args: list[str]) -> None:
    command = [sys.executable, "-m", "losslab.train", *args]
    print(f"\nlosslab-study: {' '.join(['losslab-train', *args])}", flush=True)
    status = subprocess.run(command, check=False).returncode
    if status != 0:
        raise SystemExit(status)


def run(
    study: Study,
    study_dir: Path,
    overrides: list[str],
    options: dict[str, str],
    margin: float = MARGIN,
    retrain: bool = False,
) -> list[dict[str, Any]]:
    """The four stages of ``study`` into ``study_dir/tune``, ``study_dir/final`` and
    ``study_dir``; ``options`` override the study's defaults (comma-separated sweep values)."""
    check_margin(margin)
    given = {**study.defaults, **{k: v for k, v in options.items() if v is not None}}
    value_check = _noise if study.protocol is NOISE else _positive
    values = _values(
        f"--{'noise' if study.protocol is NOISE else 'batch-sizes'}",
        given["values"],
        float if study.protocol is NOISE else int,
        value_check,
    )
    lrs = _values("--lrs (optimizer.lr)", given["lrs"], float, _positive)
    tune_seeds = _values("--tune-seeds (seed)", given["tune_seeds"], int, _seed)
    seeds = _values("--seeds (seed)", given["seeds"], int, _seed)
    for flag, chosen in (("--tune-seeds", tune_seeds), ("--seeds", seeds)):
        if len(set(chosen)) < 2:
            raise StudyError(
                f"{flag}={','.join(map(str, chosen))}: at least 2 distinct seeds are needed"
            )
    shared = sorted(set(tune_seeds) & set(seeds))
    if shared:
        raise StudyError(
            f"--tune-seeds and --seeds share {','.join(map(str, shared))}: the seeds that tune "
            f"the lr must never be seeds that report"
        )
    flag = "--noise" if study.protocol is NOISE else "--batch-sizes"
    refused = {**REFUSED_OVERRIDES, f"{study.key}=": f"use {flag}"}
    for override in overrides:
        given_key, _, value = override.replace(" ", "").lstrip("+~").partition("=")
        for key, why in refused.items():  # "key=": any value (or deleting it); "key=v": that one
            name, _, refused_value = key.partition("=")
            if given_key == name and refused_value in ("", value):
                raise StudyError(f"{override}: {why}")
    common = [f"loss={given['losses']}", f"{study.key}={','.join(f'{v:g}' for v in values)}"]
    common += ["hydra.sweeper.retrain=true"] if retrain else []
    _train(
        [
            f"experiment={study.experiment}_tune",
            f"hydra.sweep.dir={study_dir / 'tune'}",
            *common,
            f"optimizer.lr={','.join(f'{lr:g}' for lr in lrs)}",
            f"seed={','.join(map(str, tune_seeds))}",
            *overrides,
        ]
    )
    choose(study_dir / "tune", study.protocol.by)
    _train(
        [
            f"experiment={study.experiment}_final",
            f"hydra.sweep.dir={study_dir / 'final'}",
            *common,
            f"seed={','.join(map(str, seeds))}",
            *overrides,
        ]
    )
    return verdict(study_dir, study.protocol, margin)


def main(argv: list[str] | None = None) -> int:
    """``losslab-study {run,noise,choose,verdict} ...``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="losslab-study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, study in STUDIES.items():
        d = study.defaults
        p = sub.add_parser(name, help=f"tune, choose, final, verdict: {study.protocol.title}")
        p.add_argument(
            "--dir",
            type=Path,
            default=Path(study.folder),
            help=f"study folder (default {study.folder})",
        )
        p.add_argument("--losses", help=f"e.g. cee,sse (default: {d['losses']})")
        flag = "--noise" if study.protocol is NOISE else "--batch-sizes"
        p.add_argument(flag, dest="values", help=f"the compared values (default: {d['values']})")
        p.add_argument("--lrs", help=f"the tuning grid (default: {d['lrs']})")
        p.add_argument(
            "--tune-seeds", help=f"tuning seeds, at least 2 (default: {d['tune_seeds']})"
        )
        p.add_argument(
            "--seeds", help=f"final seeds, at least 2, none a tuning seed (default: {d['seeds']})"
        )
        p.add_argument(
            "--margin",
            type=float,
            default=MARGIN,
            help="equivalence margin in accuracy (default 0.005)",
        )
        p.add_argument(
            "--retrain", action="store_true", help="train again the jobs whose settings changed"
        )
        p.add_argument("overrides", nargs="*", help="losslab-train overrides for every run")
    p_choose = sub.add_parser(
        "choose", help="stage 2: the lr per loss and compared value, on validation"
    )
    p_choose.add_argument("tune_dir", type=Path)
    p_choose.add_argument("--by", choices=("batch_size", "label_noise"), default="batch_size")
    p_verdict = sub.add_parser("verdict", help="the verdict of a study folder's final stage")
    p_verdict.add_argument("study_dir", type=Path)
    p_verdict.add_argument("--noise", action="store_true", help="the label-noise study's verdict")
    p_verdict.add_argument(
        "--margin", type=float, default=MARGIN, help="equivalence margin (default 0.005)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "choose":
            choose(args.tune_dir, args.by)
        elif args.command == "verdict":
            verdict(args.study_dir, NOISE if args.noise else FAIR, args.margin)
        else:
            options = {
                k: getattr(args, k) for k in ("losses", "values", "lrs", "tune_seeds", "seeds")
            }
            run(STUDIES[args.command], args.dir, args.overrides, options, args.margin, args.retrain)
    except (ValueError, FileNotFoundError) as err:  # StudyError, and the report's "no runs"
        print(f"losslab-study: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

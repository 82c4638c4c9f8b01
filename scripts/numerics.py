"""Both studies under other numerics, and their verdict words side by side.

Another machine rounds differently inside torch's kernels, every run drifts, and a verdict word
that is a property of the losses must not move with it. This machine can be forced onto other
kernels and thread counts, which round differently as another CPU would:

- ``native``: what it picks itself (AVX-512 here);
- ``aten-default``: ``ATEN_CPU_CAPABILITY=default``, ATen's plain (unvectorised) kernels;
- ``mkl-compatible``: ``MKL_CBWR=COMPATIBLE``, MKL's conditional-reproducibility path for the
  matrix products;
- ``both``: the two switches together (numbers of their own, not either one's);
- ``threads-4``: ``threads=4``, MKL's matrix products split four ways, as on a 4-core machine;
- ``threads-6``: ``threads=6``, split six ways (8 and 16 threads give the same numbers).

(The thread variants were added after the rule on held lrs was chosen, to test it on numbers it
was not chosen on.)

(``ATEN_CPU_CAPABILITY=avx2``, ``MKL_CBWR=AVX|AVX2|AVX512|SSE2|SSE4_2``,
``MKL_ENABLE_INSTRUCTIONS=AVX2|AVX512|SSE4_2``, ``ONEDNN_MAX_CPU_ISA=AVX2|SSE41``, ``threads=2``
and ``threads=3`` gave this machine's native or plain-kernel numbers bit for bit on a test run,
so they are no variants of their own.)

    python scripts/numerics.py run --root logs/numerics          # both studies x 6 variants
    python scripts/numerics.py table --root logs/numerics        # docs/numerics.csv, .md

``table`` writes one row per study, arm, compared value, comparison, metric and variant with the
verdict word (``docs/numerics.csv``), the same as a Markdown table with a column per variant
(``docs/numerics.md``), each variant's selections (the lrs the final seeds kept), and how many
final runs' test accuracies differ between variants (variants with identical numbers count as one).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

# name -> (environment, losslab-train overrides of every run)
VARIANTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "native": ({}, []),
    "aten-default": ({"ATEN_CPU_CAPABILITY": "default"}, []),
    "mkl-compatible": ({"MKL_CBWR": "COMPATIBLE"}, []),
    "both": ({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}, []),
    "threads-4": ({}, ["threads=4"]),
    "threads-6": ({}, ["threads=6"]),
}
STUDIES = ("run", "noise")
FIELDS = [
    "study",
    "arm",
    "value",
    "comparison",
    "metric",
    "variant",
    "word",
    "diff",
    "sd",
    "p_holm",
    "p_tost_holm",
    "replication",
    "replication_tost",
]


def run(root: Path, variants: list[str], studies: list[str]) -> None:
    """Each study under each variant, into ``<root>/<variant>/<study>`` (resumable: a study
    started again goes on where it stopped)."""
    for variant in variants:
        for study in studies:
            folder = root / variant / study
            print(f"numerics: {variant}: losslab-study {study} --dir {folder}", flush=True)
            env, overrides = VARIANTS[variant]
            done = subprocess.run(
                [sys.executable, "-m", "losslab.study.stages", study, "--dir", str(folder),
                 *overrides],
                env={**os.environ, **env},
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(done.returncode)


def _test_accuracies(study_dir: Path) -> dict[str, float]:
    """``<stage>/<job> -> final test accuracy`` of every final run of a study."""
    out = {}
    for result in sorted(study_dir.glob("*/*/result.json")):
        if result.parent.parent.name in ("final", "fixed"):
            metrics = json.loads(result.read_text()).get("metrics", {})
            if "hp/test_acc" in metrics:
                out[f"{result.parent.parent.name}/{result.parent.name}"] = metrics["hp/test_acc"]
    return out


def table(root: Path, variants: list[str], out: Path) -> None:
    rows, lrs, accuracies = [], {}, {}
    for variant in variants:
        for study in STUDIES:
            folder = root / variant / study
            with (folder / "verdict.csv").open() as f:
                for r in csv.DictReader(f):
                    rows.append({"study": study, "arm": r["arm"], "value": r["value"],
                                 "comparison": f"{r['first']} - {r['second']}", "metric": r["metric"],
                                 "variant": variant, "word": r["word"], "diff": r["diff"],
                                 "sd": r["sd"], "p_holm": r["p_holm"],
                                 "p_tost_holm": r["p_tost_holm"], "replication": r["replication"],
                                 "replication_tost": r["replication_tost"]})  # fmt: skip
            with (folder / "losses.csv").open() as f:
                for r in csv.DictReader(f):
                    lrs[(study, r["arm"], r["value"], r["loss"], variant)] = r["lrs"]
            accuracies[(variant, study)] = _test_accuracies(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.with_suffix(".csv")).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)

    keys = list(
        dict.fromkeys(
            (r["study"], r["arm"], r["metric"], r["value"], r["comparison"]) for r in rows
        )
    )
    words = {
        (r["study"], r["arm"], r["metric"], r["value"], r["comparison"], r["variant"]): r["word"]
        for r in rows
    }
    lines = ["| study | arm | metric | value | comparison | " + " | ".join(variants) + " | same |",
             "|---|---|---|---:|---|" + "---|" * len(variants) + ":-:|"]  # fmt: skip
    moved = 0
    for key in keys:
        seen = [words.get((*key, v), "-") for v in variants]
        same = len(set(seen)) == 1
        moved += not same
        lines.append(
            "| "
            + " | ".join(key)
            + " | "
            + " | ".join(seen)
            + f" | {'yes' if same else '**no**'} |"
        )
    select = ["", "| study | arm | value | loss | " + " | ".join(variants) + " |",
              "|---|---|---:|---|" + "---|" * len(variants)]  # fmt: skip
    for study, arm, value, loss in dict.fromkeys(k[:4] for k in lrs):
        select.append(f"| {study} | {arm} | {value} | {loss} | "
                      + " | ".join(lrs.get((study, arm, value, loss, v), "-") for v in variants) + " |")  # fmt: skip
    drift = ["", "| variants | study | final runs | test accuracy differs in | largest difference |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    first = variants[0]
    for variant in variants[1:]:
        for study in STUDIES:
            a, b = accuracies[(first, study)], accuracies[(variant, study)]
            common = sorted(set(a) & set(b))
            differ = [k for k in common if a[k] != b[k]]
            largest = max((abs(a[k] - b[k]) for k in common), default=0.0)
            drift.append(
                f"| {first} vs {variant} | {study} | {len(common)} | {len(differ)} | {largest:.4f} |"
            )
    summary = f"{len(keys)} verdict words per variant; {moved} differ between the variants."
    (out.with_suffix(".md")).write_text("\n".join([*lines, "", summary, *select, *drift]) + "\n")
    print("\n".join([*lines, "", summary, *drift]))
    print(f"numerics: {out.with_suffix('.csv')}, {out.with_suffix('.md')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "table"))
    parser.add_argument("--root", type=Path, default=Path("logs/numerics"))
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"among {', '.join(VARIANTS)}"
    )
    parser.add_argument("--studies", default=",".join(STUDIES))
    parser.add_argument(
        "--out", type=Path, default=Path("docs/numerics"), help="CSV and Markdown, without suffix"
    )
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(
            f"--variants: no variant {unknown[0]!r}; the variants are {', '.join(VARIANTS)}"
        )
    if args.command == "run":
        run(args.root, variants, args.studies.split(","))
    else:
        table(args.root, variants, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

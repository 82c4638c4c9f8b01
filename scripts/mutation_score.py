"""The mutation score of the last ``mutmut run``, per file (what ``make mutate`` prints last), and
the surviving mutants, each with its changed line and why it survives.

    python scripts/mutation_score.py                        # the scores
    python scripts/mutation_score.py --survivors FILE.md    # and every survivor, into FILE.md

Score: killed / (killed + survived); timeouts and the mutants no test reaches ("no tests") are
listed apart.
The reason of a survivor is a first sort by what its changed line touches (the device, the
processes of DDP, a figure's styling, a message's wording, ...), written by rules below: read
the line itself before you trust it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REASONS = [  # (pattern on the changed lines, why the mutant survives), the first match wins
    (r"world_size|sync_dist|strategy\.reduce|is_global_zero|all_gather|distributed|ddp|rank_zero\b",
     "several processes only: the DDP tests start processes (marked process, outside make mutate)"),
    (r"weights_only", "equivalent: torch.load's default is weights_only=True"),
    (r"device|map_location|\.to\(|_assert_async", "equivalent on CPU: where a tensor lives"),
    (r"strict=", "equivalent: zip's sequences have equal lengths here"),
    (r"fontsize|alpha|\bms=|capsize|dpi|layout=|figsize|\bloc=|squeeze|grid\(|\blw=",
     "a figure's styling: not worth a test"),
    (r"prog_bar|rank_zero_warn|warnings\.warn|log\.info|print\(|flush|verbose=|stacklevel",
     "console output: what a user reads, not what the run computes"),
    (r"sort_keys=|newline=|maxsplit|dtype=float|workers=|resolve=|force_add=|select\(.*default",
     "equivalent: a library default or a flag with no effect on these values (see the line)"),
    (r"size_guidance", "not worth a test: only past TensorBoard's 10,000 points of a tag"),
    (r"RichProgressBar", "equivalent: Lightning's own default bar is RichProgressBar with rich"),
    (r"get_sources", "equivalent: one config search path per process"),
]  # fmt: skip
NONE_FOR_FALSE = "equivalent: None is false, as the False it replaces"
OTHER = "not pinned by a fast test (reached by the slow or process tests only, or by none)"


def results() -> dict[str, str]:
    """``mutant name -> status`` of the last run."""
    mutmut = Path(sys.executable).parent / "mutmut"
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    )
    status = {}
    for line in out.stdout.splitlines():
        name, _, state = line.strip().rpartition(": ")
        if name:
            status[name] = state
    return status


def changed_lines(name: str) -> tuple[str, str]:
    """The line a mutant removes and the one it adds (mutmut's own diff)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    module = name.split(".x", 1)[0]
    path = Path("src", *module.split(".")).with_suffix(".py")
    diff = get_diff_for_mutant(name, path=path).splitlines()
    removed = " ".join(d[1:].strip() for d in diff if d.startswith("-") and not d.startswith("---"))
    added = " ".join(d[1:].strip() for d in diff if d.startswith("+") and not d.startswith("+++"))
    return removed, added


def _common(a: str, b: str) -> int:
    """The length of the common start of ``a`` and ``b``."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _around_change(removed: str, added: str) -> str:
    """What the mutation changed, with the text just before it (the argument or call it is in)."""
    start = _common(removed, added)
    end = _common(removed[start:][::-1], added[start:][::-1])
    lead = removed[max(0, start - 24) : start]
    return f"{lead}{removed[start : len(removed) - end]} {lead}{added[start : len(added) - end]}"


def reason(removed: str, added: str) -> str:
    for pattern, why in REASONS:
        if re.search(pattern, _around_change(removed, added)):
            return why
    if removed.replace("=False", "=None") == added:
        return NONE_FOR_FALSE
    strings = re.compile(r"\"[^\"]*\"|'[^']*'")
    if strings.sub("", removed) == strings.sub("", added) and (
        "XX" in added or added.upper() == added or added.lower() == added
    ):
        return "the wording or case of a text: not worth a test"
    return OTHER


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--survivors", type=Path, help="write every survivor into this file")
    args = parser.parse_args()
    status = results()
    counts: Counter[tuple[str, str]] = Counter(
        (name.split(".x", 1)[0], state) for name, state in status.items()
    )
    files = sorted({f for f, _ in counts})
    print(
        f"{'module':<24} {'killed':>7} {'survived':>9} {'timeout':>8} {'no tests':>9} {'score':>7}"
    )
    total_k = total_s = total_t = total_n = 0
    for f in files:
        k, s = counts[(f, "killed")], counts[(f, "survived")]
        t, n = counts[(f, "timeout")], counts[(f, "no tests")]
        total_k, total_s, total_t, total_n = total_k + k, total_s + s, total_t + t, total_n + n
        print(f"{f:<24} {k:>7} {s:>9} {t:>8} {n:>9} {k / max(k + s, 1):>7.1%}")
    score = total_k / max(total_k + total_s, 1)
    print(f"{'all':<24} {total_k:>7} {total_s:>9} {total_t:>8} {total_n:>9} {score:>7.1%}")
    if args.survivors:
        by_reason: dict[str, list[str]] = defaultdict(list)
        for name in sorted(n for n, state in status.items() if state == "survived"):
            removed, added = changed_lines(name)
            by_reason[reason(removed, added)].append(f"- `{name}`: `{removed}` → `{added}`")
        lines = [f"# Surviving mutants ({total_s}), by why they survive\n"]
        for why, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            lines += [f"\n## {why} ({len(items)})\n", *items]
        args.survivors.write_text("\n".join(lines) + "\n")
        print(f"{total_s} survivors, by reason: {args.survivors}")
        for why, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(items):>5}  {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

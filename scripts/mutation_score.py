"""The mutation score of the last ``mutmut run``, per file (what ``make mutate`` prints last).

    python scripts/mutation_score.py

Killed / (killed + survived); mutants no test reaches ("no tests") are listed apart.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path


def main() -> int:
    mutmut = Path(sys.executable).parent / "mutmut"
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    )
    counts: Counter[tuple[str, str]] = Counter()
    for line in out.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            counts[(name.split(".x", 1)[0], status)] += 1
    files = sorted({f for f, _ in counts})
    print(f"{'module':<18} {'killed':>7} {'survived':>9} {'no tests':>9} {'score':>7}")
    total_k = total_s = 0
    for f in files:
        k, s, n = counts[(f, "killed")], counts[(f, "survived")], counts[(f, "no tests")]
        total_k, total_s = total_k + k, total_s + s
        print(f"{f:<18} {k:>7} {s:>9} {n:>9} {k / max(k + s, 1):>7.1%}")
    print(
        f"{'all':<18} {total_k:>7} {total_s:>9} {'':>9} {total_k / max(total_k + total_s, 1):>7.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

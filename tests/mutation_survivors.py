"""Sort the surviving mutants of a mutmut run into the classes docs/mutation.md explains.

Run in the staged copy after ``sh tests/mutation.sh`` (the script calls it): prints the score and every
survivor with its class. A survivor that fits no class is printed as ``UNEXPLAINED``: it needs a test that
kills it or an explanation in docs/mutation.md. Not a test module (pytest does not collect it).

``--new-since LIST``: only the survivors whose names are not in LIST (an earlier output of this script, e.g.
docs/mutation-survivors-widened.txt). It may run while mutmut is still running: a result file caught mid-write
is read again.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time

# (class, pattern on the mutated line or the original line) in order: the first match wins.
CLASSES = [
    # Text only a person reads: an error message, a progress line's wording, a report rule.
    ("message", re.compile(r"raise |Error\(|_fail\(|print\(|rule=|f\"|warn|note|help=")),
    # dtype=None / no dtype on arrays that are float64 already (the inputs' documented layout).
    ("equivalent: dtype of a float64 array", re.compile(r"dtype=None|asarray\([^)]*, \)|ascontiguousarray\([^)]*, \)")),
    # np.array/astype without a dtype on values that are already what it would make: Python ints -> int64,
    # float64 arrays from NumPy or Julia (Float64 by FluxParity.jl's contract) -> float64.
    ("equivalent: default dtype", re.compile(r"np\.array\([^()]*(\([^()]*\))?[^()]*, \)|astype\(None\)")),
    # request.json always carries these keys (backends/flux.py writes them): the fallback is never read.
    ("unreachable: request.json default", re.compile(r"request\.get\(")),
    # Python's UTF-8 default and codec names are case-insensitive.
    ("equivalent: text encoding", re.compile(r"encoding=None|\"UTF-8\"|read_text\(\)|write_text\([^)]*, \)")),
    # astype(copy=...) changes only whether a copy is made of an array nobody else holds.
    ("equivalent: copy flag", re.compile(r"copy=(None|False)|astype\(dtype, \)")),
    # the .tmp suffix of an atomically replaced file: any name works.
    ("equivalent: temporary file name", re.compile(r"with_suffix\(")),
]


def mutmut(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "mutmut", *args], capture_output=True, text=True).stdout


def changed_lines(name: str) -> tuple[str, str]:
    """The removed and the added lines of one mutant's diff (in this process: one mutmut call each is slow)."""
    import mutmut.__main__  # noqa: F401  (sets up mutmut's state for the import below)
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(name).splitlines()
    removed = " ".join(line[1:] for line in diff if line.startswith("-") and not line.startswith("---"))
    added = " ".join(line[1:] for line in diff if line.startswith("+") and not line.startswith("+++"))
    return removed, added


def _changed_lines_retried(name: str) -> tuple[str, str]:
    """``changed_lines``, read again (up to 5 times, 2 s apart) when mutmut was writing the result file."""
    for attempt in range(5):
        try:
            return changed_lines(name)
        except ValueError:  # json.JSONDecodeError: a .meta file caught mid-write
            if attempt == 4:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def main(argv: list[str]) -> int:
    known: set = set()
    if argv[:1] == ["--new-since"] and len(argv) == 2:
        with open(argv[1], encoding="utf-8") as f:
            known = set(re.findall(r"^\s+(fluxparity\S+)\s", f.read(), re.M))
    elif argv:
        print("usage: python mutation_survivors.py [--new-since LIST]", file=sys.stderr)
        return 2
    statuses = dict(line.strip().rsplit(": ", 1) for line in mutmut("results", "--all", "true").splitlines()
                    if ": " in line)
    counts = collections.Counter(statuses.values())
    judged = counts["killed"] + counts["survived"] + counts["timeout"]
    print(f"mutants: {len(statuses)}; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"score: killed / (killed + survived + timeout) = {counts['killed']}/{judged} = "
          f"{counts['killed'] / max(judged, 1):.1%}")
    by_module = collections.defaultdict(collections.Counter)
    for name, status in statuses.items():
        by_module[re.sub(r"\.x.*", "", name)][status] += 1
    for module, c in sorted(by_module.items()):
        print(f"  {module}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    by_class = collections.defaultdict(list)
    for name, status in sorted(statuses.items()):
        if status != "survived" or name in known:
            continue
        removed, added = _changed_lines_retried(name)
        label = next((c for c, pattern in CLASSES if pattern.search(removed) or pattern.search(added)), "UNEXPLAINED")
        by_class[label].append((name, added.strip()[:140]))
    for label, items in sorted(by_class.items()):
        print(f"\n{label}: {len(items)}")
        for name, added in items:
            print(f"  {name}   + {added}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

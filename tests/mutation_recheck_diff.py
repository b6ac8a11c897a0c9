"""Re-check survivors of the staged mutmut run against TODAY's code and tests, one mutant at a time:

    python tests/mutation_recheck_diff.py PYTEST_ARGS... < mutant-names

Unlike ``tests/mutation_recheck.sh`` (``mutmut apply``, which writes back the whole mutated function as it was
in the run and so undoes any later fix in that function), this takes the mutant's diff (``mutmut show``) and
applies only its changed lines to a copy of today's ``python/``: the lines it removes must be found there (with
their context, or else alone and exactly once). For each name on stdin it prints one of

- ``killed NAME``: the tests fail on the mutant;
- ``SURVIVED NAME``: they pass;
- ``GONE NAME``: the line the mutant changed is no longer in today's code (a later change replaced it: the
  mutant does not exist any more).

The tests are run once on the unmutated copy first; if they fail there, it stops (exit 2). The staged run
(``build/mutation``, or ``$MUTATION_DIR``) is only read. Not a test module (pytest does not collect it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = Path(os.environ.get("MUTATION_DIR", ROOT / "build" / "mutation"))
MARKERS = ["-m", "not slow and not julia and not compile"]


def mutant_diff(name: str) -> tuple[str, list[str], list[str]]:
    """``(file under python/, old lines, new lines)`` of the mutant's one hunk, as ``mutmut show`` prints it
    (a method's lines dedented to its ``def``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=STAGE, env=env,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    path = next(line[4:].strip() for line in shown if line.startswith("--- "))
    body = shown[next(i for i, line in enumerate(shown) if line.startswith("@@")) + 1:]
    old = [line[1:] for line in body if line[:1] in (" ", "-")]
    new = [line[1:] for line in body if line[:1] in (" ", "+")]
    return re.sub(r"^src/", "", path), old, new


def _code(line: str) -> str:
    """``line`` without a trailing comment (a later change may have added one beside unchanged code)."""
    return line.split("  # ")[0].rstrip()


def _find(lines: list[str], block: list[str]) -> list[tuple[int, str]]:
    """Every ``(start, indent)`` where ``block`` (dedented) stands in ``lines`` with one uniform indent,
    trailing comments ignored."""
    if not block or not block[0].strip():
        return []
    first = _code(block[0])
    found = []
    for i, line in enumerate(lines):
        code = _code(line)
        if not code.endswith(first) or code[:len(code) - len(first)].strip():
            continue
        indent = code[:len(code) - len(first)]
        if i + len(block) <= len(lines) and all(_code(lines[i + k]) == indent + _code(b) if b.strip()
                                                else not lines[i + k].strip() for k, b in enumerate(block)):
            found.append((i, indent))
    return found


def mutate(source: str, old: list[str], new: list[str]) -> str | None:
    """``source`` with the hunk applied; None when its removed lines are not found exactly once."""
    lines = source.split("\n")
    # strip the context lines common to both ends: what remains is the changed part
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[len(old) - 1 - tail] == new[len(new) - 1 - tail]:
        tail += 1
    changed_old, changed_new = old[head:len(old) - tail], new[head:len(new) - tail]
    whole = _find(lines, old)
    if len(whole) == 1:
        start, indent = whole[0]
        start += head
    else:
        alone = _find(lines, changed_old)
        if len(alone) != 1:
            return None
        start, indent = alone[0]
    replaced = [indent + line if line.strip() else line for line in changed_new]
    return "\n".join(lines[:start] + replaced + lines[start + len(changed_old):])


def run_tests(src: Path, args: list[str]) -> bool:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *MARKERS, *args],
                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def main(args: list[str]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        src = Path(scratch) / "src"
        shutil.copytree(ROOT / "python", src, ignore=shutil.ignore_patterns("__pycache__"))
        if not run_tests(src, args):
            print(f"the tests fail on the unmutated code: pytest {' '.join(args)} (fix them first)", file=sys.stderr)
            return 2
        for name in (line.strip() for line in sys.stdin):
            if not name:
                continue
            path, old, new = mutant_diff(name)
            target = src / path
            original = target.read_text()
            mutated = mutate(original, old, new)
            if mutated is None:
                print(f"GONE {name}", flush=True)
                continue
            target.write_text(mutated)
            shutil.rmtree(target.parent / "__pycache__", ignore_errors=True)
            try:
                print(f"{'SURVIVED' if run_tests(src, args) else 'killed'} {name}", flush=True)
            finally:
                target.write_text(original)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What a run will need, estimated before it starts: memory (from samples x epochs x hidden) and disk.

The estimates are deliberately generous upper bounds of the arrays a run keeps (not measurements): they
exist to refuse, in one line and before any training, a run that cannot fit (``--samples 1000000000``,
``--hidden 100000``), not to predict a run's footprint to the byte.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

# Bytes per Adam step kept per (run, backend): the float64 step loss (8), and the report's JSON rendering
# of it (a Python float and its list slot, 32, and its text, ~25).
_BYTES_PER_STEP = 8 + 32 + 25
# Bytes per generated sequence: a small NumPy array (~112 bytes of header + ~5 float64 values) and its slot.
_BYTES_PER_SEQUENCE = 200
# Report text per step and per (run, backend): report.json holds every step loss as text.
_REPORT_BYTES_PER_STEP = 26
_REPORT_FIXED_BYTES = 2_000_000  # the plot, report.md, the data in report.json's header
# Parameter-sized arrays alive per training at once: weights, gradients, Adam's two moments, the initial
# and final copies, autograd's saved values (a generous count).
_PARAM_COPIES_PER_TRAINING = 12
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "gruv3": 3}


def available_memory() -> Optional[int]:
    """Bytes of memory this process can still get (Linux ``MemAvailable``), else physical memory, else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def compare_memory(samples: int, epochs: int, hidden: int, model: str, runs: int, backends: int,
                   workers: int) -> int:
    """Bytes a ``compare`` run keeps at its peak, at most (see the module's note)."""
    gates = GATES.get(model, 4)
    params = 8 * gates * (hidden * hidden + 2 * hidden + 1) + 8 * (hidden + 1)
    trainings = runs * backends
    return (3 * samples * _BYTES_PER_SEQUENCE + trainings * samples * epochs * _BYTES_PER_STEP
            + params * (_PARAM_COPIES_PER_TRAINING * min(workers, trainings) + 2 * trainings))


def sweep_memory(seeds: int, samples: int, epochs: int, runs: int, batch: int) -> int:
    """Bytes a ``sweep`` keeps at its peak, at most: every seed's data, and a batch's step losses."""
    per_seed = 3 * samples * _BYTES_PER_SEQUENCE + runs * 4096  # the data, and each row's checks
    return seeds * per_seed + 2 * batch * samples * epochs * 8 * 2


def report_disk(samples: int, epochs: int, runs: int, backends: int) -> int:
    return _REPORT_FIXED_BYTES + runs * backends * samples * epochs * _REPORT_BYTES_PER_STEP


def free_disk(path: Path) -> Optional[int]:
    """Free bytes on the file system that holds ``path`` (or its nearest existing ancestor)."""
    probe = Path(path).absolute()
    try:
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        return shutil.disk_usage(probe).free
    except OSError:  # e.g. a name too long: the folder check says so, in its words
        return None


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.3g} GB"

"""Plant known bugs one at a time in a scratch copy and check that the tests named for each catch it.

    python tests/plant_mutants.py            # from the checkout; prints one line per bug, exits 1 if any survives

mutmut (docs/mutation.md) mutates only code inside functions; these bugs live in module-level constants
(the tolerances, the worker's argument order) or are the realistic slips issue 13 listed, so they are
planted here by text replacement. Not a test module (pytest does not collect it): each bug runs a pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = "python/fluxparity/backends/_flux_worker.py"
COMPARE = "python/fluxparity/compare.py"
FLUX_TESTS = ["tests/test_flux_backend.py"]
TOLERANCE_TESTS = ["tests/test_tolerances.py", "tests/test_compare.py"]

# (what, file, original text, planted text, tests that must catch it)
BUGS = [
    ("worker sends train and test labels swapped", WORKER,
     '"train_values", "train_lengths", "train_labels",\n    "test_values", "test_lengths", "test_labels",',
     '"train_values", "train_lengths", "test_labels",\n    "test_values", "test_lengths", "train_labels",', FLUX_TESTS),
    ("worker sends the default lr", WORKER, 'float(request["lr"])', "1e-3", FLUX_TESTS),
    ("worker always asks for float64", WORKER, 'settings = (request["dtype"]', 'settings = ("float64"', FLUX_TESTS),
    ("worker transposes a model's weights", WORKER, "params[name] = array", "params[name] = array.T", FLUX_TESTS),
    ("worker transposes only square weights", WORKER, "params[name] = array",
     "params[name] = array.T if array.shape[0] == array.shape[-1] else array", FLUX_TESTS),
    ("worker sends float32 weights", WORKER, "np.ascontiguousarray(npz[name], dtype=np.float64)",
     "np.ascontiguousarray(npz[name], dtype=np.float32)", FLUX_TESTS),
    ("RTOL_FLOAT64 loosened 1e-9 -> 1e-8", COMPARE, "RTOL_FLOAT64 = 1e-9", "RTOL_FLOAT64 = 1e-8", TOLERANCE_TESTS),
    ("RTOL_FLOAT32 loosened 1e-4 -> 1e-3", COMPARE, "RTOL_FLOAT32 = 1e-4", "RTOL_FLOAT32 = 1e-3", TOLERANCE_TESTS),
    ("OUTCOME_STEPS loosened 5 -> 20", COMPARE, "OUTCOME_STEPS = 5", "OUTCOME_STEPS = 20", TOLERANCE_TESTS),
    ("epsilon inside the sqrt (reference)", "python/fluxparity/backends/reference.py",
     "(np.sqrt(v[k] / (one - b2t)) + eps)", "np.sqrt(v[k] / (one - b2t) + eps)", ["tests/test_adam.py"]),
    ("epsilon inside the sqrt (fluxparity.optim Adam: FluxOptimiser and the NumPy rules)",
     "python/fluxparity/optim/_arith.py",
     "((m / (1 - bt1)) / (xp.sqrt(v / (1 - bt2)) + eps)) * eta\n", "((m / (1 - bt1)) / xp.sqrt(v / (1 - bt2) + eps)) * eta\n",
     ["tests/test_adam.py"]),
    ("torch.sqrt in the fast path's Optimisers Adam", "python/fluxparity/backends/pytorch_fast.py",
     "(ieee_sqrt(v / c2[i]) + teps)", "(torch.sqrt(v / c2[i]) + teps)", ["tests/test_ieee_sqrt.py"]),
]


def main() -> int:
    survived = 0
    for what, path, original, planted, tests in BUGS:
        with tempfile.TemporaryDirectory() as scratch:
            for part in ("python", "julia", "tests", "pyproject.toml"):
                (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, Path(scratch) / part)
            target = Path(scratch) / path
            text = target.read_text(encoding="utf-8")
            if original not in text:
                print(f"STALE    {what}: {path} no longer contains the text to replace")
                survived += 1
                continue
            target.write_text(text.replace(original, planted, 1), encoding="utf-8")
            env = {**os.environ, "PYTHONPATH": str(Path(scratch) / "python")}
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                                  cwd=scratch, env=env, capture_output=True, text=True)
            caught = done.returncode != 0
            survived += not caught
            print(f"{'caught ' if caught else 'SURVIVED'} {what}  ({' '.join(tests)}: {done.stdout.strip().splitlines()[-1]})")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

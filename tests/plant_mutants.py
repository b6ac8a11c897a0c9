"""Plant known bugs one at a time in a scratch copy and check that the tests named for each catch it.

    python tests/plant_mutants.py            # from the checkout; prints one line per bug, exits 1 if any survives
    python tests/plant_mutants.py WORD...    # only the bugs whose description contains one of the words

mutmut (docs/mutation.md) mutates only code inside functions; these bugs live in module-level constants
(the tolerances, the worker's argument order), in Julia or the workflow, or are the realistic slips issues 13
and 21 listed, so they are planted here by text replacement. Not a test module (pytest does not collect it): each bug runs a pytest.
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
FLUX_PY = "python/fluxparity/backends/flux.py"
COMPARE = "python/fluxparity/compare.py"
FLUX_TESTS = ["tests/test_flux_backend.py"]
TOLERANCE_TESTS = ["tests/test_tolerances.py", "tests/test_compare.py"]
ASSERT = "python/fluxparity/testing/_assert.py"
FLUXPARITY_JL = "julia/FluxParity.jl"
CLAIMS = ["tests/test_claims.py"]
CROSS = ["tests/test_julia_cross_language.py"]

# (what, file, original text, planted text, tests that must catch it)
BUGS = [
    ("worker sends train and test targets swapped", WORKER,
     '"train_x", "train_lengths", "train_y",\n    "test_x", "test_lengths", "test_y",',
     '"train_x", "train_lengths", "test_y",\n    "test_x", "test_lengths", "train_y",', FLUX_TESTS),
    ("worker sends the batches and the probes swapped", WORKER,
     '"probe_x", "probe_lengths",\n    "order", "batch_sizes",', '"order", "batch_sizes",\n    "probe_x", "probe_lengths",',
     FLUX_TESTS),
    ("worker sends a 0-based batch order", FLUX_PY, "order = np.concatenate(steps).astype(np.int64) + 1",
     "order = np.concatenate(steps).astype(np.int64)", FLUX_TESTS),
    ("worker sends every epoch in the first epoch's order", FLUX_PY, "order = np.concatenate(steps)",
     "order = np.tile(batches.orders[0], batches.epochs)", FLUX_TESTS),
    ("worker sends x time-major", FLUX_PY, "    return out, lengths\n",
     "    return np.ascontiguousarray(out.transpose(1, 0, 2)), lengths\n", FLUX_TESTS),
    ("worker always sends loss abs_sum", WORKER, 'str(request["loss_name"])', '"abs_sum"', FLUX_TESTS),
    ("worker always sends readout last", FLUX_PY, '"readout": config.readout,', '"readout": "last",', FLUX_TESTS),
    ("Julia permutes x into (len, in, N)", FLUXPARITY_JL, "const BATCH_MAJOR_TO_FLUX = (3, 2, 1)",
     "const BATCH_MAJOR_TO_FLUX = (2, 3, 1)", FLUX_TESTS),
    ("worker sends the default lr", WORKER, 'int(request["epochs"]), float(request["lr"])', 'int(request["epochs"]), 1e-3',
     FLUX_TESTS),
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
    # issue 21: realistic bugs that once left the suite green
    ("training parity compares only the last step of after_each", ASSERT, "        for k in range(steps):\n            before_e = initial",
     "        for k in range(steps - 1, steps):\n            before_e = initial", CLAIMS),
    ("training parity compares only the last loss", ASSERT, "golden.losses[:steps], losses, tol=tol",
     "golden.losses[:steps][-1:], losses[-1:], tol=tol", CLAIMS),
    ("batch_first dropped from the output conversion", ASSERT,
     "return a.transpose(2, 1, 0) if self.batch_first else a.transpose(2, 0, 1)", "return a.transpose(2, 0, 1)", CLAIMS),
    ("batch_first dropped from the last-step readout", ASSERT, "y = y[:, -1] if self.batch_first else y[-1]",
     "y = y[-1]", CLAIMS),
    ("the identity permutation reported as a gate-order finding", "python/fluxparity/testing/_diagnose.py",
     "        if perm == tuple(range(g)):\n            continue\n", "", CLAIMS),
    ("the weights reader accepts any fluxparity-weights/ version", "python/fluxparity/models/_npz.py",
     "    if found not in (FORMAT, FORMAT_V2):", '    if not str(found).startswith("fluxparity-weights/"):', CLAIMS),
    ("the golden reader accepts any fluxparity-weights/ version", "python/fluxparity/testing/_golden.py",
     'if texts["format"] not in (models.FORMAT, WEIGHTS_FORMAT_V2):', 'if not texts["format"].startswith("fluxparity-weights/"):',
     CLAIMS),
    ("the float32 first-epoch window loses its last step", COMPARE,
     "a.step_losses[:n_train], b.step_losses[:n_train], r, step_scale[:n_train]",
     "a.step_losses[:n_train - 1], b.step_losses[:n_train - 1], r, step_scale[:n_train - 1]", CLAIMS),
    ("the first divergent step off by one (compare)", COMPARE, "first_divergent_step=int(np.argmax(bad)) if",
     "first_divergent_step=int(np.argmax(bad)) + 1 if", CLAIMS),
    ("the first divergent step off by one (findings)", "python/fluxparity/report/_tables.py",
     "separate at step {step} (epoch", "separate at step {step + 1} (epoch", CLAIMS),
    ("train_chain renamed in julia/FluxParity.jl (static check)", FLUXPARITY_JL, "function train_chain(",
     "function train_chain2(", CROSS),
    ("train_chain renamed in julia/FluxParity.jl (the fake Julia)", FLUXPARITY_JL, "function train_chain(",
     "function train_chain2(", ["tests/test_flux_backend.py", "-k", "hands_julia_exactly"]),
    ("train_chain's epochs and lr swapped", FLUXPARITY_JL, "    epochs::Integer,\n    lr::Real,\n",
     "    lr::Real,\n    epochs::Integer,\n", CROSS),
    ("optimisers_rule renamed in julia/optimisers.jl", "julia/optimisers.jl", "function optimisers_rule(d::",
     "function optimisers_rule2(d::", CROSS),
    ("GRUv3's Wh_h̃ written as Wh in julia/weights.jl", "julia/weights.jl", "Array(c.Wh_h̃)", "Array(c.Wh)", CROSS),
    ("GRUv3's Wh_h̃ written as Wh in julia/golden.jl", "julia/golden.jl", '("Wh_htilde", WH_HTILDE)',
     '("Wh_htilde", :Wh)', CROSS),
    ("GRUv3Cell built with b and Wh_h̃ swapped in julia/weights.jl", "julia/weights.jl",
     '            arr("cell.b"),\n            arr("cell.Wh_htilde"),\n',
     '            arr("cell.Wh_htilde"),\n            arr("cell.b"),\n', CROSS),
    ("sigmoid added to the Julia RNN activations", "julia/activations.jl", '"relu" => relu)',
     '"relu" => relu, "sigmoid" => sigmoid)', CROSS),
    ("FLUXPARITY_REQUIRE_JULIA deleted from the workflow", ".github/workflows/ci.yml",
     '      FLUXPARITY_REQUIRE_JULIA: "1"\n', "", ["tests/test_ci_workflow.py"]),
    ("the compile tests left out of the workflow", ".github/workflows/ci.yml", "python -m pytest --run-compile",
     "python -m pytest", ["tests/test_ci_workflow.py"]),
]


def main(words: list[str]) -> int:
    """Plant every bug, or those whose description contains one of ``words``."""
    survived = 0
    for what, path, original, planted, tests in BUGS:
        if words and not any(w in what for w in words):
            continue
        with tempfile.TemporaryDirectory() as scratch:
            for part in ("python", "julia", "tests", "pyproject.toml", ".github"):
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
    sys.exit(main(sys.argv[1:]))

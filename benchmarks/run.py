"""Time the training paths against the compiled reference, as issue 4 asks ("measured against the naive port").

    python benchmarks/run.py            # the tutorial's size (1000 samples x 50 epochs): ~3-4 minutes on 2 cores
    python benchmarks/run.py --quick    # 100 samples x 5 epochs: a smoke run of every measurement (~15 s)
    python benchmarks/run.py --json     # one JSON object on stdout instead of the table

Measured, in this order, each in this process unless said otherwise:

* ``torch_plain``: one run of the ``torch`` backend (identity, float64): the idiomatic per-sample loop;
* ``torch_fast``: the same run through the batched fast path (``backends/pytorch_fast.py``) with K = 1;
* ``reference``: the compiled reference (numba), after a warm-up, best of 3;
* ``reference_python``: the same kernel interpreted (``ReferenceBackend(jit=False)``), once;
* ``torch_fast_x64``: the fast path training 64 seeds' runs as one batch (its per-model share is printed);
* ``compare_default``: ``fluxparity compare --backends torch,reference`` with its defaults (2 activations
  x 2 dtypes, the torch backend's fast path, 2 workers), through the CLI, reports included;
* ``compare_plain``: the same with ``--torch-path plain`` (the idiomatic nn.Module and autograd);
* ``sweep_1`` / ``sweep_64``: ``sweep.run_sweep`` over 1 and 64 seeds (all 4 runs, torch batched, the
  runs in 2 spawned workers: the defaults of ``fluxparity sweep``).

Peak memory is ``ru_maxrss`` of this process (and, separately, of its largest finished child process)
after each measurement: it only grows, so each value is the peak so far. A child started by fork+exec
(e.g. a subprocess) counts the parent's pages until it execs, so "children" can echo this process's size. Nothing here is tuned for the
numbers: the targets from the issue are printed next to what was measured, met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np

TARGETS = {  # from issue 4
    "torch_fast_over_reference": 3.0,
    "sweep64_over_one_seed": 4.0,
    "compare_default_seconds": 15.0,
}


def peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 samples x 5 epochs instead of 1000 x 50")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--seeds", type=int, default=64, help="seeds in the big sweep (default 64)")
    args = parser.parse_args(argv)
    samples, epochs = (100, 5) if args.quick else (1000, 50)

    from fluxparity.backends.pytorch import TorchBackend
    from fluxparity.backends.pytorch_fast import TorchFastBackend, train_batch
    from fluxparity.backends.reference import ReferenceBackend
    from fluxparity.cli import main as cli_main
    from fluxparity.config import ACTIVATIONS, DTYPES, RunConfig
    from fluxparity.data import generate_dataset
    from fluxparity.experiment import seeds_for
    from fluxparity.params import initial_params
    from fluxparity.sweep import run_sweep

    data_seed, param_seed = seeds_for(0)
    data, initial = generate_dataset(samples, data_seed), initial_params(param_seed)
    config = RunConfig("identity", "float64", epochs=epochs)
    log = (lambda *a: None) if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    rows = {}  # name -> (seconds, note)
    memory = {}

    def record(name, seconds, note=""):
        rows[name] = (seconds, note)
        memory[name] = peak_mb()
        log(f"  {name:18s} {seconds:9.3f} s  {note}")

    # warm-ups: numba's compiled kernel for every run (loaded from its cache or compiled), torch's first calls
    tiny_data = generate_dataset(5, data_seed)
    for a in ACTIVATIONS:
        for d in DTYPES:
            ReferenceBackend().train(RunConfig(a, d, epochs=1), tiny_data, initial)
            TorchFastBackend().train(RunConfig(a, d, epochs=1), tiny_data, initial)
            TorchBackend(path="plain").train(RunConfig(a, d, epochs=1), tiny_data, initial)

    label = f"identity/float64, {samples} x {epochs}"
    seconds, plain = timed(lambda: TorchBackend(path="plain").train(config, data, initial))
    record("torch_plain", seconds, label)
    seconds, fast = timed(lambda: TorchFastBackend().train(config, data, initial))
    same = bool(np.array_equal(fast.step_losses, plain.step_losses))
    record("torch_fast", seconds, f"{label}; step losses identical to plain: {same}")
    seconds = min(timed(lambda: ReferenceBackend().train(config, data, initial))[0] for _ in range(3))
    record("reference", seconds, f"{label}; compiled, best of 3")
    seconds, _ = timed(lambda: ReferenceBackend(jit=False).train(config, data, initial))
    record("reference_python", seconds, f"{label}; the same kernel interpreted (no numba)")
    batch_runs = [(config, generate_dataset(samples, d), initial_params(p))
                  for d, p in (seeds_for(s) for s in range(args.seeds))]
    seconds, _ = timed(lambda: train_batch(batch_runs))
    record(f"torch_fast_x{args.seeds}", seconds, f"{label}; {args.seeds} seeds as one batch "
           f"({seconds / args.seeds:.3f} s per model)")

    def compare_cli(*extra):
        with tempfile.TemporaryDirectory() as tmp:
            argv = ["compare", "--backends", "torch,reference", "--samples", str(samples), "--epochs", str(epochs),
                    *extra, "--out", os.path.join(tmp, "report"), "--quiet"]
            stdout = sys.stdout
            sys.stdout = open(os.devnull, "w")  # the report's text; we only want the time
            try:
                seconds, status = timed(lambda: cli_main(argv))
            finally:
                sys.stdout.close()
                sys.stdout = stdout
        return seconds, f"fluxparity {' '.join(argv[:-3])} (exit {status})"

    record("compare_default", *compare_cli())  # the torch backend's fast path, 2 workers
    record("compare_plain", *compare_cli("--torch-path", "plain"))  # the idiomatic nn.Module, 2 workers

    seconds, _ = timed(lambda: run_sweep([0], samples, epochs))
    record("sweep_1", seconds, "1 seed, 4 runs, torch fast + reference + comparisons, 2 workers")
    seconds, big = timed(lambda: run_sweep(args.seeds, samples, epochs))
    record(f"sweep_{args.seeds}", seconds, f"{args.seeds} seeds, 4 runs, 2 workers; torch batched: "
           + ", ".join(f"{k.split()[1]} {v:.1f}s" for k, v in big.seconds.items() if k.startswith("torch")))

    ref = rows["reference"][0]
    result = {
        "samples": samples, "epochs": epochs, "quick": args.quick, "cpus": os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "seconds": {name: s for name, (s, _) in rows.items()},
        "over_reference": {name: s / ref for name, (s, _) in rows.items()},
        "peak_rss_mb": {name: {"self": m[0], "children": m[1]} for name, m in memory.items()},
        "reference_seconds": ref,
        "torch_plain_seconds": rows["torch_plain"][0],
        "torch_fast_seconds": rows["torch_fast"][0],
        "torch_fast_over_reference": rows["torch_fast"][0] / ref,
        "torch_plain_over_fast": rows["torch_plain"][0] / rows["torch_fast"][0],
        "torch_fast_over_reference_python": rows["torch_fast"][0] / rows["reference_python"][0],
        "torch_fast_batch_per_model_over_reference": rows[f"torch_fast_x{args.seeds}"][0] / args.seeds / ref,
        "fast_equals_plain_float64": same,
        "compare_default_seconds": rows["compare_default"][0],
        "compare_plain_seconds": rows["compare_plain"][0],
        "sweep_seeds": args.seeds,
        "sweep64_over_one_seed": rows[f"sweep_{args.seeds}"][0] / rows["sweep_1"][0],
        "targets": TARGETS,
    }
    result["targets_met"] = {key: bool(result[key] <= limit) for key, limit in TARGETS.items()}

    if args.json:
        print(json.dumps(result))
        return 0
    print(f"\n{samples} samples x {epochs} epochs, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"{'measurement':18s} {'seconds':>9s} {'x reference':>12s} {'peak RSS MB':>12s} {'children MB':>12s}  what")
    for name, (s, note) in rows.items():
        own, kids = memory[name]
        print(f"{name:18s} {s:9.3f} {s / ref:12.1f} {own:12.0f} {kids:12.0f}  {note}")
    print("\ntarget (issue 4)                 measured      limit   met")
    for key, limit in TARGETS.items():
        print(f"{key:30s} {result[key]:10.2f} {limit:10.2f}   {'yes' if result['targets_met'][key] else 'NO'}")
    print(f"{'torch_plain_over_fast':30s} {result['torch_plain_over_fast']:10.2f}")
    print(f"{'torch_fast_over_reference_python':30s} {result['torch_fast_over_reference_python']:10.2f}"
          "   (against the same reference kernel, interpreted)")
    print(f"{'torch_fast_batch_per_model_over_reference':30s} {result['torch_fast_batch_per_model_over_reference']:10.2f}"
          f"   (one model's share of a {args.seeds}-model batch)")
    print(f"{'compare_plain_seconds':30s} {result['compare_plain_seconds']:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the training paths against the compiled reference, as issue 4 asks ("measured against the naive port").

    python benchmarks/run.py            # the tutorial's size (1000 samples x 50 epochs): ~4-5 minutes on 2 cores
    python benchmarks/run.py --quick    # 100 samples x 5 epochs: a smoke run of every measurement (~40 s)
    python benchmarks/run.py --json     # one JSON object on stdout instead of the table
    python benchmarks/run.py --only own-model   # only some groups of rows: tutorial, assert-parity, own-model

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
  runs in 2 spawned workers: the defaults of ``fluxparity sweep``);
* ``torch_compiled``: the ``torch_fast`` run's arithmetic as ONE ``torch.compile``d program (a scan over the
  steps, inductor's C++ wrapper; ``benchmarks/_torch_compiled.py``, a measurement, not a product path):
  compiled cold (inductor's caches off) once, then best of 3 warm runs. Its step losses are compared with
  ``torch_fast``'s and with the eager fast path run once more with a correctly rounded ``Tensor.sqrt``. It
  runs last, so the compiler's memory and worker processes do not weigh on the other rows; if it cannot
  compile (e.g. no C++ compiler), the reason is reported and everything else still is.

Then ``assert-parity`` (``benchmarks/parity_assert.py``: issue 11's ``assert_parity`` over bare torch) and
``own-model`` (``benchmarks/own_model.py``: issue 19's rows, a user's LSTM through ``compare``: the torch leg
over a bare PyTorch loop, the reference leg over the torch leg, measured interleaved, best of 5). The rows
above are the ``tutorial`` group; ``--only`` picks groups (the JSON then holds only their keys).

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

TARGETS = {  # issue 4 unless said
    "torch_fast_over_reference": 3.0,
    "sweep64_over_one_seed": 4.0,
    "compare_default_seconds": 15.0,
    "assert_parity_over_bare_torch": 1.5,  # issue 11: benchmarks/parity_assert.py
    "own_model_torch_over_bare": 1.5,  # issue 19 item 9: benchmarks/own_model.py
    "own_model_reference_over_torch": 3.0,  # issue 19 item 10
}
GROUPS = ("tutorial", "assert-parity", "own-model")


def _groups(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(g.strip() for g in text.split(",") if g.strip()))
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: give a comma list of {', '.join(GROUPS)}")
    return chosen


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
    parser.add_argument("--skip-compiled", action="store_true",
                        help="leave out the torch.compile row (its cold compile takes ~30 s)")
    parser.add_argument("--only", type=_groups, default=GROUPS, metavar="GROUPS",
                        help=f"comma list of the groups of rows to run: {', '.join(GROUPS)} (default: all)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # parity_assert, own_model, _torch_compiled
    result, table = tutorial(args) if "tutorial" in args.only else ({}, None)
    if "assert-parity" in args.only:
        from parity_assert import measure as measure_assert_parity

        result.update(measure_assert_parity(args.quick))
    if "own-model" in args.only:
        from own_model import measure as measure_own_model

        result.update(measure_own_model(args.quick))
    result["groups"] = list(args.only)
    result["targets"] = {key: limit for key, limit in TARGETS.items() if key in result}
    result["targets_met"] = {key: bool(result[key] <= limit) for key, limit in result["targets"].items()}

    if args.json:
        print(json.dumps(result))
        return 0
    if table is not None:
        table(result)
    print("\ntarget (issues 4, 11, 19)        measured      limit   met")
    for key, limit in result["targets"].items():
        print(f"{key:30s} {result[key]:10.2f} {limit:10.2f}   {'yes' if result['targets_met'][key] else 'NO'}")
    if "own-model" in args.only:
        print(f"\nown model: {result['own_model_case']}; best of {result['own_model_repeats']}, interleaved")
        for key in ("own_model_torch_seconds", "own_model_torch_training_seconds", "own_model_torch_evaluation_seconds",
                    "own_model_bare_seconds", "own_model_reference_seconds", "own_model_reference_training_seconds",
                    "own_model_reference_evaluation_seconds"):
            print(f"{key:40s} {result[key]:8.3f} s")
        print(f"{'own_model_torch_training_over_bare':40s} {result['own_model_torch_training_over_bare']:8.2f}")
        print(f"{'own_model_reference_training_over_torch_training':40s} "
              f"{result['own_model_reference_training_over_torch_training']:8.2f}")
        print(f"bare loop's step losses equal the torch leg's: {result['own_model_bare_equals_torch_leg']}; "
              f"the torch leg's optimizer: {result['own_model_torch_optimizer']}")
    return 0


def tutorial(args) -> tuple[dict, object]:
    """The tutorial's rows (the module docstring's list): their result keys, and a function printing their table."""
    samples, epochs = (100, 5) if args.quick else (1000, 50)

    from fluxparity.backends.pytorch import TorchBackend
    from fluxparity.backends.pytorch_fast import train_batch
    from fluxparity.backends.reference import ReferenceBackend
    from fluxparity.cli import main as cli_main
    from fluxparity.data import generate_dataset
    from fluxparity.experiment import ACTIVATIONS, DTYPES, seeds_for
    from fluxparity.models import tutorial_chain
    from fluxparity.run import RunSpec
    from fluxparity.sweep import run_sweep

    data_seed, param_seed = seeds_for(0)
    data, initial = generate_dataset(samples, data_seed), tutorial_chain(param_seed)
    config = RunSpec(initial, data, dtype="float64", epochs=epochs)
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
            warm = tutorial_chain(param_seed, a)
            warm_run = RunSpec(warm, tiny_data, dtype=d, epochs=1)
            ReferenceBackend().train(warm_run)
            TorchBackend(path="fast").train(warm_run)
            TorchBackend(path="plain").train(warm_run)

    label = f"identity/float64, {samples} x {epochs}"
    seconds, plain = timed(lambda: TorchBackend(path="plain").train(config))
    record("torch_plain", seconds, label)
    seconds, fast = timed(lambda: TorchBackend(path="fast").train(config))
    same = bool(np.array_equal(fast.step_losses, plain.step_losses))
    record("torch_fast", seconds, f"{label}; step losses identical to plain: {same}")
    seconds = min(timed(lambda: ReferenceBackend().train(config))[0] for _ in range(3))
    record("reference", seconds, f"{label}; compiled, best of 3")
    seconds, _ = timed(lambda: ReferenceBackend(jit=False).train(config))
    record("reference_python", seconds, f"{label}; the same kernel interpreted (no numba)")
    batch_runs = [RunSpec(tutorial_chain(p), generate_dataset(samples, d), dtype="float64", epochs=epochs)
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

    def failure(error: Exception) -> str:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()
                 and "TORCHDYNAMO_VERBOSE" not in line and "For more details" not in line]  # not PyTorch's hints
        return f"{type(error).__name__}: {' / '.join(lines[:3])[:400]}"

    compiled, check, compiled_error = None, {}, None
    if args.skip_compiled:
        compiled_error = "skipped (--skip-compiled)"
    else:
        try:  # torch.compile: private PyTorch APIs and a C++ compiler; a failure is a finding, not a crash
            from _torch_compiled import parity, train_compiled

            compiled = train_compiled(config, data, initial, unroll=10, repeats=3)
        except Exception as error:  # any failure of the compiler stack is reported as is
            compiled_error = failure(error)
    if compiled is not None:
        try:
            check = parity(config, data, initial, compiled, eager=fast)
        except Exception as error:
            compiled_error = f"the bit-identity check failed: {failure(error)}"
    if compiled is not None:
        note = (f"{label}; torch.compile, best of 3 warm (the compiled loop alone {compiled.loop_seconds:.3f} s; "
                f"cold compile {compiled.compile_seconds:.1f} s; unroll {compiled.unroll})")
        if check:
            note += (f"; first step differing from torch_fast: {check['first_difference_step']} "
                     f"(max |diff| {check['max_abs_step_loss_difference']:.1e}); "
                     f"equals torch_fast with IEEE sqrt: {check['equals_eager_with_ieee_sqrt']}")
        record("torch_compiled", compiled.run_seconds, note + (f"; {compiled_error}" if compiled_error else ""))
    else:
        log(f"  torch_compiled     failed: {compiled_error}")

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
        "torch_compiled_seconds": compiled.run_seconds if compiled else None,
        "torch_compiled_loop_seconds": compiled.loop_seconds if compiled else None,  # the compiled program alone
        "torch_compiled_compile_seconds": compiled.compile_seconds if compiled else None,
        "torch_compiled_over_reference": compiled.run_seconds / ref if compiled else None,
        "torch_fast_over_compiled": rows["torch_fast"][0] / compiled.run_seconds if compiled else None,
        "torch_compiled_unroll": compiled.unroll if compiled else None,
        "torch_compiled_error": compiled_error,  # None when it compiled, ran and was checked
        # 0-based step; None: no step differs (or, with torch_compiled_error, not measured)
        "compiled_first_difference_step": check.get("first_difference_step"),
        "compiled_max_abs_step_loss_difference": check.get("max_abs_step_loss_difference"),
        "compiled_differing_steps": check.get("differing_steps"),
        "compiled_equals_eager_with_ieee_sqrt": bool(check.get("equals_eager_with_ieee_sqrt", False)),
    }

    def table(result: dict) -> None:
        print(f"\n{samples} samples x {epochs} epochs, {os.cpu_count()} CPUs, {platform.platform()}")
        print(f"{'measurement':18s} {'seconds':>9s} {'x reference':>12s} {'peak RSS MB':>12s} {'children MB':>12s}  what")
        for name, (s, note) in rows.items():
            own, kids = memory[name]
            print(f"{name:18s} {s:9.3f} {s / ref:12.1f} {own:12.0f} {kids:12.0f}  {note}")
        if compiled is None:
            print(f"{'torch_compiled':18s} {'failed':>9s}  {compiled_error}")
        print("\ntutorial, for information        measured")
        if compiled:  # not a target row: not the product's path
            print(f"{'torch_compiled_over_reference':30s} {result['torch_compiled_over_reference']:10.2f}"
                  f"   (torch.compile of the whole loop, benchmarks/_torch_compiled.py, not the product path;"
                  f" {result['torch_fast_over_compiled']:.1f}x faster than torch_fast)")
        else:
            print(f"{'torch_compiled_over_reference':30s} {'failed':>10s}   ({compiled_error})")
        print(f"{'torch_plain_over_fast':30s} {result['torch_plain_over_fast']:10.2f}")
        print(f"{'torch_fast_over_reference_python':30s} {result['torch_fast_over_reference_python']:10.2f}"
              "   (against the same reference kernel, interpreted)")
        print(f"{'torch_fast_batch_per_model_over_reference':30s} "
              f"{result['torch_fast_batch_per_model_over_reference']:10.2f}"
              f"   (one model's share of a {args.seeds}-model batch)")
        print(f"{'compare_plain_seconds':30s} {result['compare_plain_seconds']:10.2f}")

    return result, table


if __name__ == "__main__":
    sys.exit(main())

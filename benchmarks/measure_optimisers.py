"""Measure every Optimisers.jl rule three ways: the NumPy reference, fluxparity.optim.FluxOptimiser (torch)
and the stock torch.optim mapping, on multi-step trajectories (docs/optimisers.md quotes this output).

    python benchmarks/measure_optimisers.py                       # 300 steps, both problems, both dtypes (~2 min)
    python benchmarks/measure_optimisers.py --steps 100 --json out.json

Columns, per problem (lstm: LSTM(2=>6)+Dense on a fixed batch; tutorial: the sum task's RNN(1=>1)) and
dtype, for each rule case of fluxparity.optim._trajectory.CASES:

- ours: max |ours - reference| over all steps and elements (0 means bit-identical throughout);
- forced: the torch mapping fed the reference's gradients (only optimiser arithmetic accumulates), as
  max |diff| / rounding budget (budget = u * sum_t (|x_t| + |x_t - x_(t-1)|) per element), and the first
  step where anything differs;
- free: the torch mapping training on its own parameters like a real port, as max |diff| / max |x_ref|.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from fluxparity.optim import parse_spec
from fluxparity.optim._trajectory import CASES, PROBLEMS, budget_ratio, max_rel_diff, rounding_budget, run


def max_abs(a, b) -> float:
    return max(float(np.abs(pa[n].astype(np.float64) - pb[n].astype(np.float64)).max()) for pa, pb in zip(a, b)
               for n in pb)


def measure(case: str, problem: str, dtype: str, steps: int) -> dict:
    rule = parse_spec(CASES[case])
    forced = run(rule, problem, dtype, steps, torch_gradients="reference")
    row = {"case": case, "spec": CASES[case], "problem": problem, "dtype": dtype, "steps": steps,
           "ours_max_abs_diff": max_abs(forced.legs["ours"], forced.legs["reference"]),
           "torch_exact": forced.torch_exact, "torch_note": forced.torch_note}
    if "torch" in forced.legs:
        ref = forced.legs["reference"]
        row["forced_budgets"] = budget_ratio(forced.legs["torch"], ref, rounding_budget(ref, forced.start))
        row["forced_first_step"] = max_rel_diff(forced.legs["torch"], ref)[1]
        free = run(rule, problem, dtype, steps, torch_gradients="own")
        row["free_rel"], row["free_first_step"] = max_rel_diff(free.legs["torch"], free.legs["reference"])
    return row


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "inf" if math.isinf(x) else ("0" if x == 0 else f"{x:.3g}")
    return str(x)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the rows as a JSON list here")
    parser.add_argument("--problem", choices=PROBLEMS, action="append", help="default: all")
    parser.add_argument("--dtype", choices=("float64", "float32"), action="append", help="default: both")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    rows = []
    header = f"{'case':20s} {'torch.optim':11s} {'ours-ref':>9s} {'forced/budget':>13s} {'first':>5s} {'free rel':>9s}"
    for problem in args.problem or PROBLEMS:
        for dtype in args.dtype or ("float64", "float32"):
            print(f"\n{problem}, {dtype}, {args.steps} steps")
            print(header)
            for case in CASES:
                row = measure(case, problem, dtype, args.steps)
                rows.append(row)
                kind = {True: "exact", False: "inexact", None: "none"}[row["torch_exact"]]
                print(f"{case:20s} {kind:11s} {_fmt(row['ours_max_abs_diff']):>9s} "
                      f"{_fmt(row.get('forced_budgets')):>13s} {_fmt(row.get('forced_first_step')):>5s} "
                      f"{_fmt(row.get('free_rel')):>9s}")
                sys.stdout.flush()
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

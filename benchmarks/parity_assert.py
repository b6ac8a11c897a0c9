"""What ``fluxparity.testing.assert_parity`` costs over the bare torch work it checks (issue 11's speed target).

    python benchmarks/parity_assert.py           # the issue's size: ~35 s on 2 cores, most of it recording the golden
    python benchmarks/parity_assert.py --quick   # length 5, 2 steps, best of 1: a smoke run

The model is Flux's ``Chain(LSTM(32 => 128), Dense(128 => 10))`` in float64, batch 32, length 50, read at the
last step, mse, 10 Adam (eta 0.01) steps; its golden is recorded once by the NumPy reference (not timed).
``bare``: the torch work ``assert_parity`` does, without checking anything — one forward pass, one
forward/backward, then 10 steps (forward, backward, ``FluxOptimiser`` step: the golden's Optimisers.jl rule,
which is what ``assert_parity`` trains with). ``assert_parity``: the call on the golden's path (reading and
checking the file, loading the weights, every comparison). Each is the best of 5 after a warm-up, the
three measurements interleaved;
``assert_parity_over_bare_torch`` is their ratio (target: at most 1.5). ``bare_torch_adam`` (the same steps
with ``torch.optim.Adam``) is printed for information.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = 1.5


def _best_interleaved(fns: dict, repeats: int) -> dict:
    """``{name: best seconds}``: each function once as a warm-up, then ``repeats`` rounds calling each in turn
    (interleaved, so that a burst of load from other processes hits every measurement alike)."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def measure(quick: bool = False) -> dict:
    import torch

    from fluxparity import models
    from fluxparity.optim import FluxOptimiser
    from fluxparity.testing import assert_parity, load_golden, record_golden

    length, steps, repeats = (5, 2, 1) if quick else (50, 10, 5)
    chain = models.init_chain(32, [("lstm", 128)], [(10,)], seed=0, dtype=np.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, length, 32))
    y = rng.standard_normal((10, 32))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lstm.npz"
        record_golden(path, chain, x, y, loss="mse", rule="adam:eta=0.01", steps=steps)
        golden = load_golden(path)
        module = models.build_module(chain, dtype=torch.float64)
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 2, 0)))
        yt = torch.from_numpy(np.ascontiguousarray(y.T))
        trainable = [p for p in module.parameters() if p.requires_grad]

        def bare(make_optimiser):
            def run():
                with torch.no_grad():
                    module(xt)
                module.zero_grad(set_to_none=True)
                torch.nn.functional.mse_loss(module(xt)[-1], yt).backward()
                opt = make_optimiser()
                for _ in range(steps):
                    opt.zero_grad(set_to_none=True)
                    torch.nn.functional.mse_loss(module(xt)[-1], yt).backward()
                    opt.step()
            return run

        best = _best_interleaved({"bare": bare(lambda: FluxOptimiser(trainable, golden.rule)),
                                  "assert": lambda: assert_parity(path, module),
                                  "adam": bare(lambda: torch.optim.Adam(trainable, lr=0.01))}, repeats)
        bare_seconds, assert_seconds, adam_seconds = best["bare"], best["assert"], best["adam"]
    return {
        "assert_parity_seconds": assert_seconds,
        "assert_parity_bare_torch_seconds": bare_seconds,
        "assert_parity_bare_torch_adam_seconds": adam_seconds,
        "assert_parity_over_bare_torch": assert_seconds / bare_seconds,
        "assert_parity_case": f"Chain(LSTM(32 => 128), Dense(128 => 10)), float64, batch 32, length {length}, "
                              f"{steps} Adam steps",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="length 5, 2 steps, best of 1")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    result = measure(args.quick)
    if args.json:
        print(json.dumps(result))
        return 0
    print(result["assert_parity_case"])
    for key in ("assert_parity_seconds", "assert_parity_bare_torch_seconds", "assert_parity_bare_torch_adam_seconds"):
        print(f"{key:40s} {result[key]:8.3f} s")
    ratio = result["assert_parity_over_bare_torch"]
    print(f"{'assert_parity_over_bare_torch':40s} {ratio:8.2f}   target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

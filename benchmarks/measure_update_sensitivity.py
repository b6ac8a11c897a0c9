"""How sensitive training parity is: the honest update differences of right ports (the basis of
``fluxparity.testing._assert.UPDATE_RTOL``) and the smallest planted optimiser difference each default detects
(docs/parity.md, "Training parity compares every update").

    python benchmarks/measure_update_sensitivity.py            # ~3 minutes on 2 cores
    python benchmarks/measure_update_sensitivity.py --part honest|planted

``honest``: for the architectures of ``measure_golden_tolerances.py`` (every cell kind, single and stacked,
with and without Dense, readouts last and all, the four losses, both dtypes), a reference
golden with the parameters after every step (Adam eta 0.01, 10 steps) against the torch module built from its
Chain, trained with the golden's rule (``FluxOptimiser``). Printed per dtype: the largest
``(|Δa - Δe| - 4 eps max|p|) / max|Δe|`` over every array and step — the update rtol a right port needs.

``planted``: ``Chain(LSTM(3 => 5), Dense(5 => 2))``, input ``(3, 5, 4)``, mse, Adam eta 0.01, 3 steps with
every step recorded (``record_golden``'s default K), both dtypes; the module trained with a planted rule —
AdamW with weight decay lambda, Adam with another epsilon, Adam with eta x (1 + delta) — on a grid of 1, 2, 5
per decade. Printed: the smallest planted value ``assert_training_parity`` fails on, and the smallest one the
losses and parameters alone (without the update comparison) fail on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from fluxparity import models
from fluxparity.optim import FluxOptimiser, rule
from fluxparity.testing import ParityError, _assert, assert_training_parity
from fluxparity.testing._golden import record_golden

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_golden_tolerances import ARCHITECTURES, LOSSES, targets  # noqa: E402

TORCH = {np.float32: torch.float32, np.float64: torch.float64}


def honest() -> None:
    rng = np.random.default_rng(2024)
    worst = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in (np.float64, np.float32):
            for recurrent, dense in ARCHITECTURES:
                for readout in ("last", "all"):
                    for loss in LOSSES:
                        chain = models.init_chain(3, recurrent, dense, seed=int(rng.integers(1 << 30)), dtype=dtype,
                                                  readout=readout)
                        chain = models.with_flat_params(chain, {n: (a + 0.1 * rng.standard_normal(a.shape)).astype(dtype)
                                                                for n, a in chain.arrays().items()})
                        x = rng.standard_normal((3, 7, 5)).astype(dtype)
                        out = chain.output_size
                        y = targets(rng, loss, (out, 5) if readout == "last" else (out, 7, 5), dtype)
                        g = record_golden(Path(tmp) / "g.npz", chain, x, y, loss=loss, rule="adam:eta=0.01", steps=10,
                                          every_step=True)
                        module = models.build_module(g.chain, dtype=TORCH[dtype])
                        r = _assert._Run(g, module, None, False)
                        r.load({"rtol": 0, "atol": 0})
                        _, after = _assert.train_steps(g, r, module)
                        eps = float(np.finfo(dtype).eps)
                        before_e, before_a = g.chain.arrays(), g.chain.arrays()
                        for k in range(g.steps):
                            for n in before_e:
                                pe, pa = g.after_each[n][k].astype(np.float64), after[k][n].astype(np.float64)
                                de, da = pe - before_e[n], pa - before_a[n]
                                scale = max(np.abs(pe).max(), np.abs(before_e[n]).max())
                                need = (np.abs(da - de).max() - 4 * eps * scale) / max(np.abs(de).max(), 1e-300)
                                key = np.dtype(dtype).name
                                worst[key] = max(worst.get(key, -np.inf), float(need))
                            before_e = {n: g.after_each[n][k].astype(np.float64) for n in before_e}
                            before_a = {n: after[k][n].astype(np.float64) for n in before_a}
    print("honest update differences of right ports (Adam eta 0.01, 10 steps, every architecture):")
    for key, value in worst.items():
        print(f"  {key}: largest (|Δa - Δe| - 4 eps max|p|) / max|Δe| = {value:.2e}  (UPDATE_RTOL "
              f"{_assert.UPDATE_RTOL[key]:g})")


def _grid(lo_exp: int, hi_exp: int) -> list[float]:
    return [m * 10.0 ** e for e in range(lo_exp, hi_exp + 1) for m in (1, 2, 5)]


PLANTS = {
    "AdamW weight decay lambda": (lambda v: rule("AdamW", **{"eta": 0.01, "lambda": v}), _grid(-9, -1)),
    "Adam epsilon (golden 1e-8)": (lambda v: rule("Adam", eta=0.01, epsilon=v), _grid(-8, -2)[1:]),
    "Adam eta factor 1 + delta": (lambda v: rule("Adam", eta=0.01 * (1 + v)), _grid(-9, -1)),
}


def planted() -> None:
    print("smallest planted optimiser difference detected (LSTM(3 => 5) + Dense(5 => 2), Adam eta 0.01, 3 steps):")
    print(f"  {'dtype':8} {'planted difference':28} {'with updates':>14} {'losses+params only':>20}")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in (np.float32, np.float64):
            chain = models.init_chain(3, [("lstm", 5)], [(2,)], seed=0, dtype=dtype)
            rng = np.random.default_rng(0)
            chain = models.with_flat_params(chain, {n: (a + 0.1 * rng.standard_normal(a.shape)).astype(dtype)
                                                    for n, a in chain.arrays().items()})
            x = rng.standard_normal((3, 5, 4)).astype(dtype)
            y = rng.standard_normal((2, 4)).astype(dtype)
            g = record_golden(Path(tmp) / "g.npz", chain, x, y, loss="mse", rule="adam:eta=0.01", steps=3,
                              every_step=True)
            for name, (make, grid) in PLANTS.items():
                found, found_params = None, None
                for value in grid:
                    module = models.build_module(g.chain, dtype=TORCH[dtype])
                    opt = FluxOptimiser([p for p in module.parameters() if p.requires_grad], make(value))
                    try:
                        assert_training_parity(g, module, opt)
                    except ParityError as err:
                        found = value if found is None else found
                        if found_params is None and any(not m.quantity.startswith("update") for m in err.mismatches):
                            found_params = value
                    if found is not None and found_params is not None:
                        break
                print(f"  {np.dtype(dtype).name:8} {name:28} {_fmt(found):>14} {_fmt(found_params):>20}")


def _fmt(v) -> str:
    return "not in grid" if v is None else f"{v:g}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("honest", "planted", "both"), default="both")
    args = p.parse_args(argv)
    if args.part in ("honest", "both"):
        honest()
    if args.part in ("planted", "both"):
        planted()


if __name__ == "__main__":
    main()

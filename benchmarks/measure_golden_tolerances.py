"""Measure the honest differences between the torch modules and reference goldens: the basis of
``fluxparity.testing.TOLERANCES`` (docs/parity.md, "Golden files").

    python benchmarks/measure_golden_tolerances.py           # ~1 minute on 2 cores

For every cell kind (rnn identity/tanh/relu, lstm, gru, gruv3), single and stacked, with and without Dense
layers, readout last and all, every loss and float32/float64: record a reference golden (Adam, eta 0.01,
10 steps, parameters after every step), build the torch module from its Chain (``models.build_module``)
and compare forward, gradients and training with ZERO tolerance; print, per dtype and quantity, the
largest relative difference ``|a - e| / |e|`` over the elements with ``|e| >= 1e-3 * max|e|`` and the
largest absolute difference over the rest, relative to the quantity's largest ``|e|``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from fluxparity import models
from fluxparity.testing import _assert
from fluxparity.testing._golden import record_golden

ARCHITECTURES = [
    ([("rnn", 4, "identity")], ()), ([("rnn", 4, "tanh")], ()), ([("rnn", 4, "relu")], ((2,),)),
    ([("lstm", 5)], ()), ([("lstm", 5)], ((3, "relu"), (2,))), ([("gru", 4)], ((2, "sigmoid"),)),
    ([("gruv3", 4)], ((2, "tanh"),)), ([("lstm", 4), ("gru", 3)], ((2,),)), ([("gruv3", 3), ("rnn", 3, "tanh")], ()),
]
LOSSES = ("mse", "mae", "logitcrossentropy", "abs_sum")


def targets(rng, loss: str, shape, dtype):
    if loss == "logitcrossentropy":
        p = rng.random(shape)
        return (p / p.sum(axis=0, keepdims=True)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def differences(golden, module) -> dict:
    """{quantity: (max rel diff on large elements, max abs diff / max |e| on small ones)} at zero tolerance."""
    worst: dict = {}
    arrays = []

    def keep(quantity, expected, actual):
        arrays.append((quantity, np.asarray(expected, np.float64), np.asarray(actual, np.float64)))

    r = _assert._Run(golden, module, None, False)
    r.load({"rtol": 0, "atol": 0})
    y = r.run()
    keep("output", golden.output, r.to_flux(y))
    module.zero_grad(set_to_none=True)
    loss = r.loss(y)
    keep("loss", [golden.loss_value], [float(loss.detach())])
    loss.backward()
    for s in r.slots:
        keep("gradient", golden.grads[s.flux_name], r.params[s.torch_name].grad.numpy())
    losses, after = _assert.train_steps(golden, r, module)  # the golden's rule, as FluxOptimiser
    for k, values in enumerate(after):
        for name, value in values.items():
            keep(f"parameters after step {k + 1}", golden.after_each[name][k], value)
    keep("loss before each step", golden.losses, losses)
    for quantity, e, a in arrays:
        scale = np.abs(e).max() if e.size else 0.0
        big = np.abs(e) >= 1e-3 * scale
        rel = float((np.abs(a - e)[big] / np.abs(e[big])).max()) if big.any() else 0.0
        small = float((np.abs(a - e)[~big]).max() / scale) if (~big).any() and scale else 0.0
        old = worst.get(quantity, (0.0, 0.0))
        worst[quantity] = (max(old[0], rel), max(old[1], small))
    return worst


def main() -> None:
    rng = np.random.default_rng(2024)
    table: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype, tdtype in ((np.float64, torch.float64), (np.float32, torch.float32)):
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
                        d = differences(g, models.build_module(g.chain, dtype=tdtype))
                        for q, v in d.items():
                            key = (np.dtype(dtype).name, q if not q.startswith("parameters") else
                                   "parameters after step " + ("1-3" if int(q.split()[-1]) <= 3 else "4-10"))
                            old = table.get(key, (0.0, 0.0))
                            table[key] = (max(old[0], v[0]), max(old[1], v[1]))
    print(f"{'dtype':8} {'quantity':32} {'max rel (|e| >= 1e-3 max|e|)':>30} {'max abs / max|e| (rest)':>26}")
    for (dt, q), (rel, small) in sorted(table.items()):
        print(f"{dt:8} {q:32} {rel:30.2e} {small:26.2e}")


if __name__ == "__main__":
    main()

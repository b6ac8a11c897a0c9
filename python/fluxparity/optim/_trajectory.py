"""Multi-step training trajectories that compare three implementations of one rule: the NumPy reference,
:class:`FluxOptimiser` and the stock ``torch.optim`` mapping (when one exists).

Every leg computes its gradients with the same NumPy model code (``fluxparity.models`` reference
``value_and_grad``, called only in :func:`_value_and_grad`) at its OWN current parameters, so the legs differ
only by the optimiser and any difference feeds back through training as it would in a real port.

Problems (parameters are named float32/float64 arrays in Flux's layout):

- ``"lstm"``: LSTM(2 => 6) + Dense(6 => 1), a fixed batch of 8 sequences of length 5, mean squared error of
  the last output against a fixed target; one step per call.
- ``"tutorial"``: the tutorial's RNN(1 => 1) on its sum task (``fluxparity.data``), |ŷ - y| of the last
  output, one sequence per step cycling through 40 training sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._reference import ReferenceOptimiser
from ._rules import Rule

PROBLEMS = ("lstm", "tutorial")
# One case per rule and modifier (modifiers in a chain with a rule that moves), as spec strings.
CASES: dict[str, str] = {
    "Descent": "descent:eta=0.05",
    "Momentum": "momentum:eta=0.01,rho=0.9",
    "Nesterov": "nesterov:eta=0.01,rho=0.9",
    "RMSProp": "rmsprop",
    "RMSProp centred": "rmsprop:centred=true",
    "Adam": "adam:eta=0.01",
    "AdamW couple=true": "adamw:eta=0.01,lambda=0.01",
    "AdamW couple=false": "adamw:eta=0.01,lambda=0.001,couple=false",
    "RAdam": "radam:eta=0.01",
    "AdaMax": "adamax:eta=0.01",
    "NAdam": "nadam:eta=0.01",
    "AdaGrad": "adagrad:eta=0.05",
    "AdaDelta": "adadelta",
    "AMSGrad": "amsgrad:eta=0.01",
    "Rprop": "rprop",
    "Lion": "lion",
    "AdaBelief": "adabelief:eta=0.01",
    "WeightDecay": "chain:weightdecay=0.01,momentum",
    "SignDecay": "chain:signdecay=0.001,adam(eta=0.01)",
    "ClipGrad": "chain:clipgrad=0.05,momentum",
    "ClipNorm": "chain:clipnorm=0.1,adam(eta=0.01)",
    "AccumGrad": "chain:accumgrad=4,adam(eta=0.01)",
}
GradFn = Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]]


def _value_and_grad(flat: dict[str, np.ndarray], model, x: np.ndarray, loss) -> dict[str, np.ndarray]:
    """The one place this package calls ``fluxparity.models``: gradients of ``loss`` at ``flat``.

    ``x`` is ``(in, len, batch)``; returns gradients by the same names as ``flat``."""
    from .. import models

    params = models.with_flat_params(model, flat)
    _, grads = models.value_and_grad(params, x, loss)
    return models.flat_params(grads)


def problem(name: str, dtype) -> tuple[dict[str, np.ndarray], GradFn]:
    """``(initial params, grad(params, step) -> grads)`` for problem ``name`` in ``dtype``."""
    from .. import data, models

    dtype = np.dtype(dtype)
    if name == "lstm":
        model = models.init_model("lstm", 2, 6, 1, seed=7, dtype=dtype)
        rng = np.random.default_rng(11)
        x = rng.standard_normal((2, 5, 8)).astype(dtype)
        target = rng.standard_normal(8).astype(dtype)

        def mse(out: np.ndarray):
            r = out[0, -1] - target
            d = np.zeros_like(out)
            d[0, -1] = (2 / r.size) * r
            return float(np.mean(r.astype(np.float64) ** 2)), d

        return models.flat_params(model), lambda flat, step: _value_and_grad(flat, model, x, mse)
    if name == "tutorial":
        model = models.init_model("rnn", 1, 1, seed=3, dtype=dtype)
        ds = data.generate_dataset(40, seed=5)
        seqs = [s.astype(dtype).reshape(1, -1, 1) for s in ds.train_sequences]

        def grad(flat, step):
            i = step % len(seqs)
            return _value_and_grad(flat, model, seqs[i], models.abs_last_output_loss(ds.train_labels[i:i + 1]))

        return models.flat_params(model), grad
    raise ValueError(f"unknown problem {name!r}; choose from {', '.join(PROBLEMS)}")


@dataclass
class Trajectories:
    """Parameters after every step: ``{leg: [ {name: array}, ... ]}`` for legs ``reference``, ``ours`` and
    (when the rule has a torch mapping) ``torch``; ``torch_exact``/``torch_note`` come from the mapping
    (``torch_note`` says why there is none when the leg is missing)."""

    legs: dict[str, list[dict[str, np.ndarray]]]
    start: dict[str, np.ndarray]
    torch_exact: bool | None
    torch_note: str


def run(rule: Rule, problem_name: str, dtype, steps: int, *, torch_gradients: str = "own") -> Trajectories:
    """Train ``steps`` steps with each leg from the same start.

    The reference and ``ours`` always use gradients at their own parameters. ``torch_gradients="reference"``
    gives the torch mapping the gradients computed at the REFERENCE's parameters of the same step, so its
    difference is the optimiser arithmetic accumulated over the steps, without the model's feedback; with
    ``"own"`` it trains on its own parameters like a real port."""
    import torch

    from ._mapping import NoTorchEquivalent, torch_mapping
    from ._torch import FluxOptimiser

    if torch_gradients not in ("own", "reference"):
        raise ValueError(f"torch_gradients must be 'own' or 'reference', got {torch_gradients!r}")
    start, grad = problem(problem_name, dtype)
    ref = ReferenceOptimiser(rule, start)
    ref_grads, out = [], {"reference": []}
    for k in range(steps):
        ref_grads.append(grad(ref.params, k))
        out["reference"].append(dict(ref.step(ref_grads[-1])))
    makers = {"ours": (lambda ps: FluxOptimiser(ps, rule), False)}
    exact, note = None, ""
    try:
        mapping = torch_mapping(rule)
        exact, note = mapping.exact, mapping.note
        makers["torch"] = (mapping.bind, torch_gradients == "reference")
    except NoTorchEquivalent as e:
        note = str(e)
    for leg, (make, forced) in makers.items():
        tensors = {k: torch.tensor(v) for k, v in start.items()}
        stepper = make(list(tensors.values()))
        history = []
        for k in range(steps):
            grads = ref_grads[k] if forced else grad({n: t.detach().numpy().copy() for n, t in tensors.items()}, k)
            for n, t in tensors.items():
                t.grad = torch.from_numpy(grads[n].copy())
            stepper.step()
            history.append({n: t.detach().numpy().copy() for n, t in tensors.items()})
        out[leg] = history
    return Trajectories(out, start, exact, note)


def rounding_budget(reference: list[dict[str, np.ndarray]], start: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per step and element, ``u * sum over steps so far of (|x_t| + |x_t - x_(t-1)|)`` with u the unit
    roundoff of the dtype: the scale of the rounding a correct implementation of the same update may
    accumulate (each step rounds the update to a few ulps of its size and the new parameter to half an ulp)."""
    out, total, prev = [], {n: np.zeros(a.shape) for n, a in start.items()}, start
    for params in reference:
        for n, x in params.items():
            u = np.finfo(x.dtype).eps / 2
            total[n] = total[n] + u * (np.abs(x.astype(np.float64)) + np.abs(x.astype(np.float64) - prev[n]))
        out.append({n: t.copy() for n, t in total.items()})
        prev = params
    return out


def budget_ratio(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]], budget) -> float:
    """``max |a - b| / budget`` over steps and elements (0 when equal)."""
    worst = 0.0
    for pa, pb, bud in zip(a, b, budget):
        for n in pb:
            diff = np.abs(pa[n].astype(np.float64) - pb[n].astype(np.float64))
            worst = max(worst, float((diff / np.maximum(bud[n], np.finfo(np.float64).tiny)).max()))
    return worst


def max_rel_diff(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> tuple[float, int | None]:
    """``(max over steps and arrays of max|a - b| / max(max|b|, tiny), first step (1-based) where a != b)``."""
    worst, first = 0.0, None
    for k, (pa, pb) in enumerate(zip(a, b)):
        for n in pb:
            diff = np.abs(pa[n].astype(np.float64) - pb[n].astype(np.float64))
            scale = max(float(np.abs(pb[n]).max()), np.finfo(pb[n].dtype).tiny)
            if first is None and diff.max() > 0:
                first = k + 1
            worst = max(worst, float(diff.max()) / scale)
    return worst, first

"""How far this machine's Adam trajectories are from tests/data/adam_trajectories_before_issue12.npz.

Prints, per run and leg, max |run - pin| in units of eps(dtype) * max|pinned array| over the step losses and
final parameters (docs/parity.md, "Pins and the CPU"). Run it once per dispatch target, e.g.
``NPY_DISABLE_CPU_FEATURES=X86_V3``, ``OPENBLAS_CORETYPE=Prescott``, ``ATEN_CPU_CAPABILITY=default``; an
optional argument is an ``--optimizer`` spec to run instead of the pinned ``lr=2e-3`` Adam.
"""
import json
import sys

import numpy as np

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.data import generate_dataset
from fluxparity.experiment import seeds_for, shorthand_chain
from fluxparity.optim import parse_spec, rule
from fluxparity.run import RunSpec
PIN = "tests/data/adam_trajectories_before_issue12.npz"
RUNS = [("rnn", 1, "tanh", d) for d in ("float32", "float64")] + [("lstm", 2, "gated", d) for d in ("float32", "float64")] + [("rnn", 1, "identity", d) for d in ("float32", "float64")]
spec = sys.argv[1] if len(sys.argv) > 1 else None
data_seed, param_seed = seeds_for(3)
data = generate_dataset(30, data_seed)
out = {}
with np.load(PIN) as pin:
  for model, hidden, act, dtype in RUNS:
    initial = shorthand_chain(model, hidden, act, param_seed)
    config = RunSpec(initial, data, rule=parse_spec(spec) if spec else rule("Adam", eta=2e-3), loss="abs_sum",
                     dtype=dtype, epochs=2)
    eps = float(np.finfo(dtype).eps)
    for name, b in (("reference", ReferenceBackend()), ("torch-torch", TorchBackend("torch", "plain")), ("torch-optimisers", TorchBackend("optimisers", "plain"))):
        r = b.train(config)
        key = f"{model}-{act}-{dtype}-{name}"
        arrays = {"step_losses": r.step_losses, **r.final_params.arrays()}
        worst = 0.0
        for k, v in arrays.items():
            p = pin[f"{key}/{k}"]
            worst = max(worst, float(np.max(np.abs(v - p)) / (eps * np.max(np.abs(p)))))
        out[key] = round(worst, 2)
print(json.dumps(out))

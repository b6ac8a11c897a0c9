import sys
import numpy as np
from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.config import RunConfig
from fluxparity.experiment import seeds_for, initial_for
from fluxparity.data import generate_dataset
out = {}
data_seed, param_seed = seeds_for(3)
data = generate_dataset(30, data_seed)
for model, hidden, acts in (("rnn", 1, ("identity", "tanh")), ("lstm", 2, ("gated",))):
    for act in acts:
        for dtype in ("float32", "float64"):
            config = RunConfig(activation=act, dtype=dtype, epochs=2, lr=2e-3, model=model, hidden=hidden)
            initial = initial_for(config, param_seed)
            legs = {"reference": ReferenceBackend(), "torch-torch": TorchBackend("torch", "plain"),
                    "torch-optimisers": TorchBackend("optimisers", "plain")}
            for name, backend in legs.items():
                r = backend.train(config, data, initial)
                key = f"{model}-{act}-{dtype}-{name}"
                out[key + "/step_losses"] = r.step_losses
                for k, v in r.final_params.arrays().items():
                    out[f"{key}/{k}"] = v
np.savez_compressed(sys.argv[1], **out)
print(len(out))

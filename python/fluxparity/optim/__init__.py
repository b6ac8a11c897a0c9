"""Optimisers.jl (v0.4.8) rules for PyTorch ports: descriptions, a NumPy reference of their exact arithmetic,
a ``torch.optim.Optimizer`` computing the same arithmetic, and the stock ``torch.optim`` equivalents.

Arrays: each parameter is any-shape float32/float64 (NumPy in the reference, CPU tensors in torch), its
gradient the same shape and dtype. docs/optimisers.md has the per-rule table and the measured differences.
"""

from ._arith import norm as norm
from ._reference import ReferenceOptimiser as ReferenceOptimiser, setup as setup, update as update
from ._rules import (
    CLIPNORM_P as CLIPNORM_P,
    MODIFIERS as MODIFIERS,
    RULE_NAMES as RULE_NAMES,
    Rule as Rule,
    defaults as defaults,
    from_dict as from_dict,
    parse_spec as parse_spec,
    rule as rule,
    to_dict as to_dict,
    to_julia as to_julia,
)

# torch-side names load on first use: the Flux worker's process imports this package and must never import
# torch (docs/julia.md).
from .._lazy import lazy_names

_TORCH_NAMES = {
    "FluxOptimiser": "._torch",
    "TorchOps": "._torch",
    "ieee_sqrt": "._torch",
    "NADAM_MOMENTUM_DECAY": "._mapping",
    "NoTorchEquivalent": "._mapping",
    "TorchMapping": "._mapping",
    "torch_mapping": "._mapping",
}

__getattr__, __dir__ = lazy_names(__name__, _TORCH_NAMES, globals())

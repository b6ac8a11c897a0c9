"""One model description for every model, :class:`Chain` — Flux's ``Chain`` of stacked recurrent layers (RNN,
LSTM, GRU, GRUv3) then Dense layers, read at the last step or at every step; the tutorial's ``RNN(1 => 1)``
is one instance. With it: Flux's losses (:mod:`._losses`), a NumPy reference (forward and hand-written
backprop through time), the idiomatic PyTorch modules, weight conversion both ways, and a weights file
Julia reads (``julia/weights.jl``). The layer types (``RNNParams``, ``LSTMParams``, ``GRUParams``,
``GRUv3Params``, ``DenseParams``) describe one layer each; a model is always a :class:`Chain`.
:func:`parse_flux` reads a model written as Flux prints it (``Chain(LSTM(3 => 16), Dense(16 => 2, relu))``)
into a :class:`ModelSpec` (``.init(seed)`` draws its weights by Flux's rule); :func:`flux_expression` writes
a Chain back as that text.

Layouts at this package's boundaries: parameters are Flux's ``(out, in)`` matrices (= PyTorch's);
sequences are Flux's ``(in, len, batch)`` in NumPy and PyTorch's ``(len, batch, in)`` in tensors.
See ``docs/porting.md`` for the Flux -> PyTorch correspondence and the tests that pin it.
"""

from ._activations import sigmoid_fast as sigmoid_fast, tanh_fast as tanh_fast
from ._losses import (
    JULIA_NAMES as JULIA_NAMES,
    LOSSES as LOSSES,
    chain_loss as chain_loss,
    loss_value_and_grad as loss_value_and_grad,
    per_sample_losses as per_sample_losses,
    readout as readout,
)
from ._expr import ModelSpec as ModelSpec, flux_expression as flux_expression, parse_flux as parse_flux
from ._npz import FORMAT as FORMAT, load_npz as load_npz, read_entries as read_entries, save_npz as save_npz
from ._params import (
    KINDS as KINDS,
    RNN_ACTIVATIONS as RNN_ACTIVATIONS,
    DENSE_ACTIVATIONS as DENSE_ACTIVATIONS,
    READOUTS as READOUTS,
    CellParams as CellParams,
    Chain as Chain,
    DenseParams as DenseParams,
    GRUParams as GRUParams,
    GRUv3Params as GRUv3Params,
    LSTMParams as LSTMParams,
    RNNParams as RNNParams,
    as_chain as as_chain,
    flat_params as flat_params,
    glorot_uniform as glorot_uniform,
    init_chain as init_chain,
    init_cell as init_cell,
    init_dense as init_dense,
    init_model as init_model,
    tutorial_chain as tutorial_chain,
    tutorial_weights as tutorial_weights,
    with_tutorial_weights as with_tutorial_weights,
    with_flat_params as with_flat_params,
)
from ._reference import (
    Trace as Trace,
    abs_last_output_loss as abs_last_output_loss,
    backward as backward,
    forward as forward,
    outputs as outputs,
    value_and_grad as value_and_grad,
)
# PyTorch-side names load on first use, so that the Flux backend's process can use this package (params,
# reference, weights file) without ever importing torch: juliacall and torch must not share a process
# unless juliacall came first (docs/julia.md).
from .._lazy import lazy_names

_TORCH_NAMES = {
    "freeze_hidden_biases": "._convert",
    "from_module": "._convert",
    "from_state_dict": "._convert",
    "gradients_to_flux": "._convert",
    "to_state_dict": "._convert",
    "GRUv3": "._torch",
    "OneBiasRNN": "._torch",
    "ChainModule": "._torch",
    "torch_loss": "._torch",
    "torch_per_sample_losses": "._torch",
    "torch_readout": "._torch",
    "build_module": "._torch",
    "empty_module": "._torch",
    "flux_to_torch_layout": "._torch",
    "run": "._torch",
    "run_with_gradients": "._torch",
    "torch_to_flux_layout": "._torch",
}

__getattr__, __dir__ = lazy_names(__name__, _TORCH_NAMES, globals())

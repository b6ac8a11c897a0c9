"""Names shared by both directions: a Chain written as Flux source, the port's NAME and its file names."""

from __future__ import annotations

import keyword
import re

from ..models import Chain, DenseParams

FLUX_KIND = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "gruv3": "GRUv3"}
# Names the generated Python module defines or imports: a port class of the same name would shadow one.
RESERVED = frozenset({"torch", "nn", "np", "IdentityRNN", "GRUv3", "FLUX_NAMES", "FLUX_LAYERS", "READOUT",
                      "load_flux_weights", "freeze_hidden_bias", "flux_init_"})


class PortError(ValueError):
    """Bad input to ``fluxparity port`` (or its Python functions): one line naming the value and what is allowed."""


def layer_expression(layer) -> str:
    """One layer as Flux source: ``LSTM(3 => 16)``, ``RNN(1 => 1, identity)``, ``Dense(16 => 2, relu)``.

    Flux's defaults are left out, as a person writes them: RNN's ``tanh`` (recurrent.jl:284), Dense's
    ``identity`` (basic.jl:189)."""
    if isinstance(layer, DenseParams):
        act = "" if layer.activation == "identity" else f", {layer.activation}"
        return f"Dense({layer.input_size} => {layer.output_size}{act})"
    act = f", {layer.activation}" if layer.kind == "rnn" and layer.activation != "tanh" else ""
    return f"{FLUX_KIND[layer.kind]}({layer.input_size} => {layer.hidden_size}{act})"


def chain_expression(chain: Chain) -> str:
    """The Chain as Flux source, e.g. ``Chain(LSTM(3 => 16), Dense(16 => 2, relu))``."""
    return "Chain(" + ", ".join(layer_expression(layer) for layer in chain.layers) + ")"


def check_name(name: str) -> str:
    """``name`` if it can be a Python class (and Julia) name here; ValueError saying what is allowed."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii() or keyword.iskeyword(name):
        raise PortError(f"--name {name!r} is not a Python identifier (ASCII letters, digits and _, not starting "
                         "with a digit, not a keyword), e.g. FluxPort")
    if name in RESERVED or name.startswith("_"):
        raise PortError(f"--name {name!r} is taken by the generated code or private; use another, e.g. FluxPort "
                         f"(taken: {', '.join(sorted(RESERVED))})")
    return name


def snake_case(name: str) -> str:
    """``FluxPort`` -> ``flux_port``, ``LSTMModel`` -> ``lstm_model``: the generated files' stem."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()

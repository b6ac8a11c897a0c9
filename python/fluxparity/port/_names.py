"""Names shared by both directions: a Chain written as Flux source, the port's NAME and its file names."""

from __future__ import annotations

import keyword
import re

from ..models import Chain, flux_expression

FLUX_KIND = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "gruv3": "GRUv3"}
# Modules the generated Python files import: a port file of the same name would shadow them.
IMPORTED = frozenset({"torch", "numpy", "pytest", "fluxparity", "pathlib"})
# Names the generated Python module defines or imports: a port class of the same name would shadow one.
RESERVED = frozenset({"torch", "nn", "np", "IdentityRNN", "GRUv3", "FLUX_NAMES", "FLUX_LAYERS", "READOUT",
                      "load_flux_weights", "freeze_hidden_bias", "flux_init_"})


class PortError(ValueError):
    """Bad input to ``fluxparity port`` (or its Python functions): one line naming the value and what is allowed."""


def chain_expression(chain: Chain) -> str:
    """The Chain as Flux prints it (``models.flux_expression``, the one writer), e.g.
    ``Chain(LSTM(3 => 16), Dense(16 => 2, relu))``."""
    return flux_expression(chain)


def layer_expressions(chain: Chain) -> list[str]:
    """Each layer of :func:`chain_expression`, as Flux prints it: ``["LSTM(3 => 16)", "Dense(16 => 2, relu)"]``."""
    body = chain_expression(chain)[len("Chain("):-1]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(body):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    parts.append(body[start:].strip())
    return parts


def check_name(name: str) -> str:
    """``name`` if it can be a Python class (and Julia) name here; ValueError saying what is allowed."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii() or keyword.iskeyword(name):
        raise PortError(f"--name {name!r} is not a Python identifier (ASCII letters, digits and _, not starting "
                         "with a digit, not a keyword), e.g. FluxPort")
    if snake_case(name) in IMPORTED:
        raise PortError(f"--name {name!r}: its file {snake_case(name)}.py would shadow the module "
                        f"{snake_case(name)!r} the generated code imports; use another, e.g. FluxPort")
    if name in RESERVED or name.startswith("_"):
        raise PortError(f"--name {name!r} is taken by the generated code or private; use another, e.g. FluxPort "
                         f"(taken: {', '.join(sorted(RESERVED))})")
    return name


# Julia keywords and the names the generated .jl uses (Base's `tanh`, `identity`, Flux's `relu`, `sigmoid`, the
# loader's locals): the Julia function named after the port (snake_case) must not be one of them.
JULIA_TAKEN = frozenset({
    "baremodule", "begin", "break", "catch", "const", "continue", "do", "else", "elseif", "end", "export",
    "false", "finally", "for", "function", "global", "if", "import", "let", "local", "macro", "module",
    "quote", "return", "struct", "true", "try", "using", "while", "abstract", "mutable", "primitive", "type",
    "where", "in", "isa", "outer", "tanh", "identity", "relu", "sigmoid", "d", "w", "format", "path", "npz",
})


def check_julia_name(name: str) -> str:
    """``name`` if its snake_case can name the generated Julia function; PortError otherwise."""
    if snake_case(name) in JULIA_TAKEN:
        raise PortError(f"--name {name!r}: its Julia function {snake_case(name)!r} is a Julia keyword or a name the "
                        "generated .jl uses; use another, e.g. TorchPort")
    return name


def snake_case(name: str) -> str:
    """``FluxPort`` -> ``flux_port``, ``LSTMModel`` -> ``lstm_model``: the generated files' stem."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()

"""PyTorch -> Flux: the Julia source that builds a Chain's Flux model from its weights file (NPZ.jl).

Every Flux and NPZ name written here is one ``julia/weights.jl`` already uses (positional cell constructors
``RNNCell(σ, Wi, Wh, bias)``, ``LSTMCell(Wi, Wh, bias)``, ``GRUCell(Wi, Wh, b)``, ``GRUv3Cell(Wi, Wh, b,
Wh_h̃)``, the layers wrapping a cell, ``Dense(W, b, σ)``, ``NPZ.npzread``), each listed with its source line
in docs/julia-names.md. The text is ``fatou format``-clean as written (tests/test_port_flux.py checks it).
"""

from __future__ import annotations

from ..models import Chain, DenseParams
from ._names import FLUX_KIND, chain_expression, snake_case

_CELL_ARGS = {"rnn": ("Wi", "Wh", "bias"), "lstm": ("Wi", "Wh", "bias"), "gru": ("Wi", "Wh", "b"),
              "gruv3": ("Wi", "Wh", "b", "Wh_htilde")}


def _layer(i: int, layer) -> str:
    if isinstance(layer, DenseParams):
        bias = f'w("layers[{i}].bias")' if layer.has_bias else "false"  # bias = false: Flux stores `false`
        return f'Dense(w("layers[{i}].weight"), {bias}, {layer.activation})'
    args = [f'w("layers[{i}].cell.{field}")' for field in _CELL_ARGS[layer.kind]]
    if layer.kind == "rnn":
        args.insert(0, layer.activation)
    kind = FLUX_KIND[layer.kind]
    return f"{kind}({kind}Cell(" + ", ".join(args) + "))"


MARGIN = 92  # fatou format's line length (JuliaFormatter's default margin)


def _exploded(i: int, layer, indent: int) -> str:
    """A cell layer split one argument a line, as fatou format splits a call that does not fit."""
    one = _layer(i, layer)
    head, inner = one.split("(", 1)[0], one.split("(", 2)[1]  # "LSTM", "LSTMCell"
    args = one[len(head) + len(inner) + 2:-2].split(", ")
    pad = " " * (indent + 4)
    return f"{head}({inner}(\n" + "".join(f"{pad}{a},\n" for a in args) + " " * indent + "))"


def _chain_call(chain: Chain) -> str:
    """``return Chain(...)`` laid out as fatou format lays it out."""
    if len(chain.layers) == 1:
        one = _layer(1, chain.layers[0])
        if len(f"    return Chain({one})") <= MARGIN:
            return f"    return Chain({one})"
        return "    return Chain(" + _exploded(1, chain.layers[0], 4) + ")"
    lines = []
    for i, layer in enumerate(chain.layers, start=1):
        one = _layer(i, layer)
        lines.append(f"        {one}," if len(f"        {one},") <= MARGIN else f"        {_exploded(i, layer, 8)},")
    return "    return Chain(\n" + "\n".join(lines) + "\n    )"


def _imports(chain: Chain) -> list[str]:
    names = {"Chain"}
    for layer in chain.layers:
        if isinstance(layer, DenseParams):
            names.add("Dense")
            activation = layer.activation
        else:
            names |= {FLUX_KIND[layer.kind], FLUX_KIND[layer.kind] + "Cell"}
            activation = getattr(layer, "activation", "tanh")
        if activation in ("relu", "sigmoid"):
            names.add(activation)
    return sorted(names, key=lambda n: (n[0].islower(), n))


def julia_source(chain: Chain, name: str, *, module_spec: str) -> str:
    """``<snake>.jl``: a function ``<snake>(path = "<snake>.npz" beside the file) -> Chain``."""
    snake = snake_case(name)
    read = "the last step, `model(x)[:, end, :]`" if chain.readout == "last" else "every step, `model(x)`"
    names = _imports(chain)
    imports = "using Flux: " + ", ".join(names)
    if len(imports) > MARGIN:
        imports = "using Flux:\n" + ",\n".join(f"    {n}" for n in names)
    return f'''# {name}: the Flux model of the PyTorch module {module_spec},
# written by `fluxparity port --to flux`:
#
#     {chain_expression(chain)}
#
# read at {read}; x is (in, len, batch).
#
#     include("{snake}.jl")
#     model = {snake}()  # the weights of {snake}.npz, beside this file
#
# Needs Flux 0.16 and NPZ 0.4. Each Flux bias is PyTorch's bias_ih + bias_hh (Flux's
# cells have one bias); {snake}_golden.npz holds what PyTorch computed, for
# fluxparity's julia/golden.jl `check_golden(model, path)`.

{imports}
import NPZ

"""
    {snake}(path = joinpath(@__DIR__, "{snake}.npz")) -> Chain

The Flux model with the weights of `path`, a fluxparity weights file
(fluxparity-weights/3) as `fluxparity port --to flux` wrote it.
"""
function {snake}(path::AbstractString = joinpath(@__DIR__, "{snake}.npz"))
    d = NPZ.npzread(path)
    format = haskey(d, "format") ? String(copy(d["format"])) : "(none)"
    format == "fluxparity-weights/3" ||
        throw(ArgumentError("$path: format $format, expected fluxparity-weights/3"))
    w(key) = haskey(d, key) ? d[key] : throw(ArgumentError("$path: no entry $key"))
{_chain_call(chain)}
end
'''

# The activations a file or a run may name, stated once for julia/FluxParity.jl, julia/weights.jl and
# julia/golden.jl (each `include`s this file inside its module; the `using` repeats the module's own, as
# julia/optimisers.jl repeats `import Optimisers`, so that the file also stands alone).
# Python's lists are python/fluxparity/models/_params.py `RNN_ACTIVATIONS` and `DENSE_ACTIVATIONS`
# (tests/test_julia_cross_language.py checks that the two languages agree).
#
# Name => the function Flux stores in `RNNCell.σ` / `Dense.σ` (Flux swaps `tanh` for `tanh_fast` and
# `sigmoid` for `sigmoid_fast` only when it runs the layer, through `NNlib.fast_act`). `sigmoid` is Dense-only:
# the format and Python's reference have no sigmoid RNN.

using Flux: relu, sigmoid

const RNN_ACTIVATIONS = ("identity" => identity, "tanh" => tanh, "relu" => relu)
const DENSE_ACTIVATIONS = (
    "identity" => identity,
    "relu" => relu,
    "tanh" => tanh,
    "sigmoid" => sigmoid,
)

"""
    activation_function(name, allowed) -> Function

The function `allowed` (one of the lists above) gives `name`; an `ArgumentError` naming the allowed ones
otherwise.
"""
function activation_function(name::AbstractString, allowed)
    for (n, f) in allowed
        n == name && return f
    end
    throw(ArgumentError(
        "activation $(repr(name)) is not one of $(join(first.(allowed), ", "))",
    ))
end

"""
    activation_name(σ, allowed) -> String

The name `allowed` gives the function `σ` (compared with `===`); an `ArgumentError` otherwise.
"""
function activation_name(σ, allowed)
    for (n, f) in allowed
        σ === f && return n
    end
    throw(ArgumentError("activation $σ is not one of $(join(first.(allowed), ", "))"))
end

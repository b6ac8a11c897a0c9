"""
    FluxParity

The training loop of the tutorial in Flux 0.16 — Adam, one sample at a time, on the loss
`|last output - label|` — for any `Chain` of recurrent layers (RNN, LSTM, GRU, GRUv3) and Dense layers,
the tutorial's `RNN(1 => 1, σ)` being one of them. Python calls [`train_chain`](@ref) once per run
(python/fluxparity/backends/_flux_worker.py); julia/tutorial.jl reuses the small helpers.

Load it with `include("julia/FluxParity.jl")` from an environment that has Flux, Optimisers and Zygote
(this repository's Project.toml, or juliacall's environment built from python/fluxparity/juliapkg.json).
Every Flux, Optimisers and Zygote name used here is listed, with the source line it was checked
against, in docs/julia-names.md.
"""
module FluxParity

using Flux:
    Flux,
    Adam,
    Chain,
    Dense,
    GRU,
    GRUCell,
    GRUv3,
    GRUv3Cell,
    LSTM,
    LSTMCell,
    RNN,
    RNNCell,
    relu,
    sigmoid
import Optimisers
import Zygote

# optimisers_rule(dict): the Optimisers.jl rule of python/fluxparity/optim's dict form (the worker builds
# `rule` for train_chain with it); defined inside this module (`include` resolves the path from this file).
include("optimisers.jl")
# RNN_ACTIVATIONS, DENSE_ACTIVATIONS, activation_function(name, allowed): the names a layer's σ may have.
include("activations.jl")

export train_chain

"""
    element_type(name) -> Type

`Float32` for "float32", `Float64` for "float64".
"""
function element_type(name::AbstractString)
    name == "float32" && return Float32
    name == "float64" && return Float64
    throw(ArgumentError("dtype must be \"float32\" or \"float64\", got $(repr(name))"))
end

"""
    predict(model, x) -> scalar

The tutorial's prediction: the last hidden state. `x` is `1 × len`; `model(x)` returns all hidden
states, `out × len`.
"""
predict(model, x::AbstractMatrix) = model(x)[1, end]

"""
    loss(model, x, y) -> scalar

`|ŷ - y|` in the model's float type; scalar `abs`, whose gradient at 0 is 0.
"""
loss(model, x::AbstractMatrix, y::Real) = abs(predict(model, x) - y)

"""
    loss_sum(model, xs, ys) -> Float64

Sum of per-sample losses, each computed in the model's float type and added in Float64.
"""
function loss_sum(model, xs::AbstractVector, ys::AbstractVector)
    total = 0.0
    for (x, y) in zip(xs, ys)
        total += Float64(loss(model, x, y))
    end
    return total
end

"""
    train_step!(opt_state, model, x, y) -> loss before the update

One Adam step on one sample: explicit gradient of the loss with respect to the model, then an in-place
update of the model's arrays and of `opt_state` (from `Flux.setup`).
"""
function train_step!(opt_state, model, x::AbstractMatrix, y::Real)
    l, grads = Flux.withgradient(m -> loss(m, x, y), model)
    Flux.update!(opt_state, model, grads[1])
    return l
end

"""
    sequences(T, values, lengths) -> Vector{Matrix{T}}

Undo `fluxparity.data.pack`: `values (total,)` holds the sequences one after another, `lengths (n,)`
their lengths. Each sequence becomes a `1 × len` matrix of `T`, the layout Flux's `RNN` takes
(features × time).
"""
function sequences(
    T::Type{<:AbstractFloat},
    values::AbstractVector,
    lengths::AbstractVector,
)
    total = sum(lengths)
    total == length(values) ||
        throw(DimensionMismatch(
            "lengths add up to $total, but there are $(length(values)) values",
        ))
    all(>=(1), lengths) || throw(ArgumentError("every sequence needs at least one value"))
    stops = cumsum(lengths)
    starts = stops .- lengths .+ 1
    return [reshape(T.(values[a:b]), 1, :) for (a, b) in zip(starts, stops)]
end

function check_labels(xs::AbstractVector, ys::AbstractVector, set::AbstractString)
    length(xs) == length(ys) ||
        throw(DimensionMismatch("$(length(xs)) $set sequences but $(length(ys)) labels"))
    return nothing
end

function check_settings(epochs::Integer, lr::Real, progress_every::Integer)
    epochs >= 1 || throw(ArgumentError("epochs must be at least 1, got $epochs"))
    lr > 0 || throw(ArgumentError("lr must be positive, got $lr"))
    progress_every >= 1 ||
        throw(ArgumentError("progress_every must be ≥ 1, got $progress_every"))
    return nothing
end

"""
    training_data(T, train_values, train_lengths, train_labels, test_values, test_lengths,
                  test_labels, probe_values, probe_lengths) -> NamedTuple

Copy the data arrays, once, into Julia arrays of `T`: `train_x`, `test_x`, `probe_x` (vectors of
`1 × len` matrices) and `train_y`, `test_y`.
"""
function training_data(
    T::Type{<:AbstractFloat},
    train_values::AbstractVector,
    train_lengths::AbstractVector,
    train_labels::AbstractVector,
    test_values::AbstractVector,
    test_lengths::AbstractVector,
    test_labels::AbstractVector,
    probe_values::AbstractVector,
    probe_lengths::AbstractVector,
)
    train_x = sequences(T, Vector{Float64}(train_values), Vector{Int}(train_lengths))
    test_x = sequences(T, Vector{Float64}(test_values), Vector{Int}(test_lengths))
    probe_x = sequences(T, Vector{Float64}(probe_values), Vector{Int}(probe_lengths))
    train_y = Vector{T}(train_labels)
    test_y = Vector{T}(test_labels)
    check_labels(train_x, train_y, "training")
    check_labels(test_x, test_y, "test")
    return (; train_x, train_y, test_x, test_y, probe_x)
end

"""
    train_and_evaluate!(model, data, epochs, rule; progress, progress_every) -> NamedTuple

The loop both entry points share: loss sums before training, `epochs` passes of one `rule` step
(an Optimisers.jl rule, the tutorial's `Adam(lr)` by default in [`train_chain`](@ref)) per
sample in the data's order, the test-set loss sum after each epoch, then the probes' predictions.
`model`'s arrays are updated in place. `data` comes from [`training_data`](@ref).

Returns Float64 `step_losses (epochs * n_train,)`, `epoch_train_loss (epochs,)`,
`epoch_test_loss (epochs,)`, `probe_predictions (n_probes,)` and the scalars `train_loss_before`,
`test_loss_before`, `test_loss_after`, `seconds`.
"""
function train_and_evaluate!(
    model,
    data::NamedTuple,
    epochs::Integer,
    rule::Optimisers.AbstractRule;
    progress = nothing,
    progress_every::Integer = 1000,
)
    (; train_x, train_y, test_x, test_y, probe_x) = data
    started = time_ns()
    train_loss_before = loss_sum(model, train_x, train_y)
    test_loss_before = loss_sum(model, test_x, test_y)

    # The rule's numbers stay Float64 here: Optimisers converts them to T at every step, as for any user.
    opt_state = Flux.setup(rule, model)
    n = length(train_x)
    total_steps = epochs * n
    step_losses = Vector{Float64}(undef, total_steps)
    epoch_train_loss = zeros(Float64, epochs)
    epoch_test_loss = zeros(Float64, epochs)
    step = 0
    for epoch in 1:epochs
        # The data's order, no shuffling: one Adam step per sample.
        for (x, y) in zip(train_x, train_y)
            l = Float64(train_step!(opt_state, model, x, y))
            step += 1
            step_losses[step] = l
            epoch_train_loss[epoch] += l
            if progress !== nothing && (step % progress_every == 0 || step == total_steps)
                progress(step, total_steps)
            end
        end
        epoch_test_loss[epoch] = loss_sum(model, test_x, test_y)
    end
    probe_predictions = Float64[Float64(predict(model, x)) for x in probe_x]
    seconds = (time_ns() - started) / 1.0e9
    return (;
        step_losses,
        epoch_train_loss,
        epoch_test_loss,
        train_loss_before,
        test_loss_before,
        test_loss_after = epoch_test_loss[end],
        probe_predictions,
        seconds,
    )
end

versions() = (
    julia_version = string(VERSION),
    flux_version = version_string(Flux),
    optimisers_version = version_string(Optimisers),
    zygote_version = version_string(Zygote),
)

# Version of a loaded package, or "unknown" (Base.pkgversion returns `nothing` outside a package).
version_string(m::Module) = string(something(pkgversion(m), "unknown"))

"""
    layer_fields(kind) -> Tuple of (flat-name suffix, Flux field) pairs

The arrays of one layer of kind "rnn", "lstm", "gru", "gruv3" or "dense", in the struct's field order,
as python/fluxparity/models names them after `layers[i].`: `cell.Wi`, `cell.Wh`, `cell.bias` (RNN,
LSTM) or `cell.b` (GRU, GRUv3), `cell.Wh_htilde` (GRUv3's `Wh_h̃`); `weight`, `bias` (Dense).
"""
function layer_fields(kind::AbstractString)
    (kind == "rnn" || kind == "lstm") &&
        return (("cell.Wi", :Wi), ("cell.Wh", :Wh), ("cell.bias", :bias))
    kind == "gru" && return (("cell.Wi", :Wi), ("cell.Wh", :Wh), ("cell.b", :b))
    kind == "gruv3" &&
        return (
            ("cell.Wi", :Wi),
            ("cell.Wh", :Wh),
            ("cell.b", :b),
            ("cell.Wh_htilde", :Wh_h̃),
        )
    kind == "dense" && return (("weight", :weight), ("bias", :bias))
    throw(ArgumentError(
        "layer kind must be \"rnn\", \"lstm\", \"gru\", \"gruv3\" or \"dense\", got $(repr(kind))",
    ))
end

"""
    build_layer(T, kind, activation, i, params) -> RNN | LSTM | GRU | GRUv3 | Dense

Layer `i` (1-based) with copies, in `Array{T}`, of the arrays `params["layers[i].<suffix>"]`.
`activation` is the RNN's σ (a name of `RNN_ACTIVATIONS`) or the Dense's (`DENSE_ACTIVATIONS`), both in
julia/activations.jl; for LSTM, GRU and GRUv3 it must be "" (their nonlinearities are fixed).
"""
function build_layer(
    T::Type{<:AbstractFloat},
    kind::AbstractString,
    activation::AbstractString,
    i::Integer,
    params::AbstractDict,
)
    a = Dict(
        field => Array{T}(params["layers[$i].$suffix"])
        for (suffix, field) in layer_fields(kind)
    )
    if kind in ("lstm", "gru", "gruv3") && !isempty(activation)
        throw(ArgumentError(
            "layers[$i] ($kind) has no activation option, got $(repr(activation))",
        ))
    end
    kind == "rnn" &&
        return RNN(RNNCell(
            activation_function(activation, RNN_ACTIVATIONS),
            a[:Wi],
            a[:Wh],
            a[:bias],
        ))
    kind == "lstm" && return LSTM(LSTMCell(a[:Wi], a[:Wh], a[:bias]))
    kind == "gru" && return GRU(GRUCell(a[:Wi], a[:Wh], a[:b]))
    kind == "gruv3" && return GRUv3(GRUv3Cell(a[:Wi], a[:Wh], a[:b], a[:Wh_h̃]))
    return Dense(a[:weight], a[:bias], activation_function(activation, DENSE_ACTIVATIONS))
end

"""
    build_chain(T, kinds, activations, params) -> Chain

`Chain(layer_1, …, layer_n)` built by [`build_layer`](@ref); `params` must hold exactly the arrays the
layers name (checked), with the shapes python/fluxparity/models checked before sending them.
"""
function build_chain(
    T::Type{<:AbstractFloat},
    kinds::AbstractVector{<:AbstractString},
    activations::AbstractVector{<:AbstractString},
    params::AbstractDict,
)
    length(kinds) == length(activations) ||
        throw(ArgumentError(
            "$(length(kinds)) layer kinds but $(length(activations)) activations",
        ))
    isempty(kinds) && throw(ArgumentError("a Chain needs at least one layer"))
    expected = sort!([
        "layers[$i].$suffix"
        for (i, kind) in enumerate(kinds)
        for (suffix, _) in layer_fields(kind)
    ])
    found = sort!([string(k) for k in keys(params)])
    found == expected ||
        throw(ArgumentError(
            "the layers need the arrays $(join(expected, ", ")); got $(join(found, ", "))",
        ))
    return Chain([
        build_layer(T, kinds[i], activations[i], i, params)
        for i in eachindex(kinds)
    ]...)
end

"""
    chain_arrays(model::Chain) -> Dict{String, Array{Float64}}

Float64 copies of every array of `model`, by the flat names [`build_chain`](@ref) reads.
"""
function chain_arrays(model::Chain)
    named = Dict{String, Array{Float64}}()
    for (i, layer) in enumerate(model.layers)
        if layer isa Dense
            named["layers[$i].weight"] = Array{Float64}(layer.weight)
            named["layers[$i].bias"] = Array{Float64}(layer.bias)
        else
            kind = layer isa RNN ?
                "rnn" :
                layer isa LSTM ? "lstm" : layer isa GRU ? "gru" : "gruv3"
            for (suffix, field) in layer_fields(kind)
                named["layers[$i].$suffix"] = Array{Float64}(getfield(layer.cell, field))
            end
        end
    end
    return named
end

"""
    train_chain(kinds, activations, dtype, epochs, lr, params,
                train_values, train_lengths, train_labels,
                test_values, test_lengths, test_labels,
                probe_values, probe_lengths;
                rule = nothing, progress = nothing, progress_every = 1000) -> NamedTuple

The one training entry point Python calls (python/fluxparity/backends/_flux_worker.py), for the
tutorial and for every other model: build `Chain(layers...)` from `params` ([`build_chain`](@ref)),
then train it per sample with Adam on `|model(x)[1, end] - y|` (the sum task reads the last step).
`rule`: any `Optimisers.AbstractRule` to train with instead (e.g. `optimisers_rule(dict)` from
julia/optimisers.jl); `nothing` (the default) is the tutorial's `Adam(lr)`, `lr` a Float64.

- `kinds`: one per layer, "rnn", "lstm", "gru", "gruv3" or "dense", recurrent layers first.
- `activations`: one per layer: the RNN's or the Dense's σ name, "" for LSTM/GRU/GRUv3.
- `dtype`: "float32" or "float64". `params`: flat name => array (Float64, Flux's shapes), e.g.
  `layers[1].cell.Wi (G·hidden, in)`, `layers[2].weight (out, in)`.
- The data: as in [`training_data`](@ref). `progress(done, total)` (any callable) is called every
  `progress_every` steps and after the last one.

The tutorial is `kinds = ["rnn"]`, `activations = ["identity"]` (or "tanh"), with arrays
`layers[1].cell.Wi (1, 1)`, `layers[1].cell.Wh (1, 1)`, `layers[1].cell.bias (1,)`.

Returns the fields of [`train_and_evaluate!`](@ref) (Float64), the version strings, and `params`: a
`Dict{String, Array{Float64}}` of the trained arrays under the same names and shapes.
"""
function train_chain(
    kinds::AbstractVector,
    activations::AbstractVector,
    dtype::AbstractString,
    epochs::Integer,
    lr::Real,
    params::AbstractDict,
    train_values::AbstractVector,
    train_lengths::AbstractVector,
    train_labels::AbstractVector,
    test_values::AbstractVector,
    test_lengths::AbstractVector,
    test_labels::AbstractVector,
    probe_values::AbstractVector,
    probe_lengths::AbstractVector;
    rule::Union{Nothing, Optimisers.AbstractRule} = nothing,
    progress = nothing,
    progress_every::Integer = 1000,
)
    T = element_type(dtype)
    check_settings(epochs, lr, progress_every)

    # Boundary with Python. `kinds` and `activations` may arrive as PythonCall list wrappers: `string`
    # makes each element a Julia String. `params` is a Julia Dict{String, Any} built by the worker
    # whose values are PythonCall `PyArray` views of C-order NumPy Float64 arrays; a PyArray indexes
    # as NumPy does (same shape), so no transpose is involved. Everything is copied here, once, into
    # Julia arrays of T, the data too (Flux's recurrent cells do not convert Float64 input).
    model = build_chain(
        T,
        [string(k) for k in kinds],
        [string(a) for a in activations],
        params,
    )
    data = training_data(
        T,
        train_values,
        train_lengths,
        train_labels,
        test_values,
        test_lengths,
        test_labels,
        probe_values,
        probe_lengths,
    )
    opt_rule = rule === nothing ? Adam(Float64(lr)) : rule
    outcome = train_and_evaluate!(model, data, epochs, opt_rule; progress, progress_every)
    return merge(outcome, (params = chain_arrays(model),), versions())
end

end # module FluxParity

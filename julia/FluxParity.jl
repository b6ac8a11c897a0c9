"""
    FluxParity

Flux 0.16's training loop for any run description of python/fluxparity/run.py: a `Chain` of recurrent
layers (RNN, LSTM, GRU, GRUv3) then Dense layers (with or without bias), read at the last step or every
step, a loss of `LOSSES` (Flux's, `agg = mean`, or the tutorial's `abs(sum(ŷ .- y))`), any Optimisers.jl
rule, on the batches Python cut (`Flux.setup`, then per batch `withgradient` + `update!`). The tutorial —
`RNN(1 => 1, σ)`, Adam, one sample at a time, in order, `|last output - label|` — is one such run. Python
calls [`train_chain`](@ref) once per run (python/fluxparity/backends/_flux_worker.py); julia/tutorial.jl
reuses the small helpers `predict`, `loss`, `loss_sum`.

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
    LOSSES

The losses a run trains with, by the names python/fluxparity/models `LOSSES` uses: Flux's, with their
default `agg = mean` (Flux src/losses/functions.jl:21 `mae`, :45 `mse`, :270 `logitcrossentropy`, whose
classes run along `dims = 1`), and the tutorial's `abs(sum(ŷ .- y))`. Each takes the readout `ŷ` and the
targets `y` of one batch, both `(out, B)` (readout "last") or `(out, len, B)` (readout "all").
"""
const LOSSES = Dict{String, Function}(
    "abs_sum" => (ŷ, y) -> abs(sum(ŷ .- y)),
    "mse" => Flux.Losses.mse,
    "mae" => Flux.Losses.mae,
    "logitcrossentropy" => (ŷ, y) -> Flux.Losses.logitcrossentropy(ŷ, y; dims = 1),
)

"""
    loss_function(name) -> Function

The loss of [`LOSSES`](@ref) called `name`; an `ArgumentError` naming the allowed ones otherwise.
"""
function loss_function(name::AbstractString)
    haskey(LOSSES, name) ||
        throw(ArgumentError(
            "loss must be one of $(join(sort!(collect(keys(LOSSES))), ", ")), got $(repr(name))",
        ))
    return LOSSES[name]
end

"""
    readout_function(name) -> Function

"last": every step's output `(out, len, B)` -> the last step's `(out, B)` (`m(x)[:, end, :]`);
"all": every step, unchanged.
"""
function readout_function(name::AbstractString)
    name == "last" && return out -> out[:, end, :]
    name == "all" && return identity
    throw(ArgumentError("readout must be \"last\" or \"all\", got $(repr(name))"))
end

# The boundary's layouts. Python sends batch-major, C-order NumPy arrays: inputs `(N, len, in)`, targets
# `(N, out)` or `(N, len, out)`. PythonCall's PyArray indexes them as NumPy does (same shape,
# `A[i, t, f] == a[i-1, t-1, f-1]`, docs/julia-names.md), and `permutedims(A, perm)` returns `B` with
# `size(B, k) == size(A, perm[k])`. Both permutations are their own inverse, so `B[f, t, i] == A[i, t, f]`:
# Flux's `(in, len, N)` (and `(out, len, N)`) from `(N, len, in)`, and `(out, N)` from `(N, out)`.
const BATCH_MAJOR_TO_FLUX = (3, 2, 1)
const TARGETS_TO_FLUX = (2, 1)

"""
    flux_layout(T, a) -> Array{T}

A batch-major array from Python, copied once into an `Array{T}` in Flux's layout: `(N, len, k)` ->
`(k, len, N)` by `BATCH_MAJOR_TO_FLUX`, `(N, k)` -> `(k, N)` by `TARGETS_TO_FLUX`.
"""
function flux_layout(T::Type{<:AbstractFloat}, a::AbstractArray)
    ndims(a) == 3 && return permutedims(Array{T}(a), BATCH_MAJOR_TO_FLUX)
    ndims(a) == 2 && return permutedims(Array{T}(a), TARGETS_TO_FLUX)
    throw(DimensionMismatch("expected an (N, len, k) or (N, k) array, got size $(size(a))"))
end

"""
    data_split(T, x, lengths, y, set) -> NamedTuple (x, lengths, y)

One set of samples in Flux's layout: `x (in, len_max, N)` (from Python's `(N, len_max, in)`),
`lengths (N,)` (sample `i` is `x[:, 1:lengths[i], i]`; any later steps are padding, never read) and `y`
`(out, N)` or `(out, len_max, N)` (from `(N, out)`, `(N, len_max, out)`), or `nothing` (the probes).
"""
function data_split(
    T::Type{<:AbstractFloat},
    x::AbstractArray,
    lengths::AbstractVector,
    y,
    set::AbstractString,
)
    ndims(x) == 3 ||
        throw(DimensionMismatch("$set inputs must be (N, len, in), got size $(size(x))"))
    X = flux_layout(T, x)
    lens = Vector{Int}(lengths)
    n = size(X, 3)
    length(lens) == n ||
        throw(DimensionMismatch("$n $set samples but $(length(lens)) lengths"))
    all(l -> 1 <= l <= size(X, 2), lens) ||
        throw(ArgumentError("$set lengths must be between 1 and $(size(X, 2))"))
    Y = y === nothing ? nothing : flux_layout(T, y)
    Y === nothing ||
        size(Y)[end] == n ||
        throw(DimensionMismatch("$n $set samples but $(size(Y)[end]) targets"))
    return (; x = X, lengths = lens, y = Y)
end

"""
    batch(split, idx) -> (x, y)

The samples `idx` of a [`data_split`](@ref) as one batch: `x (in, len, B)` and `y (out, B)` or
`(out, len, B)` (`nothing` without targets). The samples of a batch must share one length.
"""
function batch(split::NamedTuple, idx::AbstractVector{<:Integer})
    (; x, lengths, y) = split
    len = lengths[first(idx)]
    all(i -> lengths[i] == len, idx) ||
        throw(DimensionMismatch(
            "a batch holds samples of one length; got lengths $(lengths[idx])",
        ))
    xb = x[:, 1:len, idx]
    y === nothing && return (xb, nothing)
    yb = ndims(y) == 2 ? y[:, idx] : y[:, 1:len, idx]
    return (xb, yb)
end

"""
    sample_count(split) -> Int

The number of samples of a [`data_split`](@ref).
"""
function sample_count(split::NamedTuple)
    (; lengths) = split
    return length(lengths)
end

"""
    set_loss(model, lossf, readf, split) -> Float64

The sum of a set's per-sample losses: each sample a batch of one, its loss computed in the model's float
type, added in Float64 in the set's order.
"""
function set_loss(model, lossf, readf, split::NamedTuple)
    total = 0.0
    for i in 1:sample_count(split)
        x, y = batch(split, i:i)
        total += Float64(lossf(readf(model(x)), y))
    end
    return total
end

"""
    predictions(model, readf, split) -> Vector{Float64}

Each sample's readout, alone (a batch of one), flattened sample after sample: `(out,)` for readout
"last", `out × len` for "all" (column-major, which is Python's C-order `(len, out)`).
"""
function predictions(model, readf, split::NamedTuple)
    out = Float64[]
    for i in 1:sample_count(split)
        x, _ = batch(split, i:i)
        append!(out, Float64.(vec(readf(model(x)))))
    end
    return out
end

"""
    batch_steps(order, batch_sizes, n, epochs) -> Vector{Vector{Int}}

Each training step's sample indices. `order` holds every epoch's visit order, one epoch after the other,
as 1-based indices of the `n` training samples; step `k` takes the next `batch_sizes[k]` of them. Python
draws the order and cuts the batches (python/fluxparity/data/_batches.py): Julia draws nothing. The steps
split into `epochs` epochs of equally many steps.
"""
function batch_steps(
    order::AbstractVector,
    batch_sizes::AbstractVector,
    n::Integer,
    epochs::Integer,
)
    ord = Vector{Int}(order)
    sizes = Vector{Int}(batch_sizes)
    all(>=(1), sizes) || throw(ArgumentError("every batch needs at least one sample"))
    sum(sizes) == length(ord) ||
        throw(DimensionMismatch(
            "the batch sizes add up to $(sum(sizes)), but the order has $(length(ord)) indices",
        ))
    all(i -> 1 <= i <= n, ord) ||
        throw(ArgumentError("order must hold 1-based indices of the $n training samples"))
    length(sizes) % epochs == 0 ||
        throw(ArgumentError(
            "$(length(sizes)) steps do not split into $epochs equal epochs",
        ))
    stops = cumsum(sizes)
    starts = stops .- sizes .+ 1
    return [ord[a:b] for (a, b) in zip(starts, stops)]
end

function check_settings(epochs::Integer, lr::Real, progress_every::Integer)
    epochs >= 1 || throw(ArgumentError("epochs must be at least 1, got $epochs"))
    lr > 0 || throw(ArgumentError("lr must be positive, got $lr"))
    progress_every >= 1 ||
        throw(ArgumentError("progress_every must be ≥ 1, got $progress_every"))
    return nothing
end

"""
    training_data(T, train_x, train_lengths, train_y, test_x, test_lengths, test_y,
                  probe_x, probe_lengths) -> NamedTuple (train, test, probe)

Copy the data arrays, once, into Julia arrays of `T` in Flux's layout ([`data_split`](@ref)).
"""
function training_data(
    T::Type{<:AbstractFloat},
    train_x::AbstractArray,
    train_lengths::AbstractVector,
    train_y::AbstractArray,
    test_x::AbstractArray,
    test_lengths::AbstractVector,
    test_y::AbstractArray,
    probe_x::AbstractArray,
    probe_lengths::AbstractVector,
)
    train = data_split(T, train_x, train_lengths, train_y, "training")
    test = data_split(T, test_x, test_lengths, test_y, "test")
    probe = data_split(T, probe_x, probe_lengths, nothing, "probe")
    ndims(train[:y]) == ndims(test[:y]) ||
        throw(DimensionMismatch("the training and test targets differ in rank"))
    return (; train, test, probe)
end

"""
    train_and_evaluate!(model, data, steps, epochs, rule, lossf, readf; progress, progress_every)
        -> NamedTuple

The training loop: the loss sums before training ([`set_loss`](@ref)); `Flux.setup(rule, model)`; per
step, `Flux.withgradient` of `lossf(readf(m(x)), y)` on that step's batch (`steps` from
[`batch_steps`](@ref)), then `Flux.update!`; the test-set loss sum after each epoch; the probes'
predictions. `model`'s arrays are updated in place. `data` comes from [`training_data`](@ref).

Returns Float64 `step_losses (total steps,)` (each step's batch loss, before its update),
`epoch_train_loss (epochs,)` (their sums, added in order), `epoch_test_loss (epochs,)`,
`probe_predictions` ([`predictions`](@ref)) and the scalars `train_loss_before`, `test_loss_before`,
`test_loss_after`, `seconds`.
"""
function train_and_evaluate!(
    model,
    data::NamedTuple,
    steps::AbstractVector,
    epochs::Integer,
    rule::Optimisers.AbstractRule,
    lossf::F,
    readf::R;
    progress = nothing,
    progress_every::Integer = 1000,
) where {F, R}
    # `where {F, R}`: specialised on the two functions (Julia does not specialise on a function argument it
    # only passes on, here into the gradient's closure).
    (; train, test, probe) = data
    started = time_ns()
    train_loss_before = set_loss(model, lossf, readf, train)
    test_loss_before = set_loss(model, lossf, readf, test)

    # The rule's numbers stay Float64 here: Optimisers converts them to T at every step, as for any user.
    opt_state = Flux.setup(rule, model)
    total_steps = length(steps)
    per_epoch = total_steps ÷ epochs
    step_losses = Vector{Float64}(undef, total_steps)
    epoch_train_loss = zeros(Float64, epochs)
    epoch_test_loss = zeros(Float64, epochs)
    step = 0
    for epoch in 1:epochs
        for _ in 1:per_epoch
            step += 1
            x, y = batch(train, steps[step])
            l, grads = Flux.withgradient(m -> lossf(readf(m(x)), y), model)
            Flux.update!(opt_state, model, grads[1])
            step_losses[step] = Float64(l)
            epoch_train_loss[epoch] += Float64(l)
            if progress !== nothing && (step % progress_every == 0 || step == total_steps)
                progress(step, total_steps)
            end
        end
        epoch_test_loss[epoch] = set_loss(model, lossf, readf, test)
    end
    probe_predictions = predictions(model, readf, probe)
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
    layer_arrays(kind, i, params) -> Tuple of (flat-name suffix, Flux field) pairs

The arrays layer `i` reads from `params`: [`layer_fields`](@ref), less a Dense's `bias` when `params` has
no `layers[i].bias`. Such a Dense is Flux's `Dense(weight, false, σ)`, whose `bias` field holds `false`
(`create_bias`, Flux src/utils.jl:537–539; src/layers/basic.jl:183–186): python/fluxparity/models names a
bias-free Dense's arrays `layers[i].weight` alone.
"""
function layer_arrays(kind::AbstractString, i::Integer, params::AbstractDict)
    fields = layer_fields(kind)
    kind == "dense" && !haskey(params, "layers[$i].bias") && return fields[1:1]
    return fields
end

"""
    build_layer(T, kind, activation, i, params) -> RNN | LSTM | GRU | GRUv3 | Dense

Layer `i` (1-based) with copies, in `Array{T}`, of the arrays `params["layers[i].<suffix>"]`
([`layer_arrays`](@ref): a Dense with no `layers[i].bias` is built with `bias = false`).
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
        for (suffix, field) in layer_arrays(kind, i, params)
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
    haskey(a, :bias) ||
        return Dense(a[:weight], false, activation_function(activation, DENSE_ACTIVATIONS))
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
        for (suffix, _) in layer_arrays(kind, i, params)
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

Float64 copies of every array of `model`, by the flat names [`build_chain`](@ref) reads (no `bias` for a
Dense built with `bias = false`).
"""
function chain_arrays(model::Chain)
    named = Dict{String, Array{Float64}}()
    for (i, layer) in enumerate(model.layers)
        if layer isa Dense
            named["layers[$i].weight"] = Array{Float64}(layer.weight)
            layer.bias === false || (named["layers[$i].bias"] = Array{Float64}(layer.bias))
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
    train_chain(kinds, activations, dtype, epochs, lr, params, loss_name, readout,
                train_x, train_lengths, train_y, test_x, test_lengths, test_y,
                probe_x, probe_lengths, order, batch_sizes;
                rule = nothing, progress = nothing, progress_every = 1000) -> NamedTuple

The one training entry point Python calls (python/fluxparity/backends/_flux_worker.py), for the
tutorial and for every other run description (python/fluxparity/run.py `RunSpec`): build
`Chain(layers...)` from `params` ([`build_chain`](@ref)), then train it with `Flux.setup(rule, model)` and,
per batch, `Flux.withgradient` + `Flux.update!` on `LOSSES[loss_name]` of the model's readout
([`train_and_evaluate!`](@ref)). `rule`: any `Optimisers.AbstractRule` (e.g. `optimisers_rule(dict)` from
julia/optimisers.jl); `nothing` (the default) is the tutorial's `Adam(lr)`, `lr` a Float64.

- `kinds`: one per layer, "rnn", "lstm", "gru", "gruv3" or "dense", recurrent layers first.
- `activations`: one per layer: the RNN's or the Dense's σ name, "" for LSTM/GRU/GRUv3.
- `dtype`: "float32" or "float64". `params`: flat name => array (Float64, Flux's shapes), e.g.
  `layers[1].cell.Wi (G·hidden, in)`, `layers[2].weight (out, in)`; a Dense without `layers[i].bias` has
  `bias = false`.
- `loss_name`: "abs_sum", "mse", "mae" or "logitcrossentropy" ([`LOSSES`](@ref)); `readout`: "last"
  (`m(x)[:, end, :]`) or "all" (every step).
- The data, batch-major as Python holds it (converted once by [`training_data`](@ref)): `*_x (N, len_max,
  in)`, `*_lengths (N,)` (a shorter sample is zero-padded after its last step), `train_y`/`test_y`
  `(N, out)` (readout "last") or `(N, len_max, out)` ("all"), classification targets as one-hot rows.
- The batches ([`batch_steps`](@ref)): `order`, every epoch's visit order one after the other, 1-based;
  `batch_sizes`, each step's number of samples (the last batch of an epoch may be partial).
- `progress(done, total)` (any callable) is called every `progress_every` steps and after the last one.

The tutorial is `kinds = ["rnn"]`, `activations = ["identity"]` (or "tanh"), arrays
`layers[1].cell.Wi (1, 1)`, `layers[1].cell.Wh (1, 1)`, `layers[1].cell.bias (1,)`, loss "abs_sum",
readout "last", `order = repeat(1:n, epochs)`, every batch size 1.

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
    loss_name::AbstractString,
    readout::AbstractString,
    train_x::AbstractArray,
    train_lengths::AbstractVector,
    train_y::AbstractArray,
    test_x::AbstractArray,
    test_lengths::AbstractVector,
    test_y::AbstractArray,
    probe_x::AbstractArray,
    probe_lengths::AbstractVector,
    order::AbstractVector,
    batch_sizes::AbstractVector;
    rule::Union{Nothing, Optimisers.AbstractRule} = nothing,
    progress = nothing,
    progress_every::Integer = 1000,
)
    T = element_type(dtype)
    check_settings(epochs, lr, progress_every)
    lossf = loss_function(string(loss_name))
    readf = readout_function(string(readout))

    # Boundary with Python. `kinds` and `activations` may arrive as PythonCall list wrappers: `string`
    # makes each element a Julia String. `params` is a Julia Dict{String, Any} built by the worker
    # whose values are PythonCall `PyArray` views of C-order NumPy Float64 arrays; a PyArray indexes
    # as NumPy does (same shape), so the weights need no transpose. The data arrays are PyArrays too,
    # batch-major: `training_data` permutes them into Flux's layout. Everything is copied here, once, into
    # Julia arrays of T (Flux's recurrent cells do not convert Float64 input; and `Flux.setup` refuses a
    # weight that is not a `DenseArray`, which a PyArray is not: docs/julia-names.md, `Optimisers.maywrite`).
    model = build_chain(
        T,
        [string(k) for k in kinds],
        [string(a) for a in activations],
        params,
    )
    data = training_data(
        T,
        train_x,
        train_lengths,
        train_y,
        test_x,
        test_lengths,
        test_y,
        probe_x,
        probe_lengths,
    )
    steps = batch_steps(order, batch_sizes, sample_count(data[:train]), epochs)
    opt_rule = rule === nothing ? Adam(Float64(lr)) : rule
    outcome = train_and_evaluate!(
        model,
        data,
        steps,
        epochs,
        opt_rule,
        lossf,
        readf;
        progress,
        progress_every,
    )
    return merge(outcome, (params = chain_arrays(model),), versions())
end

end # module FluxParity

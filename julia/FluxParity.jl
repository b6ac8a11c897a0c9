"""
    FluxParity

The tutorial's model and training loop in Flux 0.16: an `RNN(1 => 1, σ)` trained with Adam, one sample
at a time, on the loss `|last output - label|`. Python calls [`train_tutorial`](@ref) once per run
(python/fluxparity/backends/_flux_worker.py); julia/tutorial.jl reuses the small helpers.

Beyond the tutorial, [`train_model`](@ref) runs the same loop on `Chain(RNN|LSTM|GRU|GRUv3(cell),
Dense(hidden => 1))`, the prediction being the head's output at the last step.

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
    RNNCell
import Optimisers
import Zygote

export train_model, train_tutorial

"""
    activation_function(name) -> Function

`identity` or `tanh`. Flux itself swaps `tanh` for `NNlib.tanh_fast` inside the cell.
"""
function activation_function(name::AbstractString)
    name == "identity" && return identity
    name == "tanh" && return tanh
    throw(ArgumentError("activation must be \"identity\" or \"tanh\", got $(repr(name))"))
end

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
    build_rnn(σ, Wi, Wh, bias) -> RNN

The tutorial's model with exactly these weights: `Wi (out, in)`, `Wh (out, out)`, `bias (out,)`.
The initial state is zeros and is not a parameter (Flux ≥ 0.15).
"""
function build_rnn(σ, Wi::AbstractMatrix, Wh::AbstractMatrix, bias::AbstractVector)
    cell = RNNCell(σ, Wi, Wh, bias)
    return RNN(cell)
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

function check_shapes(Wi::AbstractMatrix, Wh::AbstractMatrix, bias::AbstractVector)
    out = size(Wi, 1)
    size(Wi, 2) == 1 || throw(DimensionMismatch("Wi must be (out, 1), got $(size(Wi))"))
    size(Wh) == (out, out) ||
        throw(DimensionMismatch("Wh must be ($out, $out), got $(size(Wh))"))
    length(bias) == out ||
        throw(DimensionMismatch("bias must have length $out, got $(length(bias))"))
    return nothing
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
    train_and_evaluate!(model, data, epochs, lr; progress, progress_every) -> NamedTuple

The loop both entry points share: loss sums before training, `epochs` passes of one Adam step per
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
    lr::Real;
    progress = nothing,
    progress_every::Integer = 1000,
)
    (; train_x, train_y, test_x, test_y, probe_x) = data
    started = time_ns()
    train_loss_before = loss_sum(model, train_x, train_y)
    test_loss_before = loss_sum(model, test_x, test_y)

    # lr stays a Float64 here: Optimisers converts it to T at every step, as for any user.
    opt_state = Flux.setup(Adam(Float64(lr)), model)
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
    train_tutorial(activation, dtype, epochs, lr, Wi, Wh, bias,
                   train_values, train_lengths, train_labels,
                   test_values, test_lengths, test_labels,
                   probe_values, probe_lengths;
                   progress = nothing, progress_every = 1000) -> NamedTuple

Train the tutorial's `RNN(1 => 1, σ)` from the given weights and return everything the Python side
compares. `activation` is "identity" or "tanh", `dtype` "float32" or "float64". `progress(done, total)`
(any callable, e.g. a Python function) is called every `progress_every` steps and after the last one.

Returned arrays are Float64 whatever `dtype` is: `step_losses (epochs * n_train,)`,
`epoch_train_loss (epochs,)`, `epoch_test_loss (epochs,)`, `probe_predictions (n_probes,)`,
`Wi (out, 1)`, `Wh (out, out)`, `bias (out,)`; plus Float64 scalars `train_loss_before`,
`test_loss_before`, `test_loss_after`, `seconds` and version strings.
"""
function train_tutorial(
    activation::AbstractString,
    dtype::AbstractString,
    epochs::Integer,
    lr::Real,
    Wi::AbstractMatrix,
    Wh::AbstractMatrix,
    bias::AbstractVector,
    train_values::AbstractVector,
    train_lengths::AbstractVector,
    train_labels::AbstractVector,
    test_values::AbstractVector,
    test_lengths::AbstractVector,
    test_labels::AbstractVector,
    probe_values::AbstractVector,
    probe_lengths::AbstractVector;
    progress = nothing,
    progress_every::Integer = 1000,
)
    σ = activation_function(activation)
    T = element_type(dtype)
    check_settings(epochs, lr, progress_every)
    check_shapes(Wi, Wh, bias)

    # Boundary with Python. The arguments may be PythonCall `PyArray` views of NumPy memory:
    #   Wi (out, 1), Wh (out, out), bias (out,), *_values (total,), *_labels (n,): Float64;
    #   *_lengths (n,): Int64 (the layout of fluxparity.data.pack).
    # Everything is copied here, once, into Julia arrays of T. Both sides are converted explicitly:
    # Flux's recurrent cells do not convert Float64 input to Float32 weights.
    model = build_rnn(σ, Matrix{T}(Wi), Matrix{T}(Wh), Vector{T}(bias))
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
    outcome = train_and_evaluate!(model, data, epochs, lr; progress, progress_every)

    cell = model.cell
    weights = (
        Wi = Matrix{Float64}(cell.Wi),
        Wh = Matrix{Float64}(cell.Wh),
        bias = Vector{Float64}(cell.bias),
    )
    return merge(outcome, weights, versions())
end

# ---------------------------------------------------------------------------------------------------
# Models beyond the tutorial: Chain(<recurrent layer>(cell), Dense(hidden => 1))
# ---------------------------------------------------------------------------------------------------

# Flat names of a model's arrays, as python/fluxparity/models `flat_params` writes them (and as
# julia/weights.jl names them in its files): `cell.<Flux field>` and `head.<Dense field>`, with the
# ASCII `Wh_htilde` for GRUv3Cell's field `Wh_h̃`. The builders below follow weights.jl's
# (`load_weights`, `sequence_layer`, `cell_arrays`) without including it: that module reads .npz files
# through NPZ.jl, while here the arrays are already in memory, handed over by the Python worker.
const HEAD_NAMES = ("head.weight", "head.bias")

"""
    param_names(kind) -> Tuple of String

The flat names of the arrays of `Chain(<kind>(cell), Dense(hidden => 1))`, `kind` one of
"rnn", "lstm", "gru", "gruv3".
"""
function param_names(kind::AbstractString)
    kind == "rnn" && return ("cell.Wi", "cell.Wh", "cell.bias", HEAD_NAMES...)
    kind == "lstm" && return ("cell.Wi", "cell.Wh", "cell.bias", HEAD_NAMES...)
    kind == "gru" && return ("cell.Wi", "cell.Wh", "cell.b", HEAD_NAMES...)
    kind == "gruv3" &&
        return ("cell.Wi", "cell.Wh", "cell.b", "cell.Wh_htilde", HEAD_NAMES...)
    throw(ArgumentError(
        "kind must be \"rnn\", \"lstm\", \"gru\" or \"gruv3\", got $(repr(kind))",
    ))
end

"""
    gate_count(kind) -> Int

Gate blocks stacked along the first axis of `Wi`, `Wh` and the bias: 1 RNN, 4 LSTM, 3 GRU and GRUv3.
"""
function gate_count(kind::AbstractString)
    kind == "rnn" && return 1
    kind == "lstm" && return 4
    (kind == "gru" || kind == "gruv3") && return 3
    throw(ArgumentError(
        "kind must be \"rnn\", \"lstm\", \"gru\" or \"gruv3\", got $(repr(kind))",
    ))
end

"""
    model_arrays(T, kind, params) -> Dict{String, Array{T}}

Check that `params` holds exactly the arrays [`param_names`](@ref)`(kind)` names, with the shapes of
a one-input cell and a one-output head, and copy each into an `Array{T}` of the same shape.
"""
function model_arrays(T::Type{<:AbstractFloat}, kind::AbstractString, params::AbstractDict)
    names = param_names(kind)
    found = sort!([string(k) for k in keys(params)])
    found == sort!(collect(names)) ||
        throw(ArgumentError(
            "$kind needs the arrays $(join(names, ", ")); got $(join(found, ", "))",
        ))
    arrays = Dict{String, Array{T}}(name => Array{T}(params[name]) for name in names)
    Wh = arrays["cell.Wh"]
    ndims(Wh) == 2 ||
        throw(DimensionMismatch("cell.Wh must be a matrix, got size $(size(Wh))"))
    hidden = size(Wh, 2)
    rows = gate_count(kind) * hidden
    expected = Dict(
        "cell.Wi" => (rows, 1),
        "cell.Wh" => (rows, hidden),
        "cell.bias" => (rows,),
        "cell.b" => (rows,),
        "cell.Wh_htilde" => (hidden, hidden),
        "head.weight" => (1, hidden),
        "head.bias" => (1,),
    )
    for name in names
        size(arrays[name]) == expected[name] ||
            throw(DimensionMismatch(
                "$name must be $(expected[name]) for $kind with hidden size $hidden, got $(size(arrays[name]))",
            ))
    end
    return arrays
end

"""
    build_cell(kind, σ, arrays) -> RNNCell | LSTMCell | GRUCell | GRUv3Cell

The cell with exactly these arrays (keyed by flat name, see [`param_names`](@ref)). `σ` is the
`RNNCell`'s activation; the gated cells' nonlinearities are fixed and ignore it.
"""
function build_cell(kind::AbstractString, σ, arrays::AbstractDict)
    Wi, Wh = arrays["cell.Wi"], arrays["cell.Wh"]
    kind == "rnn" && return RNNCell(σ, Wi, Wh, arrays["cell.bias"])
    kind == "lstm" && return LSTMCell(Wi, Wh, arrays["cell.bias"])
    kind == "gru" && return GRUCell(Wi, Wh, arrays["cell.b"])
    kind == "gruv3" && return GRUv3Cell(Wi, Wh, arrays["cell.b"], arrays["cell.Wh_htilde"])
    throw(ArgumentError(
        "kind must be \"rnn\", \"lstm\", \"gru\" or \"gruv3\", got $(repr(kind))",
    ))
end

# The layer that runs a cell over a sequence: `in × len` in, every step's state `hidden × len` out.
sequence_layer(cell::RNNCell) = RNN(cell)
sequence_layer(cell::LSTMCell) = LSTM(cell)
sequence_layer(cell::GRUCell) = GRU(cell)
sequence_layer(cell::GRUv3Cell) = GRUv3(cell)

"""
    build_model(kind, σ, arrays) -> Chain

`Chain(<layer>(cell), Dense(head.weight, head.bias, identity))`: `1 × len` in, `1 × len` out (the head
reads every step); [`predict`](@ref) takes the last column.
"""
function build_model(kind::AbstractString, σ, arrays::AbstractDict)
    layer = sequence_layer(build_cell(kind, σ, arrays))
    head = Dense(arrays["head.weight"], arrays["head.bias"], identity)
    return Chain(layer, head)
end

cell_arrays(c::RNNCell) = ("cell.Wi" => c.Wi, "cell.Wh" => c.Wh, "cell.bias" => c.bias)
cell_arrays(c::LSTMCell) = ("cell.Wi" => c.Wi, "cell.Wh" => c.Wh, "cell.bias" => c.bias)
cell_arrays(c::GRUCell) = ("cell.Wi" => c.Wi, "cell.Wh" => c.Wh, "cell.b" => c.b)
cell_arrays(c::GRUv3Cell) = (
    "cell.Wi" => c.Wi,
    "cell.Wh" => c.Wh,
    "cell.b" => c.b,
    "cell.Wh_htilde" => c.Wh_h̃,
)

"""
    flat_arrays(model::Chain) -> Dict{String, Array{Float64}}

Copies of the model's arrays in Float64, keyed by flat name (see [`param_names`](@ref)).
"""
function flat_arrays(model::Chain)
    layer, head = model[1], model[2]
    named = (
        cell_arrays(layer.cell)...,
        "head.weight" => head.weight,
        "head.bias" => head.bias,
    )
    return Dict{String, Array{Float64}}(name => Array{Float64}(a) for (name, a) in named)
end

"""
    train_model(kind, activation, dtype, epochs, lr, params,
                train_values, train_lengths, train_labels,
                test_values, test_lengths, test_labels,
                probe_values, probe_lengths;
                progress = nothing, progress_every = 1000) -> NamedTuple

Train `Chain(<layer>(cell), Dense(hidden => 1))` built from exactly the arrays in `params`, with the
loop of [`train_tutorial`](@ref): per-sample Adam, loss `|model(x)[1, end] - y|`.

`kind` is "rnn", "lstm", "gru" or "gruv3"; `activation` ("identity" or "tanh") is the `RNNCell`'s,
and is checked but not used by the gated cells (pass "tanh"). `params` maps the flat names of
[`param_names`](@ref)`(kind)` to arrays: `cell.Wi (G·hidden, 1)`, `cell.Wh (G·hidden, hidden)`,
`cell.bias` or `cell.b (G·hidden,)`, `cell.Wh_htilde (hidden, hidden)` (GRUv3),
`head.weight (1, hidden)`, `head.bias (1,)`, with `G` from [`gate_count`](@ref).

Returns the fields of [`train_and_evaluate!`](@ref) (Float64), the version strings, and `params`: a
`Dict{String, Array{Float64}}` of the trained arrays under the same names and shapes.
"""
function train_model(
    kind::AbstractString,
    activation::AbstractString,
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
    progress = nothing,
    progress_every::Integer = 1000,
)
    σ = activation_function(activation)
    T = element_type(dtype)
    check_settings(epochs, lr, progress_every)

    # Boundary with Python. `params` is a Julia Dict{String, Any} built by the worker whose values
    # are PythonCall `PyArray` views of C-order NumPy Float64 arrays; a PyArray indexes as NumPy does
    # (same shape, NumPy's strides), so `A[i, j]` is NumPy's `a[i - 1, j - 1]` and no transpose is
    # involved. The data arrays are as in train_tutorial. Everything is copied here, once, into
    # Julia arrays of T, the data too (Flux's recurrent cells do not convert Float64 input).
    model = build_model(kind, σ, model_arrays(T, kind, params))
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
    outcome = train_and_evaluate!(model, data, epochs, lr; progress, progress_every)
    return merge(outcome, (params = flat_arrays(model),), versions())
end

end # module FluxParity

"""
    FluxParity

The tutorial's model and training loop in Flux 0.16: an `RNN(1 => 1, σ)` trained with Adam, one sample
at a time, on the loss `|last output - label|`. Python calls [`train_tutorial`](@ref) once per run
(python/fluxparity/backends/_flux_worker.py); julia/tutorial.jl reuses the small helpers.

Load it with `include("julia/FluxParity.jl")` from an environment that has Flux, Optimisers and Zygote
(this repository's Project.toml, or juliacall's environment built from python/fluxparity/juliapkg.json).
Every Flux, Optimisers and Zygote name used here is listed, with the source line it was checked
against, in docs/julia-names.md.
"""
module FluxParity

using Flux: Flux, RNN, RNNCell, Adam
import Optimisers
import Zygote

export train_tutorial

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
    epochs >= 1 || throw(ArgumentError("epochs must be at least 1, got $epochs"))
    lr > 0 || throw(ArgumentError("lr must be positive, got $lr"))
    progress_every >= 1 ||
        throw(ArgumentError("progress_every must be ≥ 1, got $progress_every"))
    check_shapes(Wi, Wh, bias)

    # Boundary with Python. The arguments may be PythonCall `PyArray` views of NumPy memory:
    #   Wi (out, 1), Wh (out, out), bias (out,), *_values (total,), *_labels (n,): Float64;
    #   *_lengths (n,): Int64 (the layout of fluxparity.data.pack).
    # Everything is copied here, once, into Julia arrays of T. Both sides are converted explicitly:
    # Flux's recurrent cells do not convert Float64 input to Float32 weights.
    model = build_rnn(σ, Matrix{T}(Wi), Matrix{T}(Wh), Vector{T}(bias))
    train_x = sequences(T, Vector{Float64}(train_values), Vector{Int}(train_lengths))
    test_x = sequences(T, Vector{Float64}(test_values), Vector{Int}(test_lengths))
    probe_x = sequences(T, Vector{Float64}(probe_values), Vector{Int}(probe_lengths))
    train_y = Vector{T}(train_labels)
    test_y = Vector{T}(test_labels)
    check_labels(train_x, train_y, "training")
    check_labels(test_x, test_y, "test")

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

    cell = model.cell
    return (
        step_losses = step_losses,
        epoch_train_loss = epoch_train_loss,
        epoch_test_loss = epoch_test_loss,
        train_loss_before = train_loss_before,
        test_loss_before = test_loss_before,
        test_loss_after = epoch_test_loss[end],
        Wi = Matrix{Float64}(cell.Wi),
        Wh = Matrix{Float64}(cell.Wh),
        bias = Vector{Float64}(cell.bias),
        probe_predictions = probe_predictions,
        seconds = seconds,
        julia_version = string(VERSION),
        flux_version = version_string(Flux),
        optimisers_version = version_string(Optimisers),
        zygote_version = version_string(Zygote),
    )
end

end # module FluxParity

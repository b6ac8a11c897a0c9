"""
    FluxParityGolden

Record a golden file (`fluxparity-golden/1`, docs/golden-format.md) from Flux itself: what a Flux `Chain`
computes on an input batch, its loss, every parameter's gradient and K training steps with an
Optimisers.jl rule, for Python's `fluxparity.testing` to check a PyTorch port against (docs/testing.md).

    include("julia/golden.jl")
    using .FluxParityGolden
    model = Chain(LSTM(3 => 8), Dense(8 => 2))
    x = randn(Float32, 3, 10, 4)             # (in, len, batch)
    y = randn(Float32, 2, 4)                 # (out, batch): the loss reads the last step
    record_golden("lstm.npz", model, x, y; loss = "mse", rule = Adam(0.01), steps = 3)

Runs with `julia --project=.` from the repository root (Flux, Optimisers, Zygote, NPZ) and through juliacall
(`jl.seval('include("julia/golden.jl")')`). Only public API: `Flux.withgradient`, `Flux.setup`,
`Flux.update!`, `Flux.Losses`, the layers' fields, `NPZ.npzwrite`, `pkgversion`; every name is listed with
its source line in docs/julia-names.md ("Golden files (julia/golden.jl)").
"""
module FluxParityGolden

using Flux:
    Flux,
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
import NPZ
import Optimisers
import Zygote

include(joinpath(@__DIR__, "optimisers.jl")) # describe_rule, rule_json
# RNN_ACTIVATIONS, DENSE_ACTIVATIONS, activation_name(σ, allowed)
include(joinpath(@__DIR__, "activations.jl"))

export record_golden, check_golden

const FORMAT = "fluxparity-golden/1"
const WEIGHTS_FORMAT = "fluxparity-weights/3"
# GRUv3Cell's field `Wh_h̃` (h + U+0303), ASCII `Wh_htilde` in files.
const WH_HTILDE = Symbol("Wh_h\u0303")

const LOSSES = Dict{String, Function}(
    "mse" => Flux.Losses.mse,
    "mae" => Flux.Losses.mae,
    "logitcrossentropy" => Flux.Losses.logitcrossentropy,
    "abs_sum" => (ŷ, y) -> abs(sum(ŷ .- y)),
)

bytes(s::AbstractString) = Vector{UInt8}(codeunits(s))

"""
    layer_description(layer, i) -> (kind, activation or nothing, owner, [(name in file, field)])

What the file says about layer `i` of the Chain; `owner(layer)` is the struct holding the arrays (the
cell of a recurrent layer, the Dense itself).
"""
function layer_description(layer, i::Integer)
    if layer isa Dense
        # `Dense(…; bias = false)` stores the Bool `false` (create_bias, Flux src/utils.jl): no array.
        layer.bias === false ||
            layer.bias isa AbstractVector ||
            throw(ArgumentError(
                "layers[$i]: a Dense bias must be a vector or false, got $(typeof(layer.bias))",
            ))
        return (
            "dense",
            activation_name(layer.σ, DENSE_ACTIVATIONS),
            "layers[$i].",
            l -> l,
            layer.bias === false ?
                [("weight", :weight)] :
                [("weight", :weight), ("bias", :bias)],
        )
    end
    layer isa Union{RNN, LSTM, GRU, GRUv3} ||
        throw(ArgumentError(
            "layers[$i] is a $(typeof(layer)); the format holds RNN, LSTM, GRU, GRUv3 and Dense",
        ))
    cell = layer.cell
    prefix = "layers[$i].cell."
    cell isa RNNCell &&
        return (
            "rnn",
            activation_name(cell.σ, RNN_ACTIVATIONS),
            prefix,
            l -> l.cell,
            [("Wi", :Wi), ("Wh", :Wh), ("bias", :bias)],
        )
    cell isa LSTMCell &&
        return (
            "lstm",
            nothing,
            prefix,
            l -> l.cell,
            [("Wi", :Wi), ("Wh", :Wh), ("bias", :bias)],
        )
    cell isa GRUCell &&
        return ("gru", nothing, prefix, l -> l.cell, [("Wi", :Wi), ("Wh", :Wh), ("b", :b)])
    return (
        "gruv3",
        nothing,
        prefix,
        l -> l.cell,
        [("Wi", :Wi), ("Wh", :Wh), ("b", :b), ("Wh_htilde", WH_HTILDE)],
    )
end

"""
    parameters(model, descriptions) -> Vector{Pair{String, Array}}

Every parameter of `model` under its flat name, copied, in the file's order.
"""
function parameters(model::Chain, descriptions)
    out = Pair{String, Array}[]
    for (layer, (_, _, prefix, owner, fields)) in zip(model.layers, descriptions)
        for (name, field) in fields
            push!(out, prefix * name => Array(getfield(owner(layer), field)))
        end
    end
    return out
end

"""
    gradients(grad, model, descriptions) -> Vector{Pair{String, Array}}

The gradient of every parameter, from Zygote's structural gradient of the Chain (`grad.layers[i].cell.Wi`,
`grad.layers[i].weight`, ...); a `nothing` (an unused parameter) is written as zeros.
"""
function gradients(grad, model::Chain, descriptions)
    out = Pair{String, Array}[]
    for (i, (layer, (kind, _, prefix, owner, fields))) in enumerate(zip(
            model.layers,
            descriptions,
        ))
        g = grad === nothing ? nothing : grad.layers[i]
        g = (g === nothing || kind == "dense") ? g : g.cell
        for (name, field) in fields
            value = getfield(owner(layer), field)
            dx = g === nothing ? nothing : getproperty(g, field)
            push!(out, prefix * name => (dx === nothing ? zero(Array(value)) : Array(dx)))
        end
    end
    return out
end

version_text(m::Module) = string(something(pkgversion(m), "unknown"))

"""
    record_golden(path, model::Chain, x, y; loss = "mse", rule = Optimisers.Adam(0.01), steps = 3,
                  every_step = false) -> path

Write the golden file of `model` at `path` (exactly that name; written to `path * ".partial"` first, then
renamed). `x` is `(in, len, batch)`; `y` is `(out, batch)` when the loss reads the last step
(`model(x)[:, end, :]`, readout `last`) or `(out, len, batch)` for every step (readout `all`). Every
parameter, `x` and `y` must share one element type, `Float32` or `Float64`. `loss` is `"mse"`, `"mae"`,
`"logitcrossentropy"` (Flux.Losses, default `agg = mean`) or `"abs_sum"`; `rule` any Optimisers.jl rule that
`describe_rule` knows. Training: `Flux.setup(rule, model′)` on a copy, then `steps` times
`Flux.withgradient` at the current parameters and `Flux.update!`; `model` itself is not changed.
"""
function record_golden(
    path::AbstractString,
    model::Chain,
    x::AbstractArray{T, 3},
    y::AbstractArray{T};
    loss::AbstractString = "mse",
    rule::Optimisers.AbstractRule = Optimisers.Adam(0.01),
    steps::Integer = 3,
    every_step::Bool = false,
) where {T <: Union{Float32, Float64}}
    haskey(LOSSES, loss) ||
        throw(ArgumentError(
            "loss $(repr(loss)) is not one of $(join(sort!(collect(keys(LOSSES))), ", "))",
        ))
    steps >= 1 || throw(ArgumentError("steps must be at least 1, got $steps"))
    ndims(y) in (2, 3) ||
        throw(ArgumentError(
            "y must be (out, batch) or (out, len, batch), got size $(size(y))",
        ))
    readout = ndims(y) == 2 ? "last" : "all"
    descriptions = [layer_description(layer, i) for (i, layer) in enumerate(model.layers)]
    initial = parameters(model, descriptions)
    for (name, a) in initial
        eltype(a) == T ||
            throw(ArgumentError(
                "$name is $(eltype(a)), x is $T: convert the model (f32/f64) first",
            ))
    end
    f = LOSSES[loss]
    objective(m) = f(readout == "last" ? m(x)[:, end, :] : m(x), y)

    d = Dict{String, Any}("format" => bytes(WEIGHTS_FORMAT), "readout" => bytes(readout))
    for (i, (kind, activation, _, _, _)) in enumerate(descriptions)
        d["layers[$i].kind"] = bytes(kind)
        activation === nothing || (d["layers[$i].activation"] = bytes(activation))
        layer = model.layers[i]
        layer isa Dense &&
            (d["layers[$i].use_bias"] = bytes(layer.bias === false ? "false" : "true"))
    end
    for (name, a) in initial
        d[name] = a
    end
    d["golden.format"] = bytes(FORMAT)
    d["golden.dtype"] = bytes(T == Float32 ? "float32" : "float64")
    producer = Dict{String, Any}(
        "name" => "Flux",
        "julia" => string(VERSION),
        "Flux" => version_text(Flux),
        "Optimisers" => version_text(Optimisers),
        "Zygote" => version_text(Zygote),
        "NPZ" => version_text(NPZ),
    )
    d["golden.producer"] = bytes(rule_json(producer))
    d["golden.x"] = Array(x)
    d["golden.y"] = Array(y)
    d["golden.loss"] = bytes(loss)
    d["golden.rule"] = bytes(rule_json(describe_rule(rule)))
    d["golden.output"] = Array(model(x))
    value, grad = Flux.withgradient(objective, model)
    d["golden.loss_value"] = [Float64(value)]
    for (name, g) in gradients(grad[1], model, descriptions)
        d["golden.grad." * name] = g
    end

    trained = deepcopy(model)
    state = Flux.setup(rule, trained)
    losses = Float64[]
    each = Dict{String, Vector{Array}}(name => Array[] for (name, _) in initial)
    for _ in 1:steps
        v, g = Flux.withgradient(objective, trained)
        push!(losses, Float64(v))
        Flux.update!(state, trained, g[1])
        if every_step
            for (name, a) in parameters(trained, descriptions)
                push!(each[name], a)
            end
        end
    end
    d["golden.train.losses"] = losses
    for (name, a) in parameters(trained, descriptions)
        d["golden.train.after_last." * name] = a
        if every_step
            n = ndims(a) # (K, shape...): step k at [k, ...]
            d["golden.train.after_each." * name] = permutedims(
                cat(each[name]...; dims = n + 1),
                (n + 1, 1:n...),
            )
        end
    end
    partial = path * ".partial"
    NPZ.npzwrite(partial, d)
    mv(partial, path; force = true)
    return path
end

"""
    check_golden(model::Chain, path; rule = nothing, rtol = nothing, atol = nothing)
        -> Vector{NamedTuple{(:check, :passed, :max_abs_diff)}}

Check `model` against the golden file at `path`, whoever produced it: PyTorch for the golden
`fluxparity port --to flux` writes beside the Flux model, Flux for `record_golden`'s. The checks, each one
entry of the result: every weight before training (`model`'s own), every step's output on `golden.x`, the
loss value, every parameter's gradient and, when `rule` (the golden's Optimisers.jl rule, e.g.
`Optimisers.Adam(0.01)` for `fluxparity port`'s goldens) is given, the loss before each of the K training
steps and every parameter after the last. An element passes when `isapprox(actual, expected; rtol, atol)`;
the defaults are Python's `fluxparity.testing.TOLERANCES` for the golden's dtype (Float64: rtol 1e-9,
atol 1e-12; Float32: rtol 2e-3, atol 1e-5). Use it in a test as
`@test all(r -> r.passed, check_golden(model, path))`.
"""
function check_golden(
    model::Chain,
    path::AbstractString;
    rule = nothing,
    rtol = nothing,
    atol = nothing,
)
    d = NPZ.npzread(path)
    text(key) = haskey(d, key) ?
        String(copy(d[key])) :
        throw(ArgumentError("$path: no entry $key (is it a golden file?)"))
    text("golden.format") == FORMAT ||
        throw(ArgumentError("$path: golden.format is not $FORMAT"))
    T = text("golden.dtype") == "float32" ? Float32 : Float64
    rtol = something(rtol, T == Float32 ? 2.0e-3 : 1.0e-9)
    atol = something(atol, T == Float32 ? 1.0e-5 : 1.0e-12)
    descriptions = [layer_description(layer, i) for (i, layer) in enumerate(model.layers)]
    initial = parameters(model, descriptions)
    for (name, a) in initial
        eltype(a) == T ||
            throw(ArgumentError(
                "$name is $(eltype(a)), the golden is $T: convert the model first",
            ))
    end
    results = NamedTuple{(:check, :passed, :max_abs_diff), Tuple{String, Bool, Float64}}[]
    function compare(check, actual, expected)
        same_size = size(actual) == size(expected)
        passed = same_size && all(isapprox.(actual, expected; rtol = rtol, atol = atol))
        worst = same_size ? Float64(maximum(abs.(actual .- expected); init = 0)) : Inf
        push!(results, (check = check, passed = passed, max_abs_diff = worst))
        return passed
    end
    for (name, a) in initial
        compare("weights before training: $name", a, d[name])
    end
    x, y = d["golden.x"], d["golden.y"]
    readout = text("readout")
    f = LOSSES[text("golden.loss")]
    objective(m) = f(readout == "last" ? m(x)[:, end, :] : m(x), y)
    compare("output", Array(model(x)), d["golden.output"])
    value, grad = Flux.withgradient(objective, model)
    compare("loss", [Float64(value)], d["golden.loss_value"])
    for (name, g) in gradients(grad[1], model, descriptions)
        compare("gradient: $name", g, d["golden.grad." * name])
    end
    rule === nothing && return results
    trained = deepcopy(model)
    state = Flux.setup(rule, trained)
    losses = Float64[]
    for _ in 1:length(d["golden.train.losses"])
        v, g = Flux.withgradient(objective, trained)
        push!(losses, Float64(v))
        Flux.update!(state, trained, g[1])
    end
    compare("loss before each training step", losses, d["golden.train.losses"])
    for (name, a) in parameters(trained, descriptions)
        compare(
            "after the last training step: $name",
            a,
            d["golden.train.after_last." * name],
        )
    end
    return results
end

end # module

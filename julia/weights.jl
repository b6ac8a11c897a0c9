"""
    FluxParityWeights

Read and write the weights file, an `.npz` archive that python/fluxparity/models/_npz.py writes and reads
with the same names, shapes and dtypes. Written: format `fluxparity-weights/3`, a whole `Chain`
(`i` is the 1-based layer number, as in `model.layers[i]`):

| entry                   | Julia value                    | Flux                                          |
|:------------------------|:-------------------------------|:----------------------------------------------|
| `format`                | `Vector{UInt8}`, ASCII         | —                                             |
| `readout`               | `Vector{UInt8}`, ASCII         | `last` or `all` (how Python reads the output) |
| `layers[i].kind`        | `Vector{UInt8}`, ASCII         | `rnn`, `lstm`, `gru`, `gruv3` or `dense`      |
| `layers[i].activation`  | `Vector{UInt8}`, ASCII         | `RNNCell.σ` / `Dense.σ` (absent for gated)    |
| `layers[i].cell.Wi`     | `Matrix{T}` (G·hidden, in)     | `Wi`                                          |
| `layers[i].cell.Wh`     | `Matrix{T}` (G·hidden, hidden) | `Wh`                                          |
| `layers[i].cell.bias`   | `Vector{T}` (G·hidden)         | `bias` (RNNCell, LSTMCell)                    |
| `layers[i].cell.b`      | `Vector{T}` (G·hidden)         | `b` (GRUCell, GRUv3Cell)                      |
| `layers[i].cell.Wh_htilde` | `Matrix{T}` (hidden, hidden) | `Wh_h̃` (GRUv3Cell)                           |
| `layers[i].use_bias`    | `Vector{UInt8}`, ASCII         | `true`, or `false` for `Dense.bias === false` |
| `layers[i].weight`      | `Matrix{T}` (out, in)          | `Dense.weight`                                |
| `layers[i].bias`        | `Vector{T}` (out)              | `Dense.bias` (absent when `use_bias` is false) |

Still read: `fluxparity-weights/2` (the same without `use_bias`: every Dense has a bias) and
`fluxparity-weights/1` (`kind`, `activation`, `cell.*`, optional `head.weight`/`head.bias`),
as `Chain(layer)` or `Chain(layer, Dense)`.

`G` is 1, 4, 3, 3 for RNN, LSTM, GRU, GRUv3; `T` is `Float32` or `Float64`, one for the whole file.
Shapes are the same as NumPy's: NPZ.jl reads NumPy's row-major (C-order) arrays into a Julia array of
the reversed shape and `permutedims` it back (NPZ.jl `_npzreadarray`), and writes column-major arrays
with `fortran_order: True`, which NumPy honours. No transposing convention is involved.

Needs NPZ.jl (uuid 15e1cf62-19b3-5cfa-8e77-841668bca605, 0.4) besides Flux 0.16. Load it with
`include("julia/weights.jl")`. Every Flux and NPZ name used below, with the source line it was checked
against, is listed in docs/julia-names.md and docs/porting.md.
"""
module FluxParityWeights

using Flux:
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

export load_weights, load_model, save_weights

const FORMAT = "fluxparity-weights/3"
const FORMAT_V2 = "fluxparity-weights/2"
const FORMAT_V1 = "fluxparity-weights/1"

# Name in the file => the function Flux stores in RNNCell.σ / Dense.σ (Flux swaps tanh for tanh_fast
# and sigmoid for sigmoid_fast only when it runs the layer, through NNlib.fast_act).
const ACTIVATIONS = (
    "identity" => identity,
    "tanh" => tanh,
    "relu" => relu,
    "sigmoid" => sigmoid,
)

function activation_function(name::AbstractString)
    for (n, f) in ACTIVATIONS
        n == name && return f
    end
    throw(ArgumentError("activation $(repr(name)) is not identity, tanh, relu or sigmoid"))
end

function activation_name(σ)
    for (n, f) in ACTIVATIONS
        σ === f && return n
    end
    throw(ArgumentError(
        "activation $σ cannot be written to $FORMAT (only identity, tanh, relu, sigmoid)",
    ))
end

text(codes::AbstractVector{UInt8}) = String(copy(codes))
bytes(s::AbstractString) = Vector{UInt8}(codeunits(s))

function entry(d::AbstractDict, name::AbstractString)
    haskey(d, name) || throw(ArgumentError("the weights file has no entry $(repr(name))"))
    return d[name]
end

# The float arrays of a file's entries (everything but the ASCII text entries).
weight_arrays(d::AbstractDict) = [v for (k, v) in d if !(eltype(v) <: UInt8)]

function check_eltypes(arrays...)
    isempty(arrays) && throw(ArgumentError("no weight arrays found"))
    T = eltype(first(arrays))
    T <: Union{Float32, Float64} ||
        throw(ArgumentError("weights must be Float32 or Float64, got $T"))
    all(a -> eltype(a) == T, arrays) ||
        throw(ArgumentError(
            "all weights must share one element type, got $(map(eltype, arrays))",
        ))
    return T
end

# Whether the Dense under `prefix` has a bias: version 3 says so in `use_bias`; versions 1 and 2 always do.
function dense_has_bias(d::AbstractDict, prefix::AbstractString, found::AbstractString)
    found == FORMAT || return true
    flag = text(entry(d, prefix * "use_bias"))
    flag in ("true", "false") ||
        throw(ArgumentError(
            "$(prefix)use_bias must be \"true\" or \"false\", got $(repr(flag))",
        ))
    return flag == "true"
end

# One layer from the entries under `prefix` (e.g. "layers[2]." or, for version 1, ""). A Dense
# without a bias gets the Bool `false`, as `Dense(in => out; bias = false)` stores it.
function layer_from(
    d::AbstractDict,
    kind::AbstractString,
    σname,
    prefix::AbstractString,
    has_bias::Bool = true,
)
    arr(name) = entry(d, prefix * name)
    kind == "rnn" &&
        return RNN(RNNCell(
            activation_function(σname),
            arr("cell.Wi"),
            arr("cell.Wh"),
            arr("cell.bias"),
        ))
    kind == "lstm" &&
        return LSTM(LSTMCell(arr("cell.Wi"), arr("cell.Wh"), arr("cell.bias")))
    kind == "gru" && return GRU(GRUCell(arr("cell.Wi"), arr("cell.Wh"), arr("cell.b")))
    kind == "gruv3" &&
        return GRUv3(GRUv3Cell(
            arr("cell.Wi"),
            arr("cell.Wh"),
            arr("cell.b"),
            arr("cell.Wh_htilde"),
        ))
    kind == "dense" &&
        return Dense(
            arr("weight"),
            has_bias ? arr("bias") : false,
            activation_function(σname),
        )
    throw(ArgumentError("unknown layer kind $(repr(kind))"))
end

"""
    load_weights(path) -> (; model, readout)

The `Chain` built from exactly the stored arrays, and the readout ("last" or "all"). Element types
are the file's: convert explicitly (e.g. `Flux.f32`) if needed.
"""
function load_weights(path::AbstractString)
    d = NPZ.npzread(path)
    found = text(entry(d, "format"))
    # Checked before any constructor runs: Dense would silently convert a bias of another type.
    check_eltypes(weight_arrays(d)...)
    if found == FORMAT_V1
        kind = text(entry(d, "kind"))
        σname = haskey(d, "activation") ? text(d["activation"]) : ""
        layer = layer_from(d, kind, σname, "")
        layers = haskey(d, "head.weight") ?
            (layer, Dense(entry(d, "head.weight"), entry(d, "head.bias"))) :
            (layer,)
        return (; model = Chain(layers...), readout = "all")
    end
    found in (FORMAT, FORMAT_V2) ||
        throw(ArgumentError(
            "$path: format $(repr(found)) is not $(repr(FORMAT)) (or version 2 or 1)",
        ))
    n = count(k -> endswith(k, "].kind"), keys(d))
    layers = map(1:n) do i
        prefix = "layers[$i]."
        σname = haskey(d, prefix * "activation") ? text(d[prefix * "activation"]) : ""
        kind = text(entry(d, prefix * "kind"))
        has_bias = kind == "dense" ? dense_has_bias(d, prefix, found) : true
        layer_from(d, kind, σname, prefix, has_bias)
    end
    return (; model = Chain(layers...), readout = text(entry(d, "readout")))
end

"""
    load_model(path) -> Chain

The stored `Chain`: `in × len × batch` in, `out × len × batch` out (every step), from a zero state.
"""
load_model(path::AbstractString) = load_weights(path).model

function layer_entries(layer, prefix::AbstractString)
    d = Dict{String, Any}()
    if layer isa Dense
        # Flux stores `bias = false` as the Bool `false` (create_bias, src/utils.jl).
        layer.bias === false ||
            layer.bias isa AbstractVector ||
            throw(ArgumentError(
                "a Dense bias must be a vector or false, got $(typeof(layer.bias))",
            ))
        d[prefix * "kind"] = bytes("dense")
        d[prefix * "activation"] = bytes(activation_name(layer.σ))
        d[prefix * "use_bias"] = bytes(layer.bias === false ? "false" : "true")
        d[prefix * "weight"] = Array(layer.weight)
        layer.bias === false || (d[prefix * "bias"] = Array(layer.bias))
        return d
    end
    c = layer.cell
    d[prefix * "cell.Wi"] = Array(c.Wi)
    d[prefix * "cell.Wh"] = Array(c.Wh)
    if c isa RNNCell
        σname = activation_name(c.σ)
        # The format's RNN activations (python/fluxparity/models/_npz.py); sigmoid is Dense-only.
        σname == "sigmoid" &&
            throw(ArgumentError(
                "an RNN's activation must be identity, tanh or relu, got sigmoid",
            ))
        d[prefix * "kind"] = bytes("rnn")
        d[prefix * "activation"] = bytes(σname)
        d[prefix * "cell.bias"] = Array(c.bias)
    elseif c isa LSTMCell
        d[prefix * "kind"] = bytes("lstm")
        d[prefix * "cell.bias"] = Array(c.bias)
    elseif c isa GRUCell
        d[prefix * "kind"] = bytes("gru")
        d[prefix * "cell.b"] = Array(c.b)
    elseif c isa GRUv3Cell
        d[prefix * "kind"] = bytes("gruv3")
        d[prefix * "cell.b"] = Array(c.b)
        d[prefix * "cell.Wh_htilde"] = Array(c.Wh_h̃)
    else
        throw(ArgumentError("cannot store a layer of type $(typeof(layer))"))
    end
    return d
end

"""
    save_weights(path, model::Chain; readout = "last")

Write `model` (recurrent layers `RNN`/`LSTM`/`GRU`/`GRUv3`, then `Dense` layers, with a bias or
`bias = false`) to `path`, exactly that name, in format `fluxparity-weights/3`. Returns `path`.
"""
function save_weights(path::AbstractString, model::Chain; readout::AbstractString = "last")
    readout in ("last", "all") ||
        throw(ArgumentError("readout must be \"last\" or \"all\", got $(repr(readout))"))
    d = Dict{String, Any}("format" => bytes(FORMAT), "readout" => bytes(readout))
    for (i, layer) in enumerate(model.layers)
        merge!(d, layer_entries(layer, "layers[$i]."))
    end
    check_eltypes(weight_arrays(d)...)
    NPZ.npzwrite(path, d)
    return path
end

end # module

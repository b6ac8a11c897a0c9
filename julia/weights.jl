"""
    FluxParityWeights

Read and write the weights file `fluxparity-weights/1`, an `.npz` archive that
python/fluxparity/models/_npz.py writes and reads with the same names, shapes and dtypes:

| entry            | Julia value                      | Flux field                                  |
|:-----------------|:---------------------------------|:--------------------------------------------|
| `format`         | `Vector{UInt8}`, ASCII           | —                                           |
| `kind`           | `Vector{UInt8}`, ASCII           | `rnn`, `lstm`, `gru` or `gruv3`             |
| `activation`     | `Vector{UInt8}`, ASCII           | `RNNCell.σ`: `identity`, `tanh` or `relu`   |
| `cell.Wi`        | `Matrix{T}` (G·hidden, in)       | `Wi`                                        |
| `cell.Wh`        | `Matrix{T}` (G·hidden, hidden)   | `Wh`                                        |
| `cell.bias`      | `Vector{T}` (G·hidden)           | `bias` (RNNCell, LSTMCell)                  |
| `cell.b`         | `Vector{T}` (G·hidden)           | `b` (GRUCell, GRUv3Cell)                    |
| `cell.Wh_htilde` | `Matrix{T}` (hidden, hidden)     | `Wh_h̃` (GRUv3Cell)                          |
| `head.weight`    | `Matrix{T}` (out, hidden)        | `Dense.weight` (only when there is a head)  |
| `head.bias`      | `Vector{T}` (out)                | `Dense.bias`                                |

`G` is 1, 4, 3, 3 for RNN, LSTM, GRU, GRUv3; `T` is `Float32` or `Float64`, one for the whole file.
Shapes are the same as NumPy's: NPZ.jl reads NumPy's row-major (C-order) arrays into a Julia array of
the reversed shape and `permutedims` it back (NPZ.jl `_npzreadarray`), and writes column-major arrays
with `fortran_order: True`, which NumPy honours. No transposing convention is involved.

Needs NPZ.jl (uuid 15e1cf62-19b3-5cfa-8e77-841668bca605, 0.4) besides Flux 0.16. Load it with
`include("julia/weights.jl")`. Every Flux and NPZ name used below, with the source line it was checked
against, is listed in docs/porting.md ("Julia names used by julia/weights.jl").
"""
module FluxParityWeights

using Flux: Chain, Dense, GRU, GRUCell, GRUv3, GRUv3Cell, LSTM, LSTMCell, RNN, RNNCell, relu
import NPZ

export load_weights, load_model, save_weights

const FORMAT = "fluxparity-weights/1"

# Name in the file => the function Flux's RNNCell stores in its σ field (Flux swaps tanh for tanh_fast
# only when it runs the cell, through NNlib.fast_act).
const ACTIVATIONS = ("identity" => identity, "tanh" => tanh, "relu" => relu)

function activation_function(name::AbstractString)
    for (n, f) in ACTIVATIONS
        n == name && return f
    end
    throw(ArgumentError("activation $(repr(name)) is not identity, tanh or relu"))
end

function activation_name(σ)
    for (n, f) in ACTIVATIONS
        σ === f && return n
    end
    throw(ArgumentError(
        "activation $σ cannot be written to $FORMAT (only identity, tanh, relu)",
    ))
end

text(codes::AbstractVector{UInt8}) = String(copy(codes))
bytes(s::AbstractString) = Vector{UInt8}(codeunits(s))

function entry(d::AbstractDict, name::AbstractString)
    haskey(d, name) || throw(ArgumentError("the weights file has no entry $(repr(name))"))
    return d[name]
end

# The float arrays of a file's entries (everything but the ASCII text entries).
weight_arrays(d::AbstractDict) = [
    v
    for (k, v) in d
    if startswith(k, "cell.") || startswith(k, "head.")
]

function check_eltypes(arrays...)
    isempty(arrays) && throw(ArgumentError("no cell.* or head.* arrays found"))
    T = eltype(first(arrays))
    T <: Union{Float32, Float64} ||
        throw(ArgumentError("weights must be Float32 or Float64, got $T"))
    all(a -> eltype(a) == T, arrays) ||
        throw(ArgumentError(
            "all weights must share one element type, got $(map(eltype, arrays))",
        ))
    return T
end

"""
    load_weights(path) -> (; cell, head)

The cell (`RNNCell`, `LSTMCell`, `GRUCell` or `GRUv3Cell`) built from exactly the stored arrays, and the
`Dense` head or `nothing`. Element types are the file's: convert explicitly (e.g. `Flux.f32`) if needed.
"""
function load_weights(path::AbstractString)
    d = NPZ.npzread(path)
    found = text(entry(d, "format"))
    found == FORMAT ||
        throw(ArgumentError("$path: format $(repr(found)) is not $(repr(FORMAT))"))
    # Checked before any constructor runs: Dense would silently convert a bias of another type.
    check_eltypes(weight_arrays(d)...)
    kind = text(entry(d, "kind"))
    Wi, Wh = entry(d, "cell.Wi"), entry(d, "cell.Wh")
    cell = if kind == "rnn"
        σ = activation_function(text(entry(d, "activation")))
        RNNCell(σ, Wi, Wh, entry(d, "cell.bias"))
    elseif kind == "lstm"
        LSTMCell(Wi, Wh, entry(d, "cell.bias"))
    elseif kind == "gru"
        GRUCell(Wi, Wh, entry(d, "cell.b"))
    elseif kind == "gruv3"
        GRUv3Cell(Wi, Wh, entry(d, "cell.b"), entry(d, "cell.Wh_htilde"))
    else
        throw(ArgumentError("$path: unknown kind $(repr(kind))"))
    end
    head = nothing
    if haskey(d, "head.weight")
        head = Dense(entry(d, "head.weight"), entry(d, "head.bias"))
    end
    return (; cell, head)
end

cell_arrays(c::RNNCell) = (c.Wi, c.Wh, c.bias)
cell_arrays(c::LSTMCell) = (c.Wi, c.Wh, c.bias)
cell_arrays(c::GRUCell) = (c.Wi, c.Wh, c.b)
cell_arrays(c::GRUv3Cell) = (c.Wi, c.Wh, c.b, c.Wh_h̃)

sequence_layer(c::RNNCell) = RNN(c)
sequence_layer(c::LSTMCell) = LSTM(c)
sequence_layer(c::GRUCell) = GRU(c)
sequence_layer(c::GRUv3Cell) = GRUv3(c)

"""
    load_model(path) -> RNN | LSTM | GRU | GRUv3 | Chain

The recurrent layer over the stored cell, followed by the `Dense` head when the file has one:
`in × len × batch` in, `out × len × batch` out (every step), from a zero initial state.
"""
function load_model(path::AbstractString)
    (; cell, head) = load_weights(path)
    layer = sequence_layer(cell)
    return head === nothing ? layer : Chain(layer, head)
end

function cell_entries(c::RNNCell)
    return Dict{String, Any}(
        "kind" => bytes("rnn"),
        "activation" => bytes(activation_name(c.σ)),
        "cell.Wi" => Array(c.Wi),
        "cell.Wh" => Array(c.Wh),
        "cell.bias" => Array(c.bias),
    )
end

function cell_entries(c::LSTMCell)
    return Dict{String, Any}(
        "kind" => bytes("lstm"),
        "cell.Wi" => Array(c.Wi),
        "cell.Wh" => Array(c.Wh),
        "cell.bias" => Array(c.bias),
    )
end

function cell_entries(c::GRUCell)
    return Dict{String, Any}(
        "kind" => bytes("gru"),
        "cell.Wi" => Array(c.Wi),
        "cell.Wh" => Array(c.Wh),
        "cell.b" => Array(c.b),
    )
end

function cell_entries(c::GRUv3Cell)
    return Dict{String, Any}(
        "kind" => bytes("gruv3"),
        "cell.Wi" => Array(c.Wi),
        "cell.Wh" => Array(c.Wh),
        "cell.b" => Array(c.b),
        "cell.Wh_htilde" => Array(c.Wh_h̃),
    )
end

const Cell = Union{RNNCell, LSTMCell, GRUCell, GRUv3Cell}
const Layer = Union{RNN, LSTM, GRU, GRUv3}

"""
    save_weights(path, cell_or_layer; head = nothing)
    save_weights(path, Chain(layer, head))

Write a cell (or the cell of an `RNN`/`LSTM`/`GRU`/`GRUv3` layer) and an optional `Dense` head (identity
activation, with a bias) to `path`, exactly that name, in the format above. Returns `path`.
"""
function save_weights(path::AbstractString, cell::Cell; head = nothing)
    cell_arrays(cell)[3] isa AbstractVector ||
        throw(ArgumentError("the cell has no bias (bias = false); the format stores one"))
    d = cell_entries(cell)
    d["format"] = bytes(FORMAT)
    if head !== nothing
        (head isa Dense && head.σ === identity && head.bias isa AbstractVector) ||
            throw(ArgumentError(
                "the head must be a Dense layer with a bias and identity activation",
            ))
        d["head.weight"] = Array(head.weight)
        d["head.bias"] = Array(head.bias)
    end
    check_eltypes(weight_arrays(d)...)
    NPZ.npzwrite(path, d)
    return path
end

save_weights(path::AbstractString, layer::Layer; head = nothing) = save_weights(
    path,
    layer.cell;
    head,
)

function save_weights(path::AbstractString, model::Chain)
    length(model) == 1 && return save_weights(path, model[1])
    length(model) == 2 && return save_weights(path, model[1]; head = model[2])
    throw(ArgumentError(
        "expected Chain(layer) or Chain(layer, Dense), got $(length(model)) layers",
    ))
end

end # module

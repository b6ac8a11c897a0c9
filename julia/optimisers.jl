# Optimisers.jl rules <-> the dict form of python/fluxparity/optim (`to_dict` / `from_dict`).
#
# Plain functions, meant to be `include`d (e.g. from julia/FluxParity.jl, inside its module, which already has
# `import Optimisers`); they define no module. A rule's dict is
#
#     Dict("rule" => "Momentum", "eta" => 0.01, "rho" => 0.9)
#     Dict("rule" => "OptimiserChain", "opts" => Any[Dict("rule" => "ClipNorm", ...), ...])
#
# with the field names of Optimisers.jl v0.4.8 (src/rules.jl), pairs as two-element vectors, and keys and
# values as plain Julia values (String keys; Float64, Bool, Int, vectors, dicts). Every name used here is
# listed with its source line in docs/julia-names.md ("Optimisers rules (julia/optimisers.jl)").

import Optimisers

# Every rule's fields in Optimisers.jl's order (= `fieldnames` of its struct in v0.4.8).
const OPTIMISERS_RULE_FIELDS = Dict{String, Tuple{Vararg{Symbol}}}(
    "Descent" => (:eta,),
    "Momentum" => (:eta, :rho),
    "Nesterov" => (:eta, :rho),
    "RMSProp" => (:eta, :rho, :epsilon, :centred),
    "Rprop" => (:eta, :ell, :gamma),
    "Adam" => (:eta, :beta, :epsilon),
    "Lion" => (:eta, :beta),
    "RAdam" => (:eta, :beta, :epsilon),
    "AdaMax" => (:eta, :beta, :epsilon),
    "AdaGrad" => (:eta, :epsilon),
    "AdaDelta" => (:rho, :epsilon),
    "AMSGrad" => (:eta, :beta, :epsilon),
    "NAdam" => (:eta, :beta, :epsilon),
    "AdamW" => (:eta, :beta, :lambda, :epsilon, :couple),
    "AdaBelief" => (:eta, :beta, :epsilon),
    "WeightDecay" => (:lambda,),
    "SignDecay" => (:lambda,),
    "ClipGrad" => (:delta,),
    "ClipNorm" => (:omega, :p, :throw),
    "OptimiserChain" => (:opts,),
    "AccumGrad" => (:n,),
)

"""
    optimisers_rule(d::AbstractDict) -> Optimisers.AbstractRule

The Optimisers.jl rule a dict describes; every field must be given (Python's `to_dict` writes them all).
Throws an `ArgumentError` naming the bad rule, field or value.
"""
function optimisers_rule(d::AbstractDict)
    haskey(d, "rule") ||
        throw(ArgumentError(
            "a rule dict needs a \"rule\" key, got keys $(collect(keys(d)))",
        ))
    name = string(d["rule"])
    fields = get(OPTIMISERS_RULE_FIELDS, name, nothing)
    fields === nothing &&
        throw(ArgumentError(
            "unknown Optimisers rule $(repr(name)); allowed: $(join(sort!(collect(keys(OPTIMISERS_RULE_FIELDS))), ", "))",
        ))
    for key in keys(d)
        k = string(key)
        k == "rule" ||
            Symbol(k) in fields ||
            throw(ArgumentError(
                "$name has no field $(repr(k)); fields: $(join(fields, ", "))",
            ))
    end
    field(f::Symbol) = haskey(d, string(f)) ?
        d[string(f)] :
        throw(ArgumentError("$name needs field $(repr(string(f)))"))
    num(f) = _rule_float(name, f, field(f))
    pair(f) = _rule_pair(name, f, field(f))
    flag(f) = _rule_bool(name, f, field(f))
    name == "Descent" && return Optimisers.Descent(num(:eta))
    name == "Momentum" && return Optimisers.Momentum(num(:eta), num(:rho))
    name == "Nesterov" && return Optimisers.Nesterov(num(:eta), num(:rho))
    name == "RMSProp" &&
        return Optimisers.RMSProp(
            num(:eta),
            num(:rho),
            num(:epsilon);
            centred = flag(:centred),
        )
    name == "Rprop" && return Optimisers.Rprop(num(:eta), pair(:ell), pair(:gamma))
    name == "Adam" && return Optimisers.Adam(num(:eta), pair(:beta), num(:epsilon))
    name == "Lion" && return Optimisers.Lion(num(:eta), pair(:beta))
    name == "RAdam" && return Optimisers.RAdam(num(:eta), pair(:beta), num(:epsilon))
    name == "AdaMax" && return Optimisers.AdaMax(num(:eta), pair(:beta), num(:epsilon))
    name == "AdaGrad" && return Optimisers.AdaGrad(num(:eta), num(:epsilon))
    name == "AdaDelta" && return Optimisers.AdaDelta(num(:rho), num(:epsilon))
    name == "AMSGrad" && return Optimisers.AMSGrad(num(:eta), pair(:beta), num(:epsilon))
    name == "NAdam" && return Optimisers.NAdam(num(:eta), pair(:beta), num(:epsilon))
    name == "AdamW" &&
        return Optimisers.AdamW(
            num(:eta),
            pair(:beta),
            num(:lambda),
            num(:epsilon);
            couple = flag(:couple),
        )
    name == "AdaBelief" &&
        return Optimisers.AdaBelief(num(:eta), pair(:beta), num(:epsilon))
    name == "WeightDecay" && return Optimisers.WeightDecay(num(:lambda))
    name == "SignDecay" && return Optimisers.SignDecay(num(:lambda))
    name == "ClipGrad" && return Optimisers.ClipGrad(num(:delta))
    name == "ClipNorm" &&
        return Optimisers.ClipNorm(num(:omega), num(:p); throw = flag(:throw))
    name == "AccumGrad" && return Optimisers.AccumGrad(_rule_int(name, :n, field(:n)))
    opts = field(:opts)
    opts isa AbstractVector ||
        throw(ArgumentError(
            "OptimiserChain.opts must be a list of rule dicts, got $(repr(opts))",
        ))
    return Optimisers.OptimiserChain(map(optimisers_rule, opts)...)
end

function _rule_float(name, f, x)
    (x isa Real && !(x isa Bool)) ||
        throw(ArgumentError("$name.$f must be a number, got $(repr(x))"))
    return Float64(x)
end

function _rule_pair(name, f, x)
    (x isa Union{AbstractVector, Tuple} && length(x) == 2) ||
        throw(ArgumentError("$name.$f must be a pair of numbers, got $(repr(x))"))
    return (_rule_float(name, f, x[1]), _rule_float(name, f, x[2]))
end

function _rule_bool(name, f, x)
    x isa Bool || throw(ArgumentError("$name.$f must be true or false, got $(repr(x))"))
    return x
end

function _rule_int(name, f, x)
    (x isa Integer && !(x isa Bool) && x >= 1) ||
        throw(ArgumentError("$name.$f must be a whole number >= 1, got $(repr(x))"))
    return Int(x)
end

"""
    describe_rule(rule::Optimisers.AbstractRule) -> Dict{String,Any}

The dict form of an Optimisers.jl rule, read from its fields (for golden files); the inverse of
[`optimisers_rule`](@ref). Throws if the rule is not one of the described ones or its fields are not the
v0.4.8 names (a newer Optimisers.jl that renamed a field must be looked at, not guessed).
"""
function describe_rule(rule::Optimisers.AbstractRule)
    name = string(nameof(typeof(rule)))
    fields = get(OPTIMISERS_RULE_FIELDS, name, nothing)
    fields === nothing && throw(ArgumentError("no description for Optimisers rule $name"))
    actual = fieldnames(typeof(rule))
    actual == fields ||
        throw(ArgumentError(
            "$name has fields $(actual), expected $(fields) (Optimisers.jl v0.4.8)",
        ))
    out = Dict{String, Any}("rule" => name)
    for f in fields
        out[string(f)] = _describe_value(getfield(rule, f))
    end
    return out
end

_describe_value(x::Bool) = x
_describe_value(x::Integer) = Int(x)
_describe_value(x::Real) = Float64(x)
_describe_value(x::Tuple{Vararg{Optimisers.AbstractRule}}) = Any[
    describe_rule(o)
    for o in x
]
_describe_value(x::Tuple) = Any[_describe_value(v) for v in x]

"""
    rule_json(d) -> String

JSON text of a [`describe_rule`](@ref) dict, for Python's `json.loads` and `fluxparity.optim.from_dict`
(non-finite numbers as `Infinity`/`NaN`, which Python's json reads). ASCII only: a string escapes `"` and
`\\` with a backslash and every other character outside printable ASCII (U+0020–U+007E) as `\\uXXXX`, as
JSON does (not `escape_string`, whose `\\e`, `\\xNN` and raw non-ASCII are not JSON).
"""
rule_json(x::AbstractDict) = "{" *
    join(
        ("$(rule_json(string(k))):$(rule_json(x[k]))" for k in sort!(collect(keys(x)))),
        ",",
    ) *
    "}"
rule_json(x::AbstractVector) = "[" * join(map(rule_json, x), ",") * "]"
function rule_json(x::AbstractString)
    io = IOBuffer()
    write(io, '"')
    for c in x
        isvalid(c) || throw(ArgumentError("$(repr(x)) is not valid UTF-8"))
        if c == '"' || c == '\\'
            write(io, '\\', c)
        elseif ' ' <= c <= '~'
            write(io, c)
        else
            # JSON's \uXXXX, a UTF-16 surrogate pair above U+FFFF: the text stays ASCII
            for unit in transcode(UInt16, string(c))
                write(io, "\\u", string(unit; base = 16, pad = 4))
            end
        end
    end
    write(io, '"')
    return String(take!(io))
end
rule_json(x::Bool) = x ? "true" : "false"
rule_json(x::Integer) = string(x)
rule_json(x::AbstractFloat) = isnan(x) ?
    "NaN" :
    isinf(x) ? (x > 0 ? "Infinity" : "-Infinity") : repr(Float64(x))

"""Descriptions of Optimisers.jl rules: name, field names and defaults as in Optimisers.jl v0.4.8
``src/rules.jl``, a parser for the command-line spec strings, and a JSON-able dict form for golden files.

A :class:`Rule` holds numbers only; it knows no array library. Field values are Python ``float`` (Julia
``Float64``), ``bool``, ``int`` (``AccumGrad.n``), a pair of floats (``beta``, ``ell``, ``gamma``) or, for
``OptimiserChain``, a tuple of rules (field ``opts``).

Spec grammar (case-insensitive names, no spaces needed; spaces around tokens are ignored)::

    spec    := rule | member | "chain:" member ("," member)*
    rule    := NAME [":" field ("," field)*]          momentum:eta=0.01,rho=0.9
    field   := FIELD "=" VALUE
    member  := NAME                                     adamw          (all defaults)
             | NAME "=" VALUE                           clipnorm=1     (sets the rule's FIRST field)
             | NAME "(" field ("," field)* ")"          adamw(eta=1e-3,lambda=0.01)
    VALUE   := number | true | false | "(" number "," number ")"

Commas only separate members or fields at bracket depth 0, so ``adam:beta=(0.9,0.99)`` and
``chain:clipnorm=1,adamw(beta=(0.9,0.99),lambda=0.1)`` are unambiguous. ``chain:`` members are never
chains themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Field kinds: "float", "bool", "int", "pair" (two floats), "rules" (OptimiserChain.opts).
# (Optimisers.jl name, ((field, kind, default), ...)). The first field is the one ``name=value`` sets.
# Descent's default is the Float32 literal 1f-1, whose Float64 value is 0.10000000149011612.
_SPECS: dict[str, tuple[tuple[str, str, Any], ...]] = {
    "Descent": (("eta", "float", float(np.float32(0.1))),),
    "Momentum": (("eta", "float", 0.01), ("rho", "float", 0.9)),
    "Nesterov": (("eta", "float", 0.001), ("rho", "float", 0.9)),
    "RMSProp": (("eta", "float", 0.001), ("rho", "float", 0.9), ("epsilon", "float", 1e-8),
                ("centred", "bool", False)),
    "Rprop": (("eta", "float", 1e-3), ("ell", "pair", (0.5, 1.2)), ("gamma", "pair", (1e-6, 50.0))),
    "Adam": (("eta", "float", 0.001), ("beta", "pair", (0.9, 0.999)), ("epsilon", "float", 1e-8)),
    "Lion": (("eta", "float", 0.001), ("beta", "pair", (0.9, 0.999))),
    "RAdam": (("eta", "float", 0.001), ("beta", "pair", (0.9, 0.999)), ("epsilon", "float", 1e-8)),
    "AdaMax": (("eta", "float", 0.001), ("beta", "pair", (0.9, 0.999)), ("epsilon", "float", 1e-8)),
    "AdaGrad": (("eta", "float", 0.1), ("epsilon", "float", 1e-8)),
    "AdaDelta": (("rho", "float", 0.9), ("epsilon", "float", 1e-8)),
    "AMSGrad": (("eta", "float", 0.001), ("beta", "pair", (0.9, 0.999)), ("epsilon", "float", 1e-8)),
    "NAdam": (("eta", "float", 0.001), ("beta", "pair", (0.9, 0.999)), ("epsilon", "float", 1e-8)),
    "AdamW": (("eta", "float", 0.001), ("beta", "pair", (0.9, 0.999)), ("lambda", "float", 0.0),
              ("epsilon", "float", 1e-8), ("couple", "bool", True)),
    "AdaBelief": (("eta", "float", 0.001), ("beta", "pair", (0.9, 0.999)), ("epsilon", "float", 1e-16)),
    "WeightDecay": (("lambda", "float", 5e-4),),
    "SignDecay": (("lambda", "float", 1e-3),),
    "ClipGrad": (("delta", "float", 10.0),),
    "ClipNorm": (("omega", "float", 10.0), ("p", "float", 2.0), ("throw", "bool", True)),
    "OptimiserChain": (("opts", "rules", ()),),
    "AccumGrad": (("n", "int", None),),  # no default in Optimisers.jl: AccumGrad(n::Integer)
}
# Each hyperparameter's domain: where the rule means what Optimisers.jl's rules.jl computes (v0.4.8; that
# file checks only eta >= 0 (interface.jl:308-311, rules.jl:125,538) and AccumGrad's n > 0 (rules.jl:844);
# the rest follows from the update formulas cited). (test, "what is allowed", why) per field name, with
# rule-specific entries first. A pair's test gets the pair.
_BIAS_CORRECTED = ("Adam", "RAdam", "AdaMax", "AMSGrad", "NAdam", "AdamW", "AdaBelief")
_DOMAINS: dict[tuple[str, str], tuple[Any, str, str]] = {
    **{(n, "beta"): (lambda b: all(0 <= v < 1 for v in b), "two numbers in [0, 1)",
                     "moment decays: (1 - beta) of each gradient enters the moments (rules.jl:220-221) and "
                     "the bias correction divides by 1 - beta^t (rules.jl:222)") for n in _BIAS_CORRECTED},
    ("Lion", "beta"): (lambda b: all(0 <= v <= 1 for v in b), "two numbers in [0, 1]",
                       "interpolation weights between the gradient and the momentum (rules.jl:248,252)"),
    ("Rprop", "ell"): (lambda p: 0 < p[0] <= 1 <= p[1], "(decrease, increase) with 0 < decrease <= 1 <= increase",
                       "the factors that shrink and grow each step size (rules.jl:184)"),
    ("Rprop", "gamma"): (lambda p: 0 <= p[0] <= p[1], "(min, max) with 0 <= min <= max",
                         "the bounds of each step size (rules.jl:184)"),
    ("AccumGrad", "n"): (lambda n: 1 <= n <= 2**63 - 1, "a whole number from 1 to 2^63 - 1",
                         "how many gradients to accumulate, a Julia Int (rules.jl:843-844)"),
    ("*", "rho"): (lambda v: 0 <= v <= 1, "a number in [0, 1]",
                   "a decay factor: each step keeps rho of the running value (rules.jl:62,136,422)"),
    ("*", "epsilon"): (lambda v: v >= 0, "a number >= 0",
                       "added to a non-negative denominator (rules.jl:140,222); below 0 it can be 0 or negative"),
    ("*", "lambda"): (lambda v: v >= 0, "a number >= 0", "a decay strength (rules.jl:628,668); below 0 the "
                      "weights grow instead"),
    ("*", "delta"): (lambda v: v >= 0, "a number >= 0", "the clamp's bound: clamp(dx, -delta, delta) (rules.jl:692)"),
    ("*", "omega"): (lambda v: v >= 0, "a number >= 0 (or Inf)",
                     "the largest norm a gradient keeps (rules.jl:724); below 0 it flips the gradient's sign"),
}


def _check_domain(name: str, field: str, value: Any) -> Any:
    found = _DOMAINS.get((name, field)) or _DOMAINS.get(("*", field))
    if found is not None and not found[0](value):
        raise ValueError(f"{name}.{field} must be {found[1]} ({found[2]}), got {_short(value)}")
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


RULE_NAMES: tuple[str, ...] = tuple(_SPECS)
MODIFIERS: tuple[str, ...] = ("WeightDecay", "SignDecay", "ClipGrad", "ClipNorm", "OptimiserChain", "AccumGrad")
CLIPNORM_P = (1.0, 2.0, math.inf)  # the norms the reference implements (Optimisers.jl allows any p)

_BY_SPEC_NAME = {n.lower(): n for n in _SPECS} | {"chain": "OptimiserChain"}


def defaults(name: str) -> dict[str, Any]:
    """Optimisers.jl's default for every field of rule ``name`` (``None`` where it has none)."""
    return {f: d for f, _, d in _spec(name)}


def _spec(name: str):
    if name not in _SPECS:
        raise ValueError(f"unknown Optimisers.jl rule {name!r}; allowed: {', '.join(RULE_NAMES)}")
    return _SPECS[name]


@dataclass(frozen=True)
class Rule:
    """One Optimisers.jl rule: ``name`` (e.g. ``"Momentum"``) and every field's value, in field order.

    Build with :func:`rule`, :func:`parse_spec` or :func:`from_dict`; read a field with ``r["eta"]``.
    """

    name: str
    fields: tuple[tuple[str, Any], ...]

    def __getitem__(self, field: str) -> Any:
        for f, v in self.fields:
            if f == field:
                return v
        raise KeyError(f"{self.name} has no field {field!r}; fields: {', '.join(f for f, _ in self.fields)}")

    def replace(self, **changes: Any) -> "Rule":
        """The same rule with some fields changed (Optimisers.jl's ``adjust``), checked like :func:`rule`."""
        return rule(self.name, **(dict(self.fields) | changes))

    def __str__(self) -> str:
        if self.name == "OptimiserChain":
            return f"OptimiserChain({', '.join(str(r) for r in self['opts'])})"
        return f"{self.name}({', '.join(f'{f}={v}' for f, v in self.fields)})"


def rule(name: str, **fields: Any) -> Rule:
    """A checked :class:`Rule`; fields not given take Optimisers.jl's defaults.

    >>> rule("Momentum", eta=0.1)["rho"]
    0.9
    """
    spec = _spec(name)
    known = {f for f, _, _ in spec}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{name} has no field {unknown[0]!r}; fields: {', '.join(f for f, _, _ in spec)}")
    values = []
    for field, kind, default in spec:
        value = fields.get(field, default)
        if value is None:
            raise ValueError(f"{name} needs {field} (Optimisers.jl has no default for it)")
        values.append((field, _check_domain(name, field, _check(name, field, kind, value))))
    return Rule(name, tuple(values))


def _check(name: str, field: str, kind: str, value: Any) -> Any:
    where = f"{name}.{field}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{where} must be a whole number >= 1, got {value!r}")
        return int(value)
    if kind == "rules":
        opts = tuple(value)
        bad = [o for o in opts if not isinstance(o, Rule)]
        if bad:
            raise ValueError(f"{where} must hold rules, got {bad[0]!r}")
        return opts
    if kind == "pair":
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(f"{where} must be a pair of numbers like (0.9,0.999), got {value!r}")
        return tuple(_number(where, v) for v in value)
    number = _number(where, value)
    if field == "eta" and number < 0:
        raise ValueError(f"{where} (the learning rate) cannot be negative, got {number}")
    if name == "ClipNorm" and field == "p" and number not in CLIPNORM_P:
        raise ValueError(f"{where} must be 1, 2 or Inf here, got {number}")
    return number


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not where.endswith(("ClipNorm.p", "ClipNorm.omega"))):
        raise ValueError(f"{where} must be finite, got {value!r}")
    return number


# ---------------------------------------------------------------------------------------------- parsing
def parse_spec(spec: str) -> Rule:
    """A :class:`Rule` from a command-line spec (grammar in this module's docstring).

    A refused spec raises ValueError, one line of bounded length (a long spec is quoted by its start).

    >>> str(parse_spec("chain:clipnorm=1,adamw"))
    'OptimiserChain(ClipNorm(omega=1.0, p=2.0, throw=True), AdamW(eta=0.001, beta=(0.9, 0.999), lambda=0.0, epsilon=1e-08, couple=True))'
    """
    try:
        return _parse_spec(spec)
    except ValueError as exc:
        text = str(exc)
        if isinstance(spec, str) and len(repr(spec)) > 80:
            text = text.replace(repr(spec), _short(spec) + f" ({len(spec)} characters)")
        if len(text) > 500:
            text = f"{text[:250]} … {text[-240:]}"
        raise ValueError(text) from None


def _parse_spec(spec: str) -> Rule:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty optimizer spec; expected e.g. adam, momentum:eta=0.01,rho=0.9 or chain:clipnorm=1,adamw")
    head, sep, rest = spec.strip().partition(":")
    if not sep and ("=" in head or "(" in head):
        return _member(head, spec)
    name = _rule_name(head, spec)
    if name == "OptimiserChain":
        if not rest.strip():
            raise ValueError(f"optimizer spec {spec!r}: chain: needs at least one member, e.g. chain:clipnorm=1,adamw")
        return rule(name, opts=tuple(_member(m, spec) for m in _split(rest, spec)))
    if sep and not rest.strip():
        raise ValueError(f"optimizer spec {spec!r}: nothing after ':'; write fields as name=value")
    return rule(name, **_fields(name, rest, spec)) if sep else rule(name)


def _rule_name(text: str, spec: str) -> str:
    key = text.strip().lower()
    if key not in _BY_SPEC_NAME:
        allowed = ", ".join(sorted(_BY_SPEC_NAME))
        raise ValueError(f"optimizer spec {spec!r}: unknown rule {text.strip()!r}; allowed: {allowed}")
    return _BY_SPEC_NAME[key]


def _member(text: str, spec: str) -> Rule:
    text = text.strip()
    if "(" in text and text.endswith(")") and ("=" not in text or text.index("(") < text.index("=")):
        head, inner = text[: text.index("(")], text[text.index("(") + 1 : -1]
        name = _rule_name(head, spec)
        _no_chain(name, spec)
        return rule(name, **_fields(name, inner, spec))
    head, eq, value = text.partition("=")
    name = _rule_name(head, spec)
    _no_chain(name, spec)
    if not eq:
        return rule(name)
    first, kind, _ = _SPECS[name][0]
    return rule(name, **{first: _value(name, first, kind, value, spec)})


def _no_chain(name: str, spec: str) -> None:
    if name == "OptimiserChain":
        raise ValueError(f"optimizer spec {spec!r}: a chain member cannot be a chain")


def _fields(name: str, text: str, spec: str) -> dict[str, Any]:
    kinds = {f: k for f, k, _ in _SPECS[name]}
    out: dict[str, Any] = {}
    for part in _split(text, spec):
        field, eq, value = part.partition("=")
        field = field.strip()
        if not eq or not field:
            raise ValueError(f"optimizer spec {spec!r}: {part.strip()!r} is not name=value")
        if field not in kinds or kinds[field] == "rules":
            allowed = ", ".join(f for f, k in kinds.items() if k != "rules")
            raise ValueError(f"optimizer spec {spec!r}: {name} has no field {field!r}; fields: {allowed}")
        if field in out:
            raise ValueError(f"optimizer spec {spec!r}: {name}.{field} given twice")
        out[field] = _value(name, field, kinds[field], value, spec)
    return out


def _value(name: str, field: str, kind: str, text: str, spec: str) -> Any:
    text = text.strip()
    bad = f"optimizer spec {spec!r}: {name}.{field}={text!r} is not"
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{bad} true or false")
        return text.lower() == "true"
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{bad} a whole number") from None
    if kind == "pair":
        if not (text.startswith("(") and text.endswith(")")) or len(text[1:-1].split(",")) != 2:
            raise ValueError(f"{bad} a pair like (0.9,0.999)")
        return tuple(_float(v, bad) for v in text[1:-1].split(","))
    return _float(text, bad)


def _float(text: str, bad: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{bad} a number") from None


def _split(text: str, spec: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError(f"optimizer spec {spec!r}: unbalanced ')'")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"optimizer spec {spec!r}: unbalanced '('")
    parts.append(text[start:])
    if any(not p.strip() for p in parts):
        raise ValueError(f"optimizer spec {spec!r}: empty item between commas")
    return parts


# ----------------------------------------------------------------------------------------- JSON form
def to_dict(r: Rule) -> dict[str, Any]:
    """JSON-able form: ``{"rule": "Momentum", "eta": 0.01, "rho": 0.9}``; pairs become lists and a chain's
    ``opts`` a list of such dicts. :func:`from_dict` inverts it; ``julia/optimisers.jl`` reads and writes it."""
    out: dict[str, Any] = {"rule": r.name}
    for field, value in r.fields:
        if isinstance(value, tuple) and value and isinstance(value[0], Rule):
            out[field] = [to_dict(o) for o in value]
        elif isinstance(value, tuple):
            out[field] = list(value)
        else:
            out[field] = value
    return out


def from_dict(d: dict[str, Any]) -> Rule:
    """The :class:`Rule` of a :func:`to_dict` dict; missing fields take Optimisers.jl's defaults."""
    if not isinstance(d, dict) or "rule" not in d:
        raise ValueError(f"a rule dict needs a 'rule' key naming the Optimisers.jl rule, got {d!r}")
    name = d["rule"]
    fields = {k: v for k, v in d.items() if k != "rule"}
    if name == "OptimiserChain" and "opts" in fields:
        fields["opts"] = tuple(from_dict(o) for o in fields["opts"])
    return rule(name, **fields)


def to_julia(r: Rule) -> str:
    """Julia source of the :func:`to_dict` dict, as ``julia/optimisers.jl``'s ``optimisers_rule`` takes it:
    ``Dict{String,Any}("rule" => "Momentum", "eta" => 0.01, "rho" => 0.9)`` (evaluate it with juliacall's
    ``seval``; every value is a number, a bool, a rule name or a list of those, so the text is exact)."""
    return _julia_value(to_dict(r))


def _julia_value(v: Any) -> str:
    if isinstance(v, dict):
        return "Dict{String,Any}(" + ", ".join(f"{_julia_value(k)} => {_julia_value(x)}" for k, x in v.items()) + ")"
    if isinstance(v, list):
        return "Any[" + ", ".join(_julia_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("Inf" if v > 0 else "-Inf") if math.isinf(v) else repr(v)  # repr round-trips; Julia reads 1e-08
    if isinstance(v, str) and v.isidentifier():
        return f'"{v}"'
    raise ValueError(f"cannot write {v!r} as Julia source")  # pragma: no cover - to_dict makes none

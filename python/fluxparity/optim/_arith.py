"""The arithmetic of every Optimisers.jl v0.4.8 rule (``src/rules.jl``), written once over a tiny array
namespace so the NumPy reference (:mod:`._reference`) and the torch optimiser (:mod:`._torch`) run the same
operations in the same order.

For one parameter array ``x`` of element type T (float32 or float64) and its gradient ``dx`` (same shape):
``init(rule, x, xp) -> state`` and ``apply(rule, state, x, dx, xp) -> (state, update | None)``; the caller
then does ``x <- x - update`` (Optimisers' ``subtract!``), or nothing when the update is ``None``
(``AccumGrad`` between its steps). As in Optimisers.jl:

- every constant becomes a T scalar first (``T(o.eta)``; ``_eps(T, ϵ)`` is the same as ``T(ϵ)`` for
  float32/64), and ``beta^t`` is a running product in T, not a power;
- every operation is one IEEE operation rounded to T, in Julia's left-to-right order (``a * b * c`` is
  ``(a * b) * c``); Julia does not fuse them into FMAs and neither does NumPy or this code;
- ``sqrt`` is correctly rounded (Julia's, NumPy's; torch's CPU ``sqrt`` is not, so the torch namespace
  routes it through NumPy).

The one thing not reproduced exactly is ``ClipNorm``'s norm: Julia's ``LinearAlgebra.norm`` sums in an order
(BLAS ``nrm2`` for 32 or more elements) that is not reproduced here; :func:`norm` is the correctly rounded
norm of the array instead, so the two can differ in the last bit of the norm when clipping is active.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._rules import Rule


def norm(a: np.ndarray, p: float) -> float:
    """``norm(a, p)`` for p in 1, 2, Inf of a float32/float64 array, correctly rounded to a's dtype (float).

    Squares of float32 values are exact in float64; ``math.fsum`` is a correctly rounded sum."""
    a64 = np.abs(np.asarray(a, dtype=np.float64)).ravel()
    if p == math.inf:
        value = float(a64.max(initial=0.0))
    elif p == 1:
        value = math.fsum(a64)
    elif p == 2:
        squares = a64 * a64
        value = math.sqrt(math.fsum(squares)) if np.all(np.isfinite(squares)) else math.inf
    else:  # pragma: no cover - _rules refuses other p
        raise ValueError(f"ClipNorm p must be 1, 2 or Inf, got {p}")
    return float(np.asarray(value, dtype=a.dtype))


def _c(xp, x, *values):
    """T(v) for each value: a scalar of x's element type that the namespace's arrays combine with."""
    return tuple(xp.scalar(v, x) for v in values)


def init(rule: Rule, x, xp) -> Any:
    """Optimisers.jl's ``init(rule, x)``: the per-array state, zeros etc. like ``x``."""
    name = rule.name
    if name in ("Descent", "WeightDecay", "SignDecay", "ClipGrad", "ClipNorm"):
        return None
    if name in ("Momentum", "Nesterov", "Lion"):
        return xp.zeros_like(x)
    if name == "RMSProp":
        return (xp.zeros_like(x), xp.zeros_like(x) if rule["centred"] else None)
    if name == "Rprop":
        return (xp.zeros_like(x), xp.full_like(x, rule["eta"]))
    if name in ("Adam", "AdaMax", "NAdam", "AdamW", "AdaBelief"):
        return (xp.zeros_like(x), xp.zeros_like(x), _c(xp, x, *rule["beta"]))
    if name == "RAdam":
        return (xp.zeros_like(x), xp.zeros_like(x), _c(xp, x, *rule["beta"]), 1)
    if name == "AdaGrad":
        return xp.full_like(x, rule["epsilon"])  # onevalue(o.epsilon, x): the accumulator starts at ϵ
    if name == "AdaDelta":
        return (xp.zeros_like(x), xp.zeros_like(x))
    if name == "AMSGrad":
        return tuple(xp.full_like(x, rule["epsilon"]) for _ in range(3))  # all three start at ϵ
    if name == "OptimiserChain":
        return tuple(init(r, x, xp) for r in rule["opts"])
    if name == "AccumGrad":
        return (xp.zeros_like(x), 1)
    raise ValueError(f"no arithmetic for rule {name!r}")  # pragma: no cover - _rules knows every name


def apply(rule: Rule, state, x, dx, xp):
    """Optimisers.jl's ``apply!(rule, state, x, dx)``: ``(new state, update or None)``; ``x`` is untouched."""
    return _APPLY[rule.name](rule, state, x, dx, xp)


def _descent(r, s, x, dx, xp):
    (eta,) = _c(xp, x, r["eta"])
    return s, dx * eta


def _momentum(r, v, x, dx, xp):
    eta, rho = _c(xp, x, r["eta"], r["rho"])
    v = rho * v + eta * dx  # η lives inside the velocity
    return v, v


def _nesterov(r, v, x, dx, xp):
    eta, rho = _c(xp, x, r["eta"], r["rho"])
    new_dx = -(rho * rho) * v + ((1 + rho) * eta) * dx  # ρ^2 is ρ*ρ (literal_pow)
    return rho * v - eta * dx, new_dx


def _rmsprop(r, s, x, dx, xp):
    eta, rho, eps = _c(xp, x, r["eta"], r["rho"], r["epsilon"])
    quad, lin = s
    quad = rho * quad + (1 - rho) * (dx * dx)
    if lin is not None:
        lin = rho * lin + (1 - rho) * dx
        return (quad, lin), (dx * eta) / (xp.sqrt(quad - lin * lin) + eps)
    return (quad, lin), (dx * eta) / (xp.sqrt(quad) + eps)  # quad - abs2(false) == quad exactly


def _rprop(r, s, x, dx, xp):
    (l1, l2), (g1, g2) = _c(xp, x, *r["ell"]), _c(xp, x, *r["gamma"])
    g, eta = s
    prod = g * dx
    eta = xp.where(prod > 0, xp.minimum(eta * l2, g2), xp.where(prod < 0, xp.maximum(eta * l1, g1), eta))
    g = xp.where(prod < 0, xp.zeros_like(dx), dx)
    return (g, eta), eta * xp.sign(g)


def _adam(r, s, x, dx, xp):
    eta, b1, b2, eps = _c(xp, x, r["eta"], *r["beta"], r["epsilon"])
    m, v, (bt1, bt2) = s
    m = b1 * m + (1 - b1) * dx
    v = b2 * v + (1 - b2) * (dx * dx)
    return (m, v, (bt1 * b1, bt2 * b2)), ((m / (1 - bt1)) / (xp.sqrt(v / (1 - bt2)) + eps)) * eta


def _lion(r, s, x, dx, xp):
    eta, b1, b2 = _c(xp, x, r["eta"], *r["beta"])
    s = b2 * dx + (1 - b2) * s  # as written in v0.4.8 (β2 weighs the NEW gradient)
    return s, eta * xp.sign((b2 - b1) * dx + b1 * s)


def _radam(r, s, x, dx, xp):
    eta, b1, b2, eps = _c(xp, x, r["eta"], *r["beta"], r["epsilon"])
    rho_inf = 2 / (1 - b2) - 1
    m, v, (bt1, bt2), t = s
    m = b1 * m + (1 - b1) * dx
    v = b2 * v + (1 - b2) * (dx * dx)
    rho = rho_inf - ((2 * t) * bt2) / (1 - bt2)
    if rho > 4:
        rr = xp.sqrt((((rho - 4) * (rho - 2)) * rho_inf) / (((rho_inf - 4) * (rho_inf - 2)) * rho))
        upd = (((m / (1 - bt1)) / (xp.sqrt(v / (1 - bt2)) + eps)) * eta) * rr
    else:
        upd = (m / (1 - bt1)) * eta
    return (m, v, (bt1 * b1, bt2 * b2), t + 1), upd


def _adamax(r, s, x, dx, xp):
    eta, b1, b2, eps = _c(xp, x, r["eta"], *r["beta"], r["epsilon"])
    m, u, (bt1, bt2) = s
    m = b1 * m + (1 - b1) * dx
    u = xp.maximum(b2 * u, xp.abs(dx))
    return (m, u, (bt1 * b1, bt2 * b2)), ((eta / (1 - bt1)) * m) / (u + eps)


def _adagrad(r, acc, x, dx, xp):
    eta, eps = _c(xp, x, r["eta"], r["epsilon"])
    acc = acc + dx * dx
    return acc, (dx * eta) / (xp.sqrt(acc) + eps)


def _adadelta(r, s, x, dx, xp):
    rho, eps = _c(xp, x, r["rho"], r["epsilon"])
    acc, dacc = s
    acc = rho * acc + (1 - rho) * (dx * dx)
    upd = (dx * xp.sqrt(dacc + eps)) / xp.sqrt(acc + eps)  # uses the OLD Δacc
    dacc = rho * dacc + (1 - rho) * (upd * upd)
    return (acc, dacc), upd


def _amsgrad(r, s, x, dx, xp):
    eta, b1, b2, eps = _c(xp, x, r["eta"], *r["beta"], r["epsilon"])
    m, v, vhat = s
    m = b1 * m + (1 - b1) * dx
    v = b2 * v + (1 - b2) * (dx * dx)
    vhat = xp.maximum(vhat, v)
    return (m, v, vhat), (eta * m) / (xp.sqrt(vhat) + eps)  # no bias correction


def _nadam(r, s, x, dx, xp):
    eta, b1, b2, eps = _c(xp, x, r["eta"], *r["beta"], r["epsilon"])
    m, v, (bt1, bt2) = s
    m = b1 * m + (1 - b1) * dx
    v = b2 * v + (1 - b2) * (dx * dx)
    num = (b1 * m) / (1 - b1 * bt1) + ((1 - b1) * dx) / (1 - bt1)
    return (m, v, (bt1 * b1, bt2 * b2)), (num / (xp.sqrt((v * b2) / (1 - bt2)) + eps)) * eta


def _adamw(r, s, x, dx, xp):
    eta, b1, b2, eps, lam = _c(xp, x, r["eta"], *r["beta"], r["epsilon"], r["lambda"])
    m, v, (bt1, bt2) = s
    m = b1 * m + (1 - b1) * dx
    v = b2 * v + (1 - b2) * (dx * dx)
    upd = (m / (1 - bt1)) / (xp.sqrt(v / (1 - bt2)) + eps)
    upd = eta * (upd + lam * x) if r["couple"] else eta * upd + lam * x
    return (m, v, (bt1 * b1, bt2 * b2)), upd


def _adabelief(r, s, x, dx, xp):
    eta, b1, b2, eps = _c(xp, x, r["eta"], *r["beta"], r["epsilon"])
    m, st, (bt1, bt2) = s
    m = b1 * m + (1 - b1) * dx
    diff = dx - m
    st = (b2 * st + (1 - b2) * (diff * diff)) + eps
    return (m, st, (bt1 * b1, bt2 * b2)), ((eta * m) / (1 - bt1)) / (xp.sqrt(st / (1 - bt2)) + eps)


def _weightdecay(r, s, x, dx, xp):
    (lam,) = _c(xp, x, r["lambda"])
    return s, dx + lam * x


def _signdecay(r, s, x, dx, xp):
    (lam,) = _c(xp, x, r["lambda"])
    return s, dx + lam * xp.sign(x)


def _clipgrad(r, s, x, dx, xp):
    (delta,) = _c(xp, x, r["delta"])
    return s, xp.clip(dx, -delta, delta)


def _clipnorm(r, s, x, dx, xp):
    nrm = norm(xp.to_numpy(dx), r["p"])
    if r["throw"] and not math.isfinite(nrm):
        raise FloatingPointError(f"gradient has {r['p']}-norm {nrm}, for an array of shape {tuple(dx.shape)}")
    # λ = T(min(o.omega / nrm, 1)): Float64 omega over a T norm divides in Float64 (ω/0 is Inf in Julia)
    ratio = math.inf if nrm == 0 else r["omega"] / nrm
    (lam,) = _c(xp, x, min(ratio, 1.0))
    return s, dx * lam


def _chain(r, states, x, dx, xp):
    new_states = []
    for opt, st in zip(r["opts"], states):
        if dx is None:  # an AccumGrad between its steps: the rest of the chain keeps its state
            new_states.append(st)
            continue
        st, dx = apply(opt, st, x, dx, xp)
        new_states.append(st)
    return tuple(new_states), dx


def _accumgrad(r, s, x, dx, xp):
    acc, counter = s
    (n,) = _c(xp, x, r["n"])  # dx / o.n: Julia promotes the Int n to T
    acc = dx / n if counter == 1 else acc + dx / n
    if counter == r["n"]:
        return (acc, 1), acc
    return (acc, counter + 1), None


_APPLY = {
    "Descent": _descent, "Momentum": _momentum, "Nesterov": _nesterov, "RMSProp": _rmsprop, "Rprop": _rprop,
    "Adam": _adam, "Lion": _lion, "RAdam": _radam, "AdaMax": _adamax, "AdaGrad": _adagrad,
    "AdaDelta": _adadelta, "AMSGrad": _amsgrad, "NAdam": _nadam, "AdamW": _adamw, "AdaBelief": _adabelief,
    "WeightDecay": _weightdecay, "SignDecay": _signdecay, "ClipGrad": _clipgrad, "ClipNorm": _clipnorm,
    "OptimiserChain": _chain, "AccumGrad": _accumgrad,
}


class NumpyOps:
    """The array namespace for NumPy arrays (float32/float64); scalars are NumPy scalars of the array's type."""

    @staticmethod
    def scalar(v, like: np.ndarray):
        return like.dtype.type(v)

    zeros_like = staticmethod(np.zeros_like)
    sqrt = staticmethod(np.sqrt)
    sign = staticmethod(np.sign)
    abs = staticmethod(np.abs)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    clip = staticmethod(np.clip)
    where = staticmethod(np.where)

    @staticmethod
    def full_like(x: np.ndarray, v):
        return np.full_like(x, x.dtype.type(v))

    @staticmethod
    def to_numpy(a):
        return np.asarray(a)

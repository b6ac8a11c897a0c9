"""For an Optimisers.jl rule, the stock ``torch.optim`` configuration computing the same update (with the
hyperparameter translation), or why none exists. docs/optimisers.md is the table of these.

A mapping is a list of gradient transforms run before ``optimizer.step()`` (``torch.nn.utils`` clipping, for
leading ``ClipGrad``/``ClipNorm`` in a chain) and one ``torch.optim`` optimizer. ``exact`` says whether the
update is algebraically the same as Optimisers.jl's for every step (the arithmetic still differs: torch
computes in another order, see docs/optimisers.md for the measured size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ._rules import Rule

# momentum_decay large enough that torch.optim.NAdam's mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * psi)) is beta1
# exactly from step 1 on: 0.96 ** 1e5 underflows to 0.0 in double precision.
NADAM_MOMENTUM_DECAY = 1e5


class NoTorchEquivalent(ValueError):
    """No ``torch.optim`` configuration computes this rule's update; the message says why."""


@dataclass(frozen=True)
class TorchMapping:
    """``recipe``: the torch code, as a user would write it; ``exact``: algebraically equal to the rule;
    ``note``: what differs (always set when not exact)."""

    recipe: str
    exact: bool
    note: str
    make_optimizer: Callable[[list], torch.optim.Optimizer]
    transforms: tuple[Callable[[list], None], ...] = ()

    def bind(self, params) -> "BoundMapping":
        params = list(params)
        return BoundMapping(self, params, self.make_optimizer(params))


@dataclass
class BoundMapping:
    mapping: TorchMapping
    params: list
    optimizer: torch.optim.Optimizer

    def zero_grad(self) -> None:
        """``optimizer.zero_grad()``: what a training loop calls before each backward pass."""
        self.optimizer.zero_grad()

    def step(self) -> None:
        """The gradient transforms, then ``optimizer.step()``; gradients are read from ``p.grad``."""
        for transform in self.mapping.transforms:
            transform(self.params)
        self.optimizer.step()


def _plain(recipe: str, cls, exact: bool = True, note: str = "", **kwargs) -> TorchMapping:
    return TorchMapping(recipe, exact, note, lambda ps: cls(ps, **kwargs))


def _kw(**kwargs) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


# What each core rule becomes: (torch class, kwargs, exact, note). WeightDecay in front of one of these (in a
# chain) becomes torch's L2 ``weight_decay`` (grad + λ·p before the rule), except for AdamW, Rprop.
def _core(r: Rule) -> tuple[type, dict, bool, str]:
    n, o = r.name, torch.optim
    if n == "Descent":
        return o.SGD, dict(lr=r["eta"]), True, ""
    if n == "Momentum":
        return o.SGD, dict(lr=r["eta"], momentum=r["rho"]), True, (
            "equal while η is constant: Optimisers keeps η inside the velocity (v = ρv + ηg), torch multiplies "
            "the whole buffer by the current lr, so a changed η (schedule, adjust!) gives different updates")
    if n == "Nesterov":
        return o.SGD, dict(lr=r["eta"], momentum=r["rho"], nesterov=True), True, (
            "equal while η is constant (velocity holds η, as for Momentum); torch needs nesterov=True and "
            "dampening=0")
    if n == "RMSProp":
        return o.RMSprop, dict(lr=r["eta"], alpha=r["rho"], eps=r["epsilon"], centered=r["centred"]), True, ""
    if n == "Adam":
        return o.Adam, dict(lr=r["eta"], betas=r["beta"], eps=r["epsilon"]), True, ""
    if n == "AdamW":
        if r["couple"]:
            return o.AdamW, dict(lr=r["eta"], betas=r["beta"], eps=r["epsilon"], weight_decay=r["lambda"]), True, ""
        if r["eta"] == 0 and r["lambda"] != 0:
            raise NoTorchEquivalent("AdamW(couple=false) with eta=0: torch.optim.AdamW scales decay by lr")
        wd = r["lambda"] / r["eta"] if r["lambda"] else 0.0
        return o.AdamW, dict(lr=r["eta"], betas=r["beta"], eps=r["epsilon"], weight_decay=wd), True, (
            "couple=false decays by λ·x, not η·λ·x: torch's weight_decay is λ/η")
    if n == "RAdam":
        return o.RAdam, dict(lr=r["eta"], betas=r["beta"], eps=r["epsilon"]), False, (
            "torch rectifies when ρ_t > 5, Optimisers when ρ_t > 4 (step 5 differs with β2=0.999), and torch "
            "adds eps to sqrt(v) before the bias correction, Optimisers after")
    if n == "AdaMax":
        return o.Adamax, dict(lr=r["eta"], betas=r["beta"], eps=r["epsilon"]), False, (
            "torch puts eps inside the max (u = max(β2·u, |g| + eps)), Optimisers adds it to u afterwards")
    if n == "NAdam":
        b2 = r["beta"][1]
        return o.NAdam, dict(lr=r["eta"] / math.sqrt(b2), betas=r["beta"], eps=r["epsilon"] / math.sqrt(b2),
                             momentum_decay=NADAM_MOMENTUM_DECAY), True, (
            "Optimisers' denominator is sqrt(β2·v/(1-β2^t)) + ϵ and its momentum weight is β1 every step: "
            "lr=η/√β2, eps=ϵ/√β2 and a huge momentum_decay make torch's the same; torch keeps mu_product in a "
            "float32 tensor, so its float64 update is only float32-accurate")
    if n == "AdaGrad":
        return o.Adagrad, dict(lr=r["eta"], eps=r["epsilon"], initial_accumulator_value=r["epsilon"]), True, (
            "the accumulator starts at ϵ: initial_accumulator_value=ϵ (torch's default is 0)")
    if n == "AdaDelta":
        return o.Adadelta, dict(lr=1.0, rho=r["rho"], eps=r["epsilon"]), True, (
            "lr=1.0 (Optimisers has no η); torch's default eps is 1e-6, Optimisers' 1e-8")
    if n == "Rprop":
        return o.Rprop, dict(lr=r["eta"], etas=r["ell"], step_sizes=r["gamma"]), True, ""
    if n == "WeightDecay":
        return o.SGD, dict(lr=1.0, weight_decay=r["lambda"]), True, ""
    if n in ("ClipGrad", "ClipNorm"):
        raise NoTorchEquivalent(f"{n} after another rule of a chain: torch clips gradients only before the step")
    raise NoTorchEquivalent(_NONE.get(n, f"{n} has no torch.optim equivalent"))


_NONE = {
    "AMSGrad": "torch.optim.Adam(amsgrad=True) bias-corrects m and v and starts them at 0; Optimisers' AMSGrad "
               "has no bias correction and starts m, v, v̂ at ϵ",
    "Lion": "torch.optim (2.13) has no Lion",
    "AdaBelief": "torch.optim (2.13) has no AdaBelief",
    "SignDecay": "torch.optim has no L1 (sign) decay",
    "AccumGrad": "torch.optim has no gradient accumulation (it is a training-loop pattern); Optimisers also "
                 "divides each gradient by n before summing, which rounds differently from dividing the sum",
}
_L2 = (torch.optim.SGD, torch.optim.RMSprop, torch.optim.Adam, torch.optim.RAdam, torch.optim.Adamax,
       torch.optim.NAdam, torch.optim.Adagrad, torch.optim.Adadelta)


def _clip_value(delta: float):
    def transform(params: list) -> None:
        torch.nn.utils.clip_grad_value_(params, delta)

    return transform


def _clip_norm_each(omega: float, p: float):
    def transform(params: list) -> None:
        for q in params:
            if q.grad is not None:
                torch.nn.utils.clip_grad_norm_([q], omega, norm_type=p)

    return transform


def _transform(r: Rule) -> tuple[Callable, str, bool, str]:
    if r.name == "ClipGrad":
        return _clip_value(r["delta"]), f"torch.nn.utils.clip_grad_value_(params, {r['delta']!r})", True, ""
    if r["throw"] is False:
        raise NoTorchEquivalent("ClipNorm(throw=false): clip_grad_norm_ has error_if_nonfinite but a NaN norm "
                                "poisons the update differently")
    recipe = f"for p in params: torch.nn.utils.clip_grad_norm_([p], {r['omega']!r}, norm_type={r['p']!r})"
    return _clip_norm_each(r["omega"], r["p"]), recipe, False, (
        "per array (Optimisers scales each array by its own norm; clip_grad_norm_(params) would use one norm "
        "over all), and torch's factor is ω/(norm + 1e-6), Optimisers' ω/norm")


def torch_mapping(r: Rule) -> TorchMapping:
    """The ``torch.optim`` configuration for rule ``r``; raises :class:`NoTorchEquivalent` (saying why)."""
    if r.name != "OptimiserChain":
        if r.name in ("ClipGrad", "ClipNorm"):
            return _chain_mapping((r,))
        cls, kwargs, exact, note = _core(r)
        return _plain(f"torch.optim.{cls.__name__}(params, {_kw(**kwargs)})", cls, exact, note, **kwargs)
    return _chain_mapping(r["opts"])


def _chain_mapping(opts: tuple[Rule, ...]) -> TorchMapping:
    opts = list(opts)
    transforms, recipes, exact, notes = [], [], True, []
    while opts and opts[0].name in ("ClipGrad", "ClipNorm"):
        fn, recipe, ok, note = _transform(opts.pop(0))
        transforms.append(fn)
        recipes.append(recipe)
        exact, notes = exact and ok, notes + ([note] if note else [])
    wd = 0.0
    if len(opts) == 2 and opts[0].name == "WeightDecay":
        wd = opts.pop(0)["lambda"]
    if len(opts) > 1:
        names = ", ".join(o.name for o in opts)
        raise NoTorchEquivalent(f"a chain maps to torch only as [ClipGrad/ClipNorm...] [WeightDecay] rule; "
                                f"here {names} follow the clipping")
    cls, kwargs, ok, note = _core(opts[0]) if opts else (torch.optim.SGD, dict(lr=1.0), True, "")
    if wd:
        if cls not in _L2:
            raise NoTorchEquivalent(f"WeightDecay before {opts[0].name}: torch.optim.{cls.__name__} has no "
                                    "L2 weight_decay that adds λ·p to the gradient")
        if kwargs.get("weight_decay"):
            raise NoTorchEquivalent(f"WeightDecay before {opts[0].name}: both set weight_decay")
        kwargs = kwargs | {"weight_decay": wd}
    exact, notes = exact and ok, notes + ([note] if note else [])
    recipes.append(f"torch.optim.{cls.__name__}(params, {_kw(**kwargs)})")
    return TorchMapping("; ".join(recipes), exact, "; ".join(notes), lambda ps: cls(ps, **kwargs),
                        tuple(transforms))

"""Recognise the classic porting mistakes that a single array cannot show, by recomputing the alternative.

A golden holds the input, every step's output, the gradients at the initial weights and every training step;
when a check FAILS (never on a passing port: these run only then), each recogniser recomputes what a port
with one classic mistake would have given — with the NumPy reference (:mod:`fluxparity.models`,
:mod:`fluxparity.optim`) or by calling the module again — and names the mistake when the port's numbers fit
it far better than the golden's. Every sentence says "likely": a fit is a strong hint, not a proof.

Layouts (stated once): the golden's arrays are Flux's (``x (in, len, batch)``, outputs ``(out, len, batch)``,
a ``last`` readout ``(out, batch)``); parameters are flat-named Flux arrays.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np
import torch

from .. import models
from ..models._params import GRUParams, GRUv3Params, RNNParams
from ..optim import ReferenceOptimiser, Rule, rule as make_rule
from ._golden import Golden

DENSE_ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")
RNN_ACTIVATIONS = ("identity", "tanh", "relu")
# "Fits": within this of the alternative (relative to its size) — far above float32 rounding of a forward
# pass (~1e-6 relative) and far below the O(1) differences a structural mistake makes.
_FIT = dict(rtol=1e-3, atol=1e-6)


def _fits(actual: np.ndarray, alternative: np.ndarray) -> bool:
    return actual.shape == alternative.shape and bool(np.allclose(actual, alternative, **_FIT))


def _readout(golden: Golden, every_step: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The alternative's every-step output ``(out, len, batch)`` read as the port's output was read."""
    return every_step[:, -1, :] if actual.ndim == 2 else every_step


# ------------------------------------------------------------------------------------------------ output
def _other_chains(chain: models.Chain):
    """(what differs, a Chain computing it) for every one-layer change of activation or GRU flavour."""
    for i, layer in enumerate(chain.layers):
        n = i + 1
        if isinstance(layer, models.DenseParams):
            for act in DENSE_ACTIVATIONS:
                if act != layer.activation:
                    what = (f"an activation missing on Dense layer {n}: the golden applies {layer.activation}, the "
                            f"port does not" if act == "identity" else
                            f"an extra activation on Dense layer {n}: the port applies {act} where the golden has "
                            f"none" if layer.activation == "identity" else
                            f"Dense layer {n} applies {act} where the golden applies {layer.activation}")
                    yield what, _replace_layer(chain, i, dataclasses.replace(layer, activation=act))
        elif isinstance(layer, RNNParams):
            for act in RNN_ACTIVATIONS:
                if act != layer.activation:
                    hint = (" (nn.RNN takes only tanh or relu: an identity RNN needs a one-bias module of your own, "
                            "e.g. h = x W_ihᵀ + h W_hhᵀ + b)" if layer.activation == "identity" else "")
                    what = (f"layer {n} is an RNN with {act} where the golden's RNN has {layer.activation}"
                            f"{' — nn.RNN(nonlinearity=' + repr(act) + ')' if act != 'identity' else ''}{hint}")
                    yield what, _replace_layer(chain, i, dataclasses.replace(layer, activation=act))
        elif type(layer) is GRUParams:
            h = layer.hidden_size
            v3 = GRUv3Params(layer.Wi, layer.Wh, layer.b, np.array(layer.Wh[2 * h:]))
            yield (f"a GRUv3 cell on a GRU golden (layer {n}): the candidate uses W_hn·(r ⊙ h) where Flux's GRU (and "
                   "nn.GRU) computes r ⊙ (W_hn·h)"), _replace_layer(chain, i, v3)
        elif isinstance(layer, GRUv3Params):
            h = layer.hidden_size
            wh = np.concatenate([layer.Wh[:2 * h], layer.Wh_htilde])
            yield (f"a GRU cell (nn.GRU's r ⊙ (W_hn·h)) on a GRUv3 golden (layer {n}): Flux's GRUv3 computes "
                   "W_h̃·(r ⊙ h) with its own Wh_h̃; nn.GRU has no GRUv3 mode"), \
                _replace_layer(chain, i, GRUParams(layer.Wi, wh, layer.b))


def _replace_layer(chain: models.Chain, i: int, layer) -> models.Chain:
    layers = list(chain.layers)
    layers[i] = layer
    return models.Chain(tuple(layers), chain.readout)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def explain_output(golden: Golden, actual: np.ndarray) -> Optional[str]:
    """Why the port's output (Flux layout: ``(out, len, batch)`` or a last readout ``(out, batch)``) differs."""
    out = golden.output  # (out, len, batch), what the golden computed at every step
    length, batch = out.shape[1], out.shape[2]
    if actual.ndim == 2 and actual.shape == out[:, 0, :].shape:  # items 5 and 8's read-out cousins
        for t in range(length - 1):
            if _fits(actual, out[:, t, :]):
                return (f"the output read at step {t + 1} of {length}, not the last: the port's output is the "
                        f"golden's step {t + 1}; read out[-1] (time-first) or out[:, -1] (batch-first)")
    if actual.ndim == 2 and actual.shape == (out.shape[0], length) and length == batch:
        if _fits(actual, out[:, :, -1]):
            return ("every step of the LAST sequence of the batch, not the last step of every sequence: out[-1] on a "
                    "batch-first output; read out[:, -1]")
    if golden.loss == "logitcrossentropy" and _fits(actual, _softmax(_readout(golden, out, actual))):
        return ("softmax applied before a logit loss: the port's output is softmax(the golden's logits); "
                "logitcrossentropy / F.cross_entropy take raw scores — drop the softmax from forward")
    x = golden.x
    if length == batch or actual.ndim == 3:  # item 8: the whole computation on time and batch swapped
        swapped = models.outputs(golden.chain, np.ascontiguousarray(x.transpose(0, 2, 1)))  # (out, batch, len)
        for candidate in (swapped, swapped.transpose(0, 2, 1)):
            if _fits(actual, _readout(golden, candidate, actual)):
                return ("time and batch axes swapped on the way in: the port ran along the batch axis (its output is "
                        "the golden's model on x with len and batch exchanged); torch's default is (len, batch, in), "
                        "(batch, len, in) needs batch_first=True — on the module and in the check")
    for what, chain in _other_chains(golden.chain):
        if _fits(actual, _readout(golden, models.outputs(chain, x), actual)):
            return what
    return None


def explain_loss(golden: Golden, actual_output: np.ndarray, actual_loss: float) -> Optional[str]:
    """The output matches but the loss does not (the user's ``loss_fn``): softmax before a logit loss?"""
    if golden.loss != "logitcrossentropy":
        return None
    y_hat = _readout(golden, golden.output, actual_output)
    value, _ = models.loss_value_and_grad("logitcrossentropy", _softmax(y_hat), golden.y.reshape(y_hat.shape))
    if np.isclose(actual_loss, value, **_FIT):
        return ("softmax applied before a logit loss: the port's loss is logitcrossentropy(softmax(output)); "
                "F.cross_entropy takes raw scores — drop the softmax")
    return None


# ------------------------------------------------------------------------------------------------ calls
def _random_modules(module: torch.nn.Module) -> list[str]:
    found = []
    for name, m in module.named_modules():
        p = getattr(m, "p", None) if isinstance(m, torch.nn.modules.dropout._DropoutNd) else getattr(m, "dropout", 0)
        if m.training and isinstance(p, (int, float)) and p > 0:
            found.append(f"{name or '(module)'} ({type(m).__name__}, p={p})")
    return found


def explain_calls(call: Callable[[], torch.Tensor], module: torch.nn.Module) -> Optional[str]:
    """Items 6 and 7: calls on the same input that disagree. ``call()`` runs the module on the golden's input.

    Two calls under the same random seed that differ: a state carried from call to call; equal under one
    seed but different under two: randomness (dropout left in train mode)."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        first = call().detach().clone()
        torch.manual_seed(0)
        second = call().detach().clone()
        torch.manual_seed(1)
        third = call().detach().clone()
    if first.shape != second.shape or not torch.equal(first, second):
        return ("a hidden state carried between calls: two calls on the same input, under the same random seed, give "
                "different outputs (an earlier call changed the next one's start); start every forward from a zero "
                "state (h0=None) and do not keep h on the module")
    if first.shape != third.shape or not torch.equal(first, third):
        named = _random_modules(module)
        return ("output differs between two calls on the same input: randomness in forward — dropout left in train "
                "mode?" + (f" ({', '.join(named)}); call module.eval() or set p=0" if named else
                           " call module.eval() or remove the random operation"))
    return None


# ------------------------------------------------------------------------------------------------ training
def _value_and_grad(golden: Golden, chain: models.Chain, flat: dict) -> dict:
    value, grads = models.value_and_grad(models.with_flat_params(chain, flat), golden.x,
                                         models.chain_loss(golden.loss, golden.y, chain.readout))
    return models.flat_params(grads)


Transform = Callable[[dict], dict]


def _trajectory(golden: Golden, rule: Rule, transform: Optional[Transform] = None) -> list[dict]:
    """The parameters after each of the golden's K steps under ``rule`` (gradients through ``transform``)."""
    chain = golden.chain
    opt = ReferenceOptimiser(rule, chain.arrays())
    after = []
    for _ in range(golden.steps):
        grads = _value_and_grad(golden, chain, opt.params)
        opt.step(transform(grads) if transform else grads)
        after.append(dict(opt.params))
    return after


def _distance(initial: dict, port: list[dict], other: list[dict]) -> float:
    """max over steps and arrays of ‖moved_port − moved_other‖ / ‖moved_other‖ (moves from the start)."""
    worst = 0.0
    for a, b in zip(port, other):
        moves = {n: (np.asarray(a[n], np.float64) - x0, np.asarray(b[n], np.float64) - x0) for n, x0 in initial.items()}
        # an array that (nearly) does not move, e.g. GRUv3's unused block, is judged against the whole move
        floor = max(1e-3 * float(np.sqrt(sum(np.sum(mb ** 2) for _, mb in moves.values()))), 1e-300)
        for ma, mb in moves.values():
            worst = max(worst, float(np.linalg.norm(ma - mb) / max(float(np.linalg.norm(mb)), floor)))
    return worst


def _global_clip(omega: float, plus: float) -> Transform:
    def clip(grads: dict) -> dict:  # torch.nn.utils.clip_grad_norm_(all parameters, omega): one norm, + 1e-6
        total = float(np.sqrt(sum(float(np.sum(np.asarray(g, np.float64) ** 2)) for g in grads.values())))
        scale = min(omega / (total + plus), 1.0)
        return {n: (g * g.dtype.type(scale)) for n, g in grads.items()}
    return clip


def _per_array_clip_torch(omega: float) -> Transform:
    def clip(grads: dict) -> dict:  # clip_grad_norm_ called per parameter: ClipNorm's algebra, + 1e-6
        out = {}
        for n, g in grads.items():
            norm = float(np.linalg.norm(np.asarray(g, np.float64)))
            out[n] = g * g.dtype.type(min(omega / (norm + 1e-6), 1.0))
        return out
    return clip


def _elementwise(delta: float) -> Transform:
    return lambda grads: {n: np.clip(g, -delta, delta) for n, g in grads.items()}


def _optimiser_alternatives(golden: Golden, port: list[dict]):
    """(what differs, rule, gradient transform) for each classic optimiser difference (item 11, 14)."""
    r = golden.rule
    members = list(r["opts"]) if r.name == "OptimiserChain" else [r]
    core = members[-1]
    clip = members[0] if len(members) == 2 and members[0].name in ("ClipNorm", "ClipGrad") else None
    if len(members) > 2 or (len(members) == 2 and clip is None):
        return
    if core.name == "Adam":
        yield ("torch.optim.AdamW's default weight_decay=0.01: the golden's rule is Adam (no decay); use "
               "torch.optim.Adam or AdamW(..., weight_decay=0)",
               make_rule("AdamW", **{"eta": core["eta"], "beta": core["beta"], "epsilon": core["epsilon"],
                                     "lambda": 0.01}), None)
    if core.name == "AdamW" and core["lambda"] != 0.01:
        yield (f"weight_decay=0.01 (torch.optim.AdamW's default) where the golden's AdamW has lambda={core['lambda']}",
               core.replace(**{"lambda": 0.01}), None)
    fields = dict(core.fields)
    if "epsilon" in fields:
        for eps in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10, 1e-12):
            if not np.isclose(eps, fields["epsilon"], rtol=1e-6, atol=0.0):  # np.isclose's atol 1e-8 hid 1e-10, 1e-12
                yield (f"an epsilon of {eps:g} where the golden's {core.name} has epsilon={fields['epsilon']:g} "
                       f"(torch's defaults: Adam/AdamW 1e-8, RMSprop 1e-8, Adagrad 1e-10)",
                       core.replace(epsilon=eps), None)
    if "eta" in fields and fields["eta"] > 0 and port:
        x0 = golden.chain.arrays()
        moved_e = np.concatenate([(np.asarray(golden.after_each[n][0]) if golden.after_each is not None
                                   else np.asarray(golden.after_last[n])).ravel() - x0[n].ravel() for n in x0])
        moved_p = np.concatenate([(np.asarray(port[0 if golden.after_each is not None else -1][n]).ravel()
                                   - x0[n].ravel()) for n in x0])
        denom = float(moved_e @ moved_e)
        factor = float(moved_p @ moved_e) / denom if denom > 0 else 1.0
        if np.isfinite(factor) and factor > 0 and not np.isclose(factor, 1.0, rtol=1e-3):
            f = float(f"{factor:.3g}")
            new_core = core.replace(eta=fields["eta"] * f)
            yield (f"a learning rate off by a factor {f:g}: the port's steps fit eta={fields['eta'] * f:g} where the "
                   f"golden's {core.name} has eta={fields['eta']:g}",
                   new_core if clip is None else make_rule("OptimiserChain", opts=(clip, new_core)), None)
    if clip is not None and clip.name == "ClipNorm":
        omega = clip["omega"]
        yield (f"global clipping (torch.nn.utils.clip_grad_norm_ over all parameters at once, max_norm={omega:g}) "
               f"where Flux's ClipNorm({omega:g}) clips each array by its own norm: call clip_grad_norm_ per "
               "parameter, or use fluxparity.optim.FluxOptimiser", core, _global_clip(omega, 1e-6))
        yield (f"elementwise clipping (clip_grad_value_ / ClipGrad({omega:g})) where Flux's ClipNorm({omega:g}) "
               "scales each array by its norm", core, _elementwise(omega))
        yield ("not a porting mistake of the algebra: torch's clip_grad_norm_ divides by (norm + 1e-6) where "
               "Flux's ClipNorm divides by the norm, so each clipped gradient is smaller by a relative 1e-6/‖g‖; "
               "float32 tolerances accept it, float64's do not — pass rtol= (docs/testing.md) or use "
               "fluxparity.optim.FluxOptimiser", core, _per_array_clip_torch(omega))
    if clip is not None and clip.name == "ClipGrad":
        delta = clip["delta"]
        yield (f"norm clipping (clip_grad_norm_ per parameter, max_norm={delta:g}) where Flux's ClipGrad({delta:g}) "
               "clamps each element: use torch.nn.utils.clip_grad_value_", core, _per_array_clip_torch(delta))
        yield (f"global norm clipping (clip_grad_norm_ over all parameters, max_norm={delta:g}) where Flux's "
               f"ClipGrad({delta:g}) clamps each element: use torch.nn.utils.clip_grad_value_", core,
               _global_clip(delta, 1e-6))


def explain_training(golden: Golden, port: list[dict]) -> Optional[str]:
    """Item 11: the port's parameters after each step (``port[k]`` after step k+1, or only the last when the
    golden has no per-step record) fit a classic optimiser difference far better than the golden's steps."""
    x0 = {n: np.asarray(a, np.float64) for n, a in golden.chain.arrays().items()}
    if golden.after_each is not None:
        wanted = [{n: a[k] for n, a in golden.after_each.items()} for k in range(golden.steps)]
    else:
        wanted, port = [golden.after_last], port[-1:]
    to_golden = _distance(x0, port, wanted)
    best = None
    for what, rule, transform in _optimiser_alternatives(golden, port):
        try:
            other = _trajectory(golden, rule, transform)
        except (ValueError, FloatingPointError):
            continue
        other = other if golden.after_each is not None else other[-1:]
        d = _distance(x0, port, other)
        if d < 0.1 * to_golden and (best is None or d < best[0]):
            best = (d, what)
    return None if best is None else best[1]

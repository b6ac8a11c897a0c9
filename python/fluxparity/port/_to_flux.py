"""``fluxparity port --to flux`` (PyTorch -> Flux): the Chain a user's torch module computes, its weights file,
a golden recorded from the module, and the Julia source that builds the Flux model (:mod:`._flux_source`).

1. The module's layers in the order ``forward`` calls them (forward hooks on a dry run of a copy), each a
   ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``num_layers`` k = k layers), ``nn.Linear``, or this package's
   ``OneBiasRNN``/``GRUv3``, give the Chain's structure; any other module holding parameters (Conv, Embedding,
   attention, ...) is refused by name.
2. The ONE matcher, ``fluxparity.testing._mapping.slots_for(chain, module, mapping)``, says which parameter
   holds which Flux parameter; each Flux bias is ``bias_ih + bias_hh`` (a GRU's nonzero ``b_hn`` is refused:
   it has no Flux counterpart).
3. The Dense activations and the readout are what the module computes: the one combination whose reference
   forward equals the module's output in float64 (to 1e-12, relative to outputs above 1) on six probe batches
   of several scales; none, or more than one, is refused.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Optional

import numpy as np

from .. import models
from ._files import check_targets, write_files
from ._names import PortError, chain_expression, snake_case

# Largest |reference - module| / max(1, |module output|) (float64, over every output element) accepted as "the
# same function": the measured differences between torch modules and the reference are <= 1e-14
# (docs/porting.md, "Measured on this machine").
SAME_FUNCTION_ATOL = 1e-12
PROBE_LEN, PROBE_BATCH = 6, 32
PROBE_SCALES = (1.0, 0.25, 4.0, -4.0, 16.0, -16.0)  # one probe batch (its own seed) per scale
GOLDEN_RULE, GOLDEN_LOSS, GOLDEN_STEPS = "adam:eta=0.01", "mse", 3
SUPPORTED = "nn.RNN, nn.LSTM, nn.GRU (unidirectional, with biases), nn.Linear, fluxparity's OneBiasRNN and GRUv3"


def _kind(m) -> Optional[str]:
    from torch import nn

    from ..models._torch import GRUv3, OneBiasRNN

    for cls, kind in ((GRUv3, "gruv3"), (OneBiasRNN, "rnn"), (nn.LSTM, "lstm"), (nn.GRU, "gru"),
                      (nn.RNN, "rnn"), (nn.Linear, "dense")):
        if isinstance(m, cls):
            return kind
    return None


def _refuse_unsupported(module) -> None:
    for name, m in module.named_modules():
        if _kind(m) is None and any(True for _ in m.parameters(recurse=False)):
            raise PortError(f"{type(m).__module__}.{type(m).__name__} ({name or 'the module'}) is not supported: a "
                            f"Flux Chain here holds {SUPPORTED}")
        if _kind(m) is not None and _kind(m) != "dense" and hasattr(m, "bidirectional"):
            if m.bidirectional or getattr(m, "proj_size", 0) or not m.bias:
                raise PortError(f"{name}: a bidirectional, projected or bias-free {type(m).__name__} is not "
                                f"supported: a Flux Chain here holds {SUPPORTED}")


def _input_layout(module) -> tuple[bool, int]:
    """(batch_first, input size) from the module's recurrent layers (registration order: any will do)."""
    recurrent = [m for _, m in module.named_modules() if _kind(m) not in (None, "dense")]
    if not recurrent:
        raise PortError(f"{type(module).__name__} has no recurrent layer: a Chain starts with one ({SUPPORTED})")
    flags = {bool(getattr(m, "batch_first", False)) for m in recurrent}
    if len(flags) > 1:
        raise PortError("the module mixes batch_first=True and False layers; a Chain has one layout")
    first = recurrent[0]
    size = first.input_size if hasattr(first, "input_size") else first.weight_ih_l0.shape[1]
    return flags.pop(), int(size)


def _called_layers(module, x) -> list:
    """The supported layers in the order ``forward`` calls them (a dry run of a copy with forward hooks)."""
    import torch

    dry = copy.deepcopy(module)
    order, handles = [], []
    for _, m in dry.named_modules():
        if _kind(m) is not None:
            handles.append(m.register_forward_hook(lambda mod, args, out: order.append(mod)))
    try:
        with torch.no_grad():
            dry(x)
    except Exception as exc:  # noqa: BLE001 - the user's forward failed on the probe: say so, as bad input
        raise PortError(f"the module's forward failed on a probe batch {tuple(x.shape)}: {type(exc).__name__}: "
                        f"{exc}") from None
    finally:
        for h in handles:
            h.remove()
    index = {id(m): i for i, (_, m) in enumerate(dry.named_modules())}
    originals = [m for _, m in module.named_modules()]
    seen, layers = set(), []
    for m in order:
        if id(m) not in seen:
            seen.add(id(m))
            layers.append(originals[index[id(m)]])
    return layers


def _skeleton(layers: list, activations: tuple, readout: str, dtype) -> models.Chain:
    """A Chain of the layers' kinds and sizes (zero arrays), Dense activations from ``activations``."""
    cells, dense = [], []
    n_in = None
    for m in layers:
        kind = _kind(m)
        if kind == "dense":
            dense.append((m.out_features, activations[len(dense)], m.bias is not None))
            n_in = n_in if n_in is not None else m.in_features
            continue
        if dense:
            raise PortError(f"{type(m).__name__} is called after an nn.Linear: a Chain's recurrent layers come "
                            "first")
        n_in = n_in if n_in is not None else int(m.weight_ih_l0.shape[1])
        activation = getattr(m, "nonlinearity", "tanh") if kind == "rnn" else "tanh"
        for _ in range(getattr(m, "num_layers", 1)):
            cells.append((kind, int(m.hidden_size), activation))
    try:
        chain = models.init_chain(n_in, cells, dense, seed=0, dtype=dtype, readout=readout)
    except (ValueError, TypeError) as exc:
        raise PortError(f"the module's layers do not form a Chain: {exc}") from None
    return chain.zeros_like()


def _filled(chain: models.Chain, module, mapping: Optional[dict]) -> models.Chain:
    """``chain`` holding the module's weights, matched by the one matcher; ``b = bias_ih + bias_hh``."""
    from ..testing._mapping import MappingError, slots_for

    try:
        slots = slots_for(chain, module, mapping)
    except MappingError as exc:
        raise PortError(f"the module cannot be matched to {chain_expression(chain)}: {str(exc).splitlines()[0]}"
                        ) from None
    params = dict(module.named_parameters())
    dtype = chain.dtype
    flat = {}
    for slot in slots:
        value = params[slot.torch_name].detach().cpu().double().numpy().copy()
        if slot.hidden_bias is not None and slot.hidden_bias in params:
            hidden = params[slot.hidden_bias].detach().cpu().double().numpy()
            if slot.kind == "gru" and np.any(hidden[2 * slot.hidden:] != 0):
                raise PortError(f"{slot.hidden_bias}: nn.GRU's b_hn (its third block) is nonzero; it sits inside "
                                "r ⊙ (W_hn h + b_hn), which Flux's GRU does not have (recurrent.jl:623-626): no "
                                "Flux model computes this module (train it with bias_hh frozen at 0)")
            value = value + hidden
        flat[slot.flux_name] = value.astype(dtype)
    missing = set(chain.arrays()) - set(flat)
    if missing:
        raise PortError(f"the matcher left {', '.join(sorted(missing))} without a torch parameter")
    return chain.replace_arrays(flat)


def _probe(in_size: int, batch_first: bool, seed: int = 0):
    import torch

    x = np.random.default_rng(seed).standard_normal((in_size, PROBE_LEN, PROBE_BATCH))  # Flux (in, len, batch)
    return x, torch.from_numpy(np.ascontiguousarray(x.transpose((2, 1, 0) if batch_first else (1, 2, 0))))


def _module_output(module, x_torch, batch_first: bool) -> np.ndarray:
    """The module's output in Flux layout: ``(out, batch)`` or ``(out, len, batch)``."""
    import torch

    with torch.no_grad():
        y = module(x_torch)
    y = y[0] if isinstance(y, (tuple, list)) else y
    a = y.detach().cpu().double().numpy()
    if a.ndim == 2:
        return a.T
    if a.ndim == 3:
        return a.transpose(2, 1, 0) if batch_first else a.transpose(2, 0, 1)
    raise PortError(f"the module returns shape {tuple(a.shape)}: a Chain returns (batch, out) or every step")


def chain_of_module(module, mapping: Optional[dict] = None) -> tuple[models.Chain, bool]:
    """The Chain ``module`` computes (the module's dtype) and whether it takes batch-first input; PortError (one
    line) when there is none, or when the probes cannot tell two Dense activations apart (e.g. relu from
    identity when every input a relu sees is positive)."""
    _refuse_unsupported(module)
    batch_first, in_size = _input_layout(module)
    layers = _called_layers(module, _probe(in_size, batch_first)[1].to(next(module.parameters()).dtype))
    module64 = copy.deepcopy(module).double()
    # Probes of several scales and signs, so that relu, identity, tanh and sigmoid heads see inputs where
    # they differ; a combination must match on every probe.
    probes = [(x * scale, xt * scale) for seed, scale in enumerate(PROBE_SCALES)
              for x, xt in [_probe(in_size, batch_first, seed)]]
    actual = [_module_output(module64, xt, batch_first) for _, xt in probes]
    readout = "last" if actual[0].ndim == 2 else "all"
    n_dense = sum(1 for m in layers if _kind(m) == "dense")
    matching, closest = [], (np.inf, None)
    for activations in itertools.product(models.DENSE_ACTIVATIONS, repeat=n_dense):
        chain64 = _filled(_skeleton(layers, activations, readout, np.float64), module64, mapping)
        diff = 0.0
        for (x, _), out in zip(probes, actual):
            expected = models.readout(models.outputs(chain64, x, fast=False), readout)
            if expected.shape != out.shape:
                raise PortError(f"the module's output has shape {out.shape} (Flux layout), its layers give "
                                f"{expected.shape}: it computes something more than a Chain of its layers")
            # Scaled by the outputs' size: an identity RNN on the x16 probe can give outputs far above 1.
            diff = max(diff, float(np.max(np.abs(expected - out))) / max(1.0, float(np.max(np.abs(out)))))
        closest = min(closest, (diff, activations), key=lambda c: c[0])
        if diff <= SAME_FUNCTION_ATOL:
            matching.append(activations)
    if len(matching) == 1:
        return _filled(_skeleton(layers, matching[0], readout, dtype_of(module)), module, mapping), batch_first
    if matching:
        first_dense = len(layers) - n_dense + sum(getattr(m, "num_layers", 1) - 1 for m in layers) + 1
        where = [i for i in range(n_dense) if len({m[i] for m in matching}) > 1]
        names = " or ".join(sorted({m[where[0]] for m in matching}))
        raise PortError(f"layers[{first_dense + where[0]}] (a Dense): {names} give the same outputs on every probe "
                        "batch (its inputs never reach where they differ, e.g. a relu that never sees a negative "
                        "number), so the port cannot tell which the module applies")
    expression = chain_expression(_skeleton(layers, closest[1], readout, np.float64))
    read = "the last step" if readout == "last" else "every step"
    raise PortError(f"no Chain of the module's layers ({expression} with Dense activations "
                    f"identity/relu/tanh/sigmoid, read at {read}) computes its output (closest: {closest[0]:.1e} "
                    "apart); supported between layers: only those activations, no dropout or normalisation")


def dtype_of(module) -> np.dtype:
    return np.dtype(str(next(module.parameters()).dtype).replace("torch.", ""))


def _flux_output(y, batch_first: bool) -> np.ndarray:
    """A torch output ``(len, batch, out)`` / ``(batch, len, out)`` / ``(batch, out)`` in Flux layout."""
    a = y.detach().cpu().numpy()
    if a.ndim == 2:
        return a.T.copy()
    return (a.transpose(2, 1, 0) if batch_first else a.transpose(2, 0, 1)).copy()


def record_from_module(module, chain: models.Chain, batch_first: bool, mapping: Optional[dict] = None, *,
                       seed: int = 0):
    """A :class:`fluxparity.testing.Golden` computed by PyTorch from ``module`` (a copy: the module is left
    alone), with ``chain`` (the module's Chain, :func:`chain_of_module`) as its weights: output, loss (mse),
    every gradient and 3 training steps of Optimisers.jl's Adam(0.01) as ``fluxparity.optim.FluxOptimiser``
    computes it, with each ``bias_hh`` folded into ``bias_ih`` and frozen (Flux has one bias)."""
    import torch

    import fluxparity
    from ..models._torch import torch_loss
    from ..optim import FluxOptimiser, parse_spec
    from ..testing import Golden
    from ..testing._mapping import slots_for

    work = copy.deepcopy(module)
    slots = slots_for(chain, work, mapping)
    params = dict(work.named_parameters())
    with torch.no_grad():
        for slot in slots:
            if slot.hidden_bias is not None and slot.hidden_bias in params:
                params[slot.torch_name] += params[slot.hidden_bias]
                params[slot.hidden_bias].zero_()
                params[slot.hidden_bias].requires_grad_(False)
    dtype = next(iter(params.values())).dtype
    layers = _called_layers(work, _probe(chain.input_size, batch_first)[1].to(dtype))
    captured = []
    hook = layers[-1].register_forward_hook(lambda mod, args, out: captured.append(out))
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((chain.input_size, PROBE_LEN + 1, PROBE_BATCH + 1)).astype(chain.dtype)
    y_shape = ((chain.output_size, x.shape[2]) if chain.readout == "last"
               else (chain.output_size, x.shape[1], x.shape[2]))
    y = rng.standard_normal(y_shape).astype(chain.dtype)
    x_torch = torch.from_numpy(np.ascontiguousarray(x.transpose((2, 1, 0) if batch_first else (1, 2, 0))))
    y_torch = torch.from_numpy(np.ascontiguousarray(
        y.T if y.ndim == 2 else y.transpose((2, 1, 0) if batch_first else (1, 2, 0))))

    def loss_of_forward():
        captured.clear()
        out = work(x_torch)
        return torch_loss(GOLDEN_LOSS, out[0] if isinstance(out, (tuple, list)) else out, y_torch)

    try:
        work.zero_grad(set_to_none=True)
        loss = loss_of_forward()
        loss.backward()
        last = captured[-1][0] if isinstance(captured[-1], (tuple, list)) else captured[-1]
        if isinstance(chain.layers[-1], models.DenseParams):
            act = chain.layers[-1].activation
            last = {"identity": lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[act](last)
        output = _flux_output(last, batch_first)
        grads = {s.flux_name: params[s.torch_name].grad.detach().cpu().numpy().copy() for s in slots}
        rule = parse_spec(GOLDEN_RULE)
        opt = FluxOptimiser([p for p in work.parameters() if p.requires_grad], rule)
        losses = []
        for _ in range(GOLDEN_STEPS):
            opt.zero_grad(set_to_none=True)
            step_loss = loss_of_forward()
            losses.append(float(step_loss.detach()))
            step_loss.backward()
            opt.step()
    finally:
        hook.remove()
    after = {s.flux_name: params[s.torch_name].detach().cpu().numpy().copy() for s in slots}
    producer = {"name": "PyTorch", "torch": torch.__version__, "fluxparity": fluxparity.__version__,
                "recorded by": "fluxparity port --to flux (fluxparity.optim.FluxOptimiser for the steps)"}
    return Golden("", chain, x, y, GOLDEN_LOSS, float(loss.detach()), output, grads, rule,
                  np.array(losses, dtype=np.float64), after, None, producer)


def _npz_bytes(entries: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    return buffer.getvalue()


def _load_module(spec: str, state_dict: Optional[Path]):
    import torch
    from torch import nn

    from ..testing._cli import _UserCodeFailed, _Usage, _factory, _user_call

    try:  # imported as `fluxparity check` does: from the current folder; sys.exit is a failure
        target = _factory(spec)
        module = target if isinstance(target, nn.Module) or not callable(target) else _user_call(
            spec, "calling it", target)
    except (_Usage, _UserCodeFailed) as exc:
        raise PortError(str(exc)) from None
    if not isinstance(module, nn.Module):
        raise PortError(f"--module {spec!r} gave a {type(module).__name__}, not a torch.nn.Module")
    if state_dict is not None:
        if not state_dict.is_file():
            raise PortError(f"--state-dict {str(state_dict)!r}: no such file")
        try:
            sd = torch.load(state_dict, map_location="cpu", weights_only=True)  # never unpickles code
        except Exception as exc:  # noqa: BLE001 - any reading failure is the file's: one line
            raise PortError(f"--state-dict {str(state_dict)!r}: not a state dict torch.load(weights_only=True) "
                            f"reads ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
        if not isinstance(sd, dict):
            raise PortError(f"--state-dict {str(state_dict)!r} holds a {type(sd).__name__}, not a state dict")
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise PortError(f"--state-dict {str(state_dict)!r} does not fit --module {spec!r}: "
                            f"{' '.join(str(exc).split())[:300]}") from None
    return module


def _read_mapping(path: Optional[Path]) -> Optional[dict]:
    if path is None:
        return None
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PortError(f"--mapping {str(path)!r}: not a readable JSON file ({exc})") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise PortError(f"--mapping {str(path)!r}: expected a JSON object {{\"flux name\": \"torch name\", ...}}")
    return mapping


def port_to_flux(args, name: str) -> tuple[list[Path], str]:
    """Run ``fluxparity port --to flux ...``; returns (written paths, summary)."""
    from ..models._npz import file_entries
    from ..testing._golden import golden_entries
    from ._flux_source import julia_source

    snake = snake_case(name)
    names = [f"{snake}.jl", f"{snake}.npz", f"{snake}_golden.npz"]
    check_targets(args.out, names, force=args.force)  # before any work: an existing file is refused at once
    module = _load_module(args.module, args.state_dict)
    mapping = _read_mapping(args.mapping)
    chain, batch_first = chain_of_module(module, mapping)
    golden = record_from_module(module, chain, batch_first, mapping)
    files = {
        names[0]: julia_source(chain, name, module_spec=args.module),
        names[1]: _npz_bytes(file_entries(chain)),
        names[2]: _npz_bytes(golden_entries(golden)),
    }
    written = write_files(args.out, files, force=args.force)
    return written, f"{name}: the Flux model {chain_expression(chain)} of {args.module}"

"""``fluxparity port MODEL`` (Flux -> PyTorch): what MODEL is, then the files of :mod:`._torch_source`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .. import models
from ..optim import Rule, parse_spec
from ._files import write_files
from ._names import PortError, chain_expression
from ._torch_source import torch_port

DEFAULT_RULE = "adam"  # Optimisers.jl's Adam() defaults: η = 0.001, β = (0.9, 0.999), ϵ = 1e-8


@dataclass(frozen=True)
class FluxModel:
    """A model to port: the Chain, and, when MODEL was a golden file, its rule, loss and path."""

    chain: models.Chain
    rule: Optional[Rule] = None
    loss: Optional[str] = None
    golden: Optional[str] = None


def read_model(text: str, *, dtype: Optional[str], seed: Optional[int], readout: Optional[str] = None) -> FluxModel:
    """MODEL: an existing ``.npz`` file (a golden's or a weights file's Chain) or a Flux expression (its
    weights drawn by Flux's rule from ``seed``, read at ``readout``, default ``last``)."""
    path = Path(text)
    if path.suffix == ".npz" or path.is_file():
        for option, value in (("--seed", seed), ("--readout", readout)):
            if value is not None:
                raise PortError(f"{option} does not apply to a file MODEL (the file holds the model); leave it out")
        return _read_file(path)
    return _parse_expression(text, dtype=dtype or "float32", seed=0 if seed is None else seed,
                             readout=readout or "last")


def _read_file(path: Path) -> FluxModel:
    from .._npzio import NpzError, npz_headers
    from ..testing import load_golden

    if not path.is_file():
        raise PortError(f"MODEL {str(path)!r}: no such file")
    try:
        if "golden.format" in npz_headers(path):
            golden = load_golden(path)
            return FluxModel(golden.chain, golden.rule, golden.loss, str(path.resolve()))
        return FluxModel(models.load_npz(path))
    except NpzError as exc:
        raise PortError(f"MODEL {exc}") from None


def _parse_expression(text: str, *, dtype: str, seed: int, readout: str) -> FluxModel:
    try:
        spec = models.parse_flux(text)  # the one parser (compare --model's); it never evaluates anything
    except ValueError as exc:
        raise PortError(f"MODEL {text[:60]!r} is neither a .npz file nor a Flux model this package holds: {exc}"
                        ) from None
    return FluxModel(spec.init(seed, np.dtype(dtype), readout))


def _rule(model: FluxModel, spec: Optional[str]) -> Rule:
    if spec is None:
        return model.rule if model.rule is not None else parse_spec(DEFAULT_RULE)
    try:
        rule = parse_spec(spec)
    except ValueError as exc:
        raise PortError(f"--rule {spec!r}: {exc}") from None
    if model.rule is not None and rule != model.rule:
        raise PortError(f"--rule {spec!r} differs from the golden's rule; leave --rule out (the training step "
                        "follows the golden)")
    return rule


def _loss(model: FluxModel, loss: Optional[str]) -> str:
    if loss is None:
        return model.loss or "mse"
    if loss not in models.LOSSES:
        raise PortError(f"--loss {loss!r} is not one of {', '.join(models.LOSSES)}")
    if model.loss is not None and loss != model.loss:
        raise PortError(f"--loss {loss!r} differs from the golden's {model.loss!r}; leave --loss out")
    return loss


def port_to_torch(args, name: str) -> tuple[list[Path], str]:
    """Run ``fluxparity port MODEL ...`` (arguments parsed by ``_cli``); returns (written paths, summary)."""
    if args.model is None:
        raise PortError("MODEL is missing: a weights or golden .npz file, or a Flux expression like "
                        "\"Chain(LSTM(3 => 16), Dense(16 => 2))\"")
    model = read_model(args.model, dtype=args.dtype, seed=args.seed, readout=args.readout)
    dtype = args.dtype or np.dtype(model.chain.dtype).name
    port = torch_port(model.chain, name, batch_first=args.batch_first, dtype=dtype, rule=_rule(model, args.rule),
                      loss=_loss(model, args.loss), golden=model.golden)
    written = write_files(args.out, port.files, force=args.force)
    return written, f"{name}: the PyTorch port of {chain_expression(model.chain)}"

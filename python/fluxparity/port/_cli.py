"""``fluxparity port``: write the PyTorch port of a Flux model, or the Flux model of a PyTorch module.

``fluxparity port MODEL --out DIR [--name NAME] [--batch-first] [--dtype float32|float64] [--rule SPEC]
[--loss LOSS] [--force]``: MODEL is a weights or golden file (``.npz``; its model description, and a golden's
rule and loss) or a Flux expression such as ``"Chain(LSTM(3 => 16), Dense(16 => 2, relu))"``.

``fluxparity port --to flux --module PKG.MOD:FACTORY [--state-dict FILE.pt] [--mapping FILE] --out DIR
[--name NAME] [--force]``: the Flux ``Chain`` of the user's torch module (:mod:`._flux_source`).

Exit 0 (written), 2 (bad input: one line naming the bad value and what is allowed; nothing written).
``cli.py`` adds the parser with :func:`add_parser`.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE = 0, 2


from ._names import PortError as _Usage


def add_parser(sub) -> None:
    """Add ``port`` to the ``fluxparity`` subparsers; it sets ``handler``."""
    p = sub.add_parser("port", help="write the PyTorch port of a Flux model (or, with --to flux, the reverse)")
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help='a weights or golden file (.npz), or a Flux expression like "Chain(LSTM(3 => 16), '
                        'Dense(16 => 2))" (not with --to flux)')
    p.add_argument("--to", choices=("torch", "flux"), default="torch",
                   help="torch (default): Flux model -> PyTorch module; flux: --module's torch module -> Flux")
    p.add_argument("--out", required=True, type=Path, help="the folder to write into (created if missing)")
    p.add_argument("--name", default=None, help="the model's name, a Python identifier (default FluxPort, "
                   "with --to flux TorchPort); files are named after it in snake_case")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    t = p.add_argument_group("--to torch")
    t.add_argument("--batch-first", action="store_true", help="the port takes (batch, len, in) (default (len, "
                   "batch, in))")
    t.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="the loader's default dtype (default: the file's; float32 for an expression)")
    t.add_argument("--rule", default=None, help="Optimisers.jl rule spec for the training step (default: a "
                   "golden's rule, else adam, Optimisers.jl's Adam())")
    t.add_argument("--loss", default=None, help="mse, mae, logitcrossentropy or abs_sum (default: a golden's "
                   "loss, else mse)")
    t.add_argument("--seed", type=int, default=None, help="weights of a Flux expression's model (default 0)")
    t.add_argument("--readout", choices=("last", "all"), default=None,
                   help="how a Flux expression's model is read: last step (default, model(x)[:, end, :]) or all")
    f = p.add_argument_group("--to flux")
    f.add_argument("--module", default=None, metavar="PKG.MOD:FACTORY",
                   help="a callable returning the nn.Module to port (or an nn.Module), importable from here")
    f.add_argument("--state-dict", type=Path, default=None,
                   help="a .pt/.pth state dict to load into it (read with torch.load(weights_only=True))")
    f.add_argument("--mapping", type=Path, default=None,
                   help="a JSON file {Flux flat name: torch parameter name} when automatic matching cannot")
    p.set_defaults(handler=run)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _refuse_options(args, names: tuple, direction: str) -> None:
    for name in names:
        value = getattr(args, name.replace("-", "_"))
        if value not in (None, False):
            raise _Usage(f"--{name} does not apply to --to {direction}; leave it out")


def run(args) -> int:
    from ._names import check_julia_name, check_name

    try:
        if args.to == "torch":
            _refuse_options(args, ("module", "state-dict", "mapping"), "torch")
            name = check_name(args.name if args.name is not None else "FluxPort")
            from ._to_torch import port_to_torch

            written, summary = port_to_torch(args, name)
        else:
            if args.model is not None:
                raise _Usage(f"MODEL {args.model!r} does not apply to --to flux (the model is --module's)")
            _refuse_options(args, ("batch-first", "dtype", "rule", "loss", "seed", "readout"), "flux")
            if args.module is None:
                raise _Usage("--to flux needs --module PKG.MOD:FACTORY (the torch module to port)")
            name = check_julia_name(check_name(args.name if args.name is not None else "TorchPort"))
            from ._to_flux import port_to_flux

            written, summary = port_to_flux(args, name)
    except _Usage as exc:
        _say(f"fluxparity port: error: {' '.join(str(exc).split())}")
        return EXIT_USAGE
    print(summary)
    for path in written:
        print(f"  wrote {path}")
    return EXIT_OK

"""``fluxparity check`` and ``fluxparity record``: the parity assertions and the reference golden writer on the
command line (``cli.py`` adds these subcommands and calls :func:`run`).

``fluxparity check GOLDEN --module pkg.mod:factory [--batch-first] [--check-weights] [--out DIR]``: loads the
golden, calls ``factory()`` (or takes the ``nn.Module`` the name refers to), runs the forward, gradient and
training checks, writes ``DIR/parity.json`` and ``DIR/parity.md`` (atomically) and exits 0 (every check
passed), 1 (a check failed) or 2 (bad usage: a bad golden, an unimportable factory, a non-module).

``fluxparity record OUT --layers lstm:8[,gru:4] [--dense 2[:relu][:nobias],...] ...``: writes a golden computed by the
fluxparity NumPy reference (and says so): the same Chain, input and targets Flux would be given; to record
from Flux itself run ``julia/golden.jl`` (docs/testing.md).
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Usage(Exception):
    pass


def add_parsers(sub) -> None:
    """Add ``check`` and ``record`` to the ``fluxparity`` subparsers; each sets ``handler``."""
    c = sub.add_parser("check", help="check a PyTorch module against a golden file (forward, gradients, training)")
    c.add_argument("golden", type=Path, help="the golden file (.npz, format fluxparity-golden/1)")
    c.add_argument("--module", required=True, metavar="PKG.MOD:FACTORY",
                   help="a callable returning the nn.Module to check (or an nn.Module), importable from here")
    c.add_argument("--batch-first", action="store_true", help="the module takes (batch, len, in)")
    c.add_argument("--check-weights", action="store_true",
                   help="first compare the module's own weights with the golden's (catches conversion mistakes)")
    c.add_argument("--out", type=Path, default=Path("fluxparity-check"),
                   help="folder for parity.json and parity.md (default fluxparity-check)")
    c.set_defaults(handler=run_check)

    r = sub.add_parser("record", help="write a golden file computed by the fluxparity NumPy reference")
    r.add_argument("out", type=Path, help="the golden file to write (.npz)")
    r.add_argument("--layers", required=True, metavar="KIND:HIDDEN[:ACT],...",
                   help="recurrent layers, e.g. lstm:8 or gru:4,rnn:3:relu (kinds rnn, lstm, gru, gruv3)")
    r.add_argument("--dense", default="", metavar="OUT[:ACT][:nobias],...",
                   help="Dense layers after them, e.g. 2 or 8:relu,2; ':nobias' is Flux's bias = false (e.g. 2:nobias, "
                        "8:relu:nobias)")
    r.add_argument("--input", type=int, default=3, help="input features (default 3)")
    r.add_argument("--length", type=int, default=5, help="sequence length (default 5)")
    r.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    r.add_argument("--readout", choices=("last", "all"), default="last", help="default last")
    r.add_argument("--loss", default="mse", help="mse (default), mae, logitcrossentropy or abs_sum")
    r.add_argument("--rule", default="adam:eta=0.01", help="optimiser rule spec (default adam:eta=0.01)")
    r.add_argument("--steps", type=int, default=3, help="training steps K (default 3)")
    r.add_argument("--every-step", action="store_true", help="keep the parameters after every step")
    r.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="default float64")
    r.add_argument("--seed", type=int, default=0, help="weights, input and targets (default 0)")
    r.set_defaults(handler=run_record)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _factory(spec: str):
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise _Usage(f"--module {spec!r} is not PKG.MOD:FACTORY (e.g. myport.models:build)")
    try:
        mod = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module's: say which
        raise _Usage(f"--module {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})") from None
    if not hasattr(mod, attr):
        raise _Usage(f"--module {spec!r}: {module_name!r} has no attribute {attr!r}")
    return getattr(mod, attr)


def run_check(args) -> int:
    from torch import nn

    from .._npzio import NpzError
    from . import _record
    from ._assert import assert_forward_parity, assert_gradient_parity, assert_training_parity
    from ._golden import load_golden
    from ._mismatch import ParityError

    try:
        golden = load_golden(args.golden)
        target = _factory(args.module)
        if isinstance(target, nn.Module) or not callable(target):
            module = target
        else:
            try:
                module = target()
            except Exception as exc:  # noqa: BLE001 - the user's factory failed: say so, as bad usage
                raise _Usage(f"--module {args.module!r}: calling it raised {type(exc).__name__}: {exc}") from None
        if not isinstance(module, nn.Module):
            raise _Usage(f"--module {args.module!r} gave a {type(module).__name__}, not a torch.nn.Module")
    except (NpzError, _Usage) as exc:
        _say(f"fluxparity check: error: {exc}")
        return EXIT_USAGE
    recorder = _record.start()
    recorder.current_test = f"fluxparity check {args.golden} --module {args.module}"
    options = dict(batch_first=args.batch_first)
    failed = []
    try:
        for i, check in enumerate((assert_forward_parity, assert_gradient_parity, assert_training_parity)):
            try:
                check(golden, module, check_weights=args.check_weights and i == 0, **options)
            except ParityError as exc:
                failed.append(exc)
        paths = recorder.write(args.out)
    finally:
        _record.stop()
    print(f"golden {args.golden}: produced by {golden.producer_name}")
    for record in recorder.records:
        print(f"  {record.assertion}: {'PASS' if record.passed else 'FAIL'}")
    for exc in failed:
        print("\n" + "\n".join(str(exc).splitlines()[1:]))
    print(f"Wrote {paths[0]}, {paths[1]}")
    return EXIT_FAILED if failed else EXIT_OK


def _layers(text: str, what: str, parse) -> list:
    try:
        return [parse(item.split(":")) for item in text.split(",") if item]
    except (ValueError, IndexError):
        like = "lstm:8 or rnn:3:relu" if what == "--layers" else "2, 8:relu, 2:nobias or 8:relu:nobias"
        raise _Usage(f"{what} {text!r}: expected items like {like}") from None


def _dense_item(parts: list) -> tuple:
    """``OUT[:ACT][:nobias]`` split at ':' -> ``(out, activation, bias)`` for ``init_chain``."""
    if len(parts) > 3:
        raise ValueError(parts)
    out, rest = int(parts[0]), parts[1:]
    bias = not (rest and rest[-1] == "nobias")
    rest = rest[:-1] if not bias else rest
    if len(rest) > 1 or "nobias" in rest:
        raise ValueError(parts)
    return (out, rest[0] if rest else "identity", bias)


def run_record(args) -> int:
    from .. import models
    from ._golden import REFERENCE_PRODUCER, record_golden

    try:
        for name in ("input", "length", "batch", "steps"):
            if getattr(args, name) < 1:
                raise _Usage(f"--{name} {getattr(args, name)}: must be at least 1")
        if args.loss not in models.LOSSES:
            raise _Usage(f"--loss {args.loss!r} is not one of {', '.join(models.LOSSES)}")
        recurrent = _layers(args.layers, "--layers", lambda p: (p[0], int(p[1]), *p[2:3]))
        dense = _layers(args.dense, "--dense", _dense_item)
        if not args.out.parent.is_dir():
            raise _Usage(f"{args.out}: the folder {str(args.out.parent)!r} does not exist")
        dtype = np.dtype(args.dtype)
        try:
            chain = models.init_chain(args.input, recurrent, dense, seed=args.seed, dtype=dtype, readout=args.readout)
        except (ValueError, TypeError) as exc:
            raise _Usage(f"--layers/--dense: {exc}") from None
        rng = np.random.default_rng(args.seed + 1)
        x = rng.standard_normal((args.input, args.length, args.batch)).astype(dtype)
        shape = (chain.output_size, args.batch) if args.readout == "last" else (chain.output_size, args.length, args.batch)
        if args.loss == "logitcrossentropy":
            p = rng.random(shape)
            y = (p / p.sum(axis=0, keepdims=True)).astype(dtype)
        else:
            y = rng.standard_normal(shape).astype(dtype)
        try:
            started = time.perf_counter()
            record_golden(args.out, chain, x, y, loss=args.loss, rule=args.rule, steps=args.steps,
                          every_step=args.every_step)
        except ValueError as exc:
            raise _Usage(str(exc)) from None
    except _Usage as exc:
        _say(f"fluxparity record: error: {exc}")
        return EXIT_USAGE
    print(f"Wrote {args.out}: recorded by the {REFERENCE_PRODUCER} (not by Flux; to record from Flux run "
          f"julia/golden.jl, docs/testing.md) in {time.perf_counter() - started:.2f} s")
    return EXIT_OK

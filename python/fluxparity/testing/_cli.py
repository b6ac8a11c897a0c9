"""``fluxparity check`` and ``fluxparity record``: the parity assertions and the reference golden writer on the
command line (``cli.py`` adds these subcommands and calls :func:`run`).

``fluxparity check GOLDEN --module pkg.mod:factory [--batch-first] [--check-weights] [--mapping FILE]
[--optimizer SPEC] [--rtol R] [--atol A] [--steps N] [--out DIR]``: loads the golden, calls ``factory()`` (or
takes the ``nn.Module`` the name refers to), runs the forward, gradient and training checks, writes
``DIR/parity.json`` and ``DIR/parity.md`` (atomically) and exits 0 (every check passed), 1 (a check failed;
a module that cannot hold the golden's parameters is one failed check, printed once) or 2 (bad usage: a bad
golden, --module spec, mapping file or option, before anything is written; or the user's code failed — an
import, the factory, the forward pass raised or called ``sys.exit``, a module on the meta device, ``--timeout``
ran out — said in one line and in the report files, which are written). ``PKG.MOD`` is imported with the
current folder first on ``sys.path``, as ``python -m`` would.

``fluxparity record OUT --layers lstm:8[,gru:4] [--dense 2[:relu][:nobias],...] ...``: writes a golden computed by the
fluxparity NumPy reference (and says so): the same Chain, input and targets Flux would be given; to record
from Flux itself run ``julia/golden.jl`` (docs/testing.md).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..backends.base import ModuleError

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
    c.add_argument("--mapping", type=Path, metavar="FILE",
                   help="golden (Flux) name -> module parameter name, a JSON object or TOML table (a failed automatic "
                        "match prints one to edit)")
    c.add_argument("--optimizer", metavar="SPEC",
                   help="train with the stock torch.optim port of this Optimisers.jl rule (e.g. adamw:lambda=0.01) "
                        "instead of the golden's rule in Flux's arithmetic")
    c.add_argument("--rtol", type=float, help="relative tolerance (default per golden dtype, docs/parity.md)")
    c.add_argument("--atol", type=float, help="absolute tolerance (default per golden dtype, docs/parity.md)")
    c.add_argument("--steps", type=int, help="compare the first N training steps (default: all the golden has)")
    c.add_argument("--out", type=Path, default=Path("fluxparity-check"),
                   help="folder for parity.json and parity.md (default fluxparity-check)")
    c.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="give up (exit 2, the report says so) if importing, building and checking the module "
                        "takes longer (default: no limit)")
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


def _seconds(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _say(text: str) -> None:
    try:
        print(_one_line(text, 1000), file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a full or closed stderr must not change the exit code
        pass


def _one_line(text: str, limit: int = 300) -> str:
    """One line of at most about ``limit`` characters: the start and the end (where it says what is wrong)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[: limit // 2]} … {text[-(limit // 2):]}"


class _UserCodeFailed(ModuleError):
    """The user's code (import, factory, forward) failed: exit 2, one line, the report written with the reason.
    A :class:`fluxparity.backends.ModuleError`: ``compare --torch-module`` loads the module with these helpers,
    and its torch backend passes the message on unchanged."""


# ``option``: the command-line option that named the module (``--module``; ``compare`` has ``--torch-module``).
def _split_spec(spec: str, option: str = "--module") -> tuple[str, str]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise _Usage(f"{option} {_one_line(repr(spec), 120)} is not PKG.MOD:FACTORY (e.g. myport.models:build)")
    return module_name, attr


def _failure(spec: str, what: str, exc: BaseException, option: str = "--module") -> _UserCodeFailed:
    if isinstance(exc, SystemExit):
        return _UserCodeFailed(f"{option} {spec!r}: {what} called sys.exit({exc.code!r})")
    return _UserCodeFailed(f"{option} {spec!r}: {what} raised {type(exc).__name__}: {_one_line(exc)}")


def _user_call(spec: str, what: str, call, *args, option: str = "--module"):
    """``call(*args)``, the user's code: any exception, or ``sys.exit``, becomes :class:`_UserCodeFailed`."""
    try:
        return call(*args)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code: whatever it raised, say what
        raise _failure(spec, what, exc, option) from None


def _import_here(module_name: str):
    """Import ``module_name`` with the current folder first on ``sys.path`` (as ``python -m`` has it; the
    console script's ``sys.path`` starts at its own folder instead)."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(module_name)


def _factory(spec: str, option: str = "--module"):
    module_name, attr = _split_spec(spec, option)
    mod = _user_call(spec, f"importing {module_name!r}", _import_here, module_name, option=option)
    if not hasattr(mod, attr):
        raise _UserCodeFailed(f"{option} {spec!r}: {module_name!r} has no attribute {attr!r}")
    return getattr(mod, attr)


def _mapping_file(path: Path) -> dict:
    """``{golden name: module parameter name}`` from a JSON object or a TOML table (by the file's suffix)."""
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python < 3.11
                import tomli as tomllib
            with open(path, "rb") as f:
                data = tomllib.load(f)
        else:
            import json

            data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _Usage(f"--mapping {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise _Usage(f"--mapping {path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'} "
                     f"({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise _Usage(f"--mapping {path}: expected golden name = module parameter name pairs (all text)")
    empty = [k for k, v in data.items() if not v]
    if empty:
        raise _Usage(f"--mapping {path}: no module parameter given for {', '.join(empty)}")
    return data


def _options(args, golden) -> dict:
    """The assertions' keyword arguments from the command line, checked (bad values are usage errors)."""
    for name in ("rtol", "atol"):
        value = getattr(args, name)
        if value is not None and not (value >= 0 and np.isfinite(value)):
            raise _Usage(f"--{name} {value}: must be a finite number >= 0")
    if args.steps is not None and not 1 <= args.steps <= golden.steps:
        raise _Usage(f"--steps {args.steps}: the golden has {golden.steps} training steps; give 1 to {golden.steps}")
    if args.steps is not None and args.steps < golden.steps and golden.after_each is None:
        raise _Usage(f"--steps {args.steps}: this golden has the parameters after step {golden.steps} only "
                     f"(record it with every step to compare fewer)")
    return dict(batch_first=args.batch_first, rtol=args.rtol, atol=args.atol,
                mapping=_mapping_file(args.mapping) if args.mapping is not None else None)


def _optimizer(spec, module):
    """The stock torch.optim port of the rule ``spec`` over the module's parameters (None: the golden's rule)."""
    if spec is None:
        return None
    from ..optim import NoTorchEquivalent, parse_spec, torch_mapping

    try:
        return torch_mapping(parse_spec(spec)).bind(module.parameters())
    except NoTorchEquivalent as exc:
        raise _Usage(f"--optimizer {spec!r}: no stock torch.optim port ({' '.join(str(exc).split())})") from None
    except ValueError as exc:
        raise _Usage(f"--optimizer {spec!r}: {exc}") from None


def _user_module(spec: str):
    """The ``nn.Module`` that ``--module`` names, built; its forward guarded by :func:`_guard_forward`."""
    module = _built_module(spec, _factory(spec))
    _guard_forward(spec, module)
    return module


def _built_module(spec: str, target, option: str = "--module"):
    """``target`` (what ``spec`` names: a factory, or an ``nn.Module``) as an ``nn.Module`` with values: the
    factory called (its failure, or anything but a module on the CPU, is :class:`_UserCodeFailed`)."""
    from torch import nn

    module = target if isinstance(target, nn.Module) or not callable(target) else _user_call(
        spec, "calling it", target, option=option)
    if not isinstance(module, nn.Module):
        raise _UserCodeFailed(f"{option} {spec!r} gave a {type(module).__name__}, not a torch.nn.Module")
    on_meta = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.device.type == "meta"]
    if on_meta:
        raise _UserCodeFailed(f"{option} {spec!r}: the module's {on_meta[0]} is on the meta device (no values); "
                              "build it on the CPU, or call .to_empty(device='cpu') and initialise it")
    return module


def _guard_forward(spec: str, module) -> None:
    """Wrap ``module.forward`` (this instance only): an exception or ``sys.exit`` in it, or an output that is
    neither a tensor nor a tuple/list starting with one, is the user's code failing, not a bug of ours."""
    module.forward = _GuardedForward(spec, module, module.forward)


class _GuardedForward:
    """:func:`_guard_forward`'s wrapper. An object holding the module (not a closure): a deep copy of the module
    (the matcher's dry run, ``models._match.call_order``) gets a wrapper of its copy, so that the copy's own
    layers run (and their forward hooks fire), not the original's."""

    def __init__(self, spec: str, module, forward) -> None:
        self.spec, self.module = spec, module
        # the instance's own forward when it had one before the guard (in its __dict__: a function, or a method
        # such as ``self.forward = self.fast_forward``), else None: the class's, bound at call time
        self.own = forward if "forward" in vars(module) else None

    def __call__(self, *args, **kwargs):
        import torch

        forward = self.own if self.own is not None else type(self.module).forward.__get__(self.module)
        y = _user_call(self.spec, "the forward pass", forward, *args, **kwargs)
        first = y[0] if isinstance(y, (tuple, list)) and y else y
        if not isinstance(first, torch.Tensor):
            raise _UserCodeFailed(f"--module {self.spec!r}: the forward pass returned a {type(y).__name__}, expected "
                                  "a tensor (or a tuple/list whose first item is one)")
        return y


class _TimedOut(BaseException):
    """Raised in the main thread by SIGALRM when ``--timeout`` runs out (a BaseException: the user's
    ``except Exception`` cannot swallow it)."""


class _Deadline:
    """``--timeout``: bounds the wall time of importing, building and checking the module.

    In the main thread on POSIX, SIGALRM raises :class:`_TimedOut` at the deadline: that ends Python code
    and any wait Python can interrupt (``time.sleep``, a lock, I/O). Code stuck inside one C call (a torch
    kernel that never returns) cannot be interrupted; for that a watchdog thread, ``grace`` seconds later,
    calls ``on_stuck`` (which writes the report) and ends the process with exit 2.
    """

    def __init__(self, seconds, on_stuck, grace: float = 5.0) -> None:
        self.seconds, self.on_stuck, self.grace = seconds, on_stuck, grace
        self.alarm = (seconds is not None and hasattr(signal, "SIGALRM")
                      and threading.current_thread() is threading.main_thread())
        self.watchdog = None

    def __enter__(self):
        if self.seconds is None:
            return self
        if self.alarm:
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self.watchdog = threading.Timer(self.seconds + (self.grace if self.alarm else 0.0), self._stuck)
        self.watchdog.daemon = True
        self.watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)

    def _fire(self, signum, frame) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise _TimedOut()

    def _stuck(self) -> None:
        try:
            self.on_stuck()
        finally:
            os._exit(EXIT_USAGE)


def run_check(args) -> int:
    from .._npzio import NpzError
    from ._golden import load_golden

    try:
        _split_spec(args.module)
        golden = load_golden(args.golden)
        options = _options(args, golden)
    except (NpzError, _Usage) as exc:
        _say(f"fluxparity check: error: {exc}")
        return EXIT_USAGE
    try:
        return _check_module(args, golden, options)
    except _Usage as exc:
        _say(f"fluxparity check: error: {exc}")
        return EXIT_USAGE


def _check_module(args, golden, options: dict) -> int:
    """Import and build the user's module and run the checks under ``--timeout``; the report is written
    whatever the user's code did (its failure is the report's ``error``)."""
    from . import _record

    recorder = _record.start()
    recorder.current_test = f"fluxparity check {args.golden} --module {args.module}"
    timeout = getattr(args, "timeout", None)

    def give_up(reason: str) -> int:
        recorder.error = reason
        _write_report(recorder, args.out)
        _say(f"fluxparity check: error: {reason}")
        return EXIT_USAGE

    stuck = f"--module {args.module!r}: still running after --timeout {timeout:g} s (stuck in C code; ended)" \
        if timeout is not None else ""
    try:
        try:
            with _Deadline(timeout, lambda: give_up(stuck)):
                module = _user_module(args.module)
                failed = _run_checks(args, golden, module, options, _optimizer(args.optimizer, module))
        except _UserCodeFailed as exc:
            return give_up(str(exc))
        except _TimedOut:
            return give_up(f"--module {args.module!r}: gave up after --timeout {timeout:g} s")
        paths = _write_report(recorder, args.out)
    finally:
        _record.stop()
    _print_summary(args, golden, recorder, failed, paths)
    return EXIT_FAILED if failed else EXIT_OK


def _run_checks(args, golden, module, options: dict, optimizer) -> list:
    from ._assert import MAPPING_QUANTITY, assert_forward_parity, assert_gradient_parity, assert_training_parity
    from ._mismatch import ParityError

    failed = []
    for i, check in enumerate((assert_forward_parity, assert_gradient_parity, assert_training_parity)):
        extra = dict(optimizer=optimizer, steps=args.steps) if check is assert_training_parity else {}
        try:
            check(golden, module, check_weights=args.check_weights and i == 0, **options, **extra)
        except ParityError as exc:
            failed.append(exc)
            if exc.mismatches and exc.mismatches[0].quantity == MAPPING_QUANTITY:
                break  # the other checks would fail on the same mapping: say it once
    return failed


def _write_report(recorder, out: Path) -> list:
    try:
        return recorder.write(out)
    except OSError as exc:
        raise _Usage(f"--out {str(out)!r} could not be written: {exc.strerror or exc}") from None


def _print_summary(args, golden, recorder, failed: list, paths: list) -> None:
    lines = [f"golden {args.golden}: produced by {golden.producer_name}"]
    lines += [f"  {record.assertion}: {'PASS' if record.passed else 'FAIL'}" for record in recorder.records]
    lines += ["\n" + "\n".join(str(exc).splitlines()[1:]) for exc in failed]
    lines.append(f"Wrote {paths[0]}, {paths[1]}")
    try:
        print("\n".join(lines), flush=True)
    except (OSError, ValueError):  # a full or closed stdout: the report files and the exit code still count
        pass


def _layers(text: str, what: str, parse) -> list:
    try:
        return [parse(item.split(":")) for item in text.split(",") if item]
    except (ValueError, IndexError):
        like = "lstm:8 or rnn:3:relu" if what == "--layers" else "2, 8:relu, 2:nobias or 8:relu:nobias"
        raise _Usage(f"{what} {text!r}: expected items like {like}") from None


def _recurrent_item(parts: list) -> tuple:
    """``KIND:HIDDEN[:ACT]`` split at ':' -> ``(kind, hidden[, activation])`` for ``init_chain``."""
    if len(parts) > 3:  # a fourth part would be dropped unread
        raise ValueError(parts)
    return (parts[0], int(parts[1]), *parts[2:])


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
        recurrent = _layers(args.layers, "--layers", _recurrent_item)
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

"""``fluxparity``: compare training runs across backends, check the Julia setup.

Exit status: 0 every parity verdict passed, 1 a parity check failed, 2 bad usage (a one-line message
naming the value), 3 a backend failed while running (e.g. a Julia exception).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .backends import BACKEND_NAMES, BackendError, get_backend
from .config import ACTIVATIONS, DTYPES, MODELS
from .parallel import DEFAULT_WORKERS

EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE, EXIT_BACKEND_FAILED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad input: reported as one line, exit 2, before anything is written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message; the hint points at --help
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(convert, acceptable, expected: str):
    """An argparse type: ``convert(text)``, refused with a message naming the text unless ``acceptable``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not acceptable(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_nonnegative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive finite number")


def _choice_or_both(allowed):
    def parse(text: str) -> tuple[str, ...]:
        if text == "both":
            return tuple(allowed)
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(allowed)}, both")
        return (text,)
    return parse


def _backend_list(text: str) -> tuple[str, ...]:
    if text == "auto":
        return ("auto",)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in BACKEND_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown backend {(unknown or [text])[0]!r}; choose a comma list of {', '.join(BACKEND_NAMES)}, or auto")
    return tuple(dict.fromkeys(names))


def _check_writable_dir(out: Path) -> None:
    """Fail before any training if ``out`` cannot become a writable folder. Creates nothing."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"--out {str(out)!r} cannot be created: {str(probe)!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {str(out)!r} is not writable (no write permission on {str(probe)!r})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fluxparity", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compare", help="train the tutorial's model in every backend and compare")
    c.add_argument("--backends", type=_backend_list, default=("auto",),
                   help=f"comma list of {', '.join(BACKEND_NAMES)}; 'auto' (default) = every backend available here")
    c.add_argument("--activation", type=_choice_or_both(ACTIVATIONS), default=ACTIVATIONS,
                   help="identity, tanh or both (default: both, the tutorial's two experiments)")
    c.add_argument("--model", choices=MODELS, default="rnn",
                   help="the recurrent cell (default rnn, the tutorial's). Gated cells (lstm, gru, gruv3) have no "
                        "--activation; every model but the one-unit rnn reads its last step through a Dense head")
    c.add_argument("--hidden", type=_positive_int, default=1, help="hidden size (default 1, the tutorial's)")
    c.add_argument("--dtype", type=_choice_or_both(DTYPES), default=DTYPES, help="float32, float64 or both (default)")
    c.add_argument("--samples", type=_positive_int, default=1000, help="training sequences (test = 2x); default 1000")
    c.add_argument("--epochs", type=_positive_int, default=50, help="default 50")
    c.add_argument("--seed", type=_nonnegative_int, default=0, help="fixes data and initial weights; default 0")
    c.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate; default 1e-3")
    c.add_argument("--out", type=Path, default=Path("fluxparity-report"),
                   help="folder for report.json, report.md, losses.csv, loss_curves.png (default ./fluxparity-report)")
    c.add_argument("--torch-optimizer", choices=("torch", "optimisers"), default="torch",
                   help="torch: torch.optim.Adam (default, what a port uses); optimisers: Optimisers.jl's arithmetic")
    c.add_argument("--reference-tanh", choices=("exact", "fast"), default="exact",
                   help="the reference's tanh: exact (as PyTorch) or NNlib's tanh_fast (as Flux's RNN cell)")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.add_argument("--verbose", action="store_true", help="print every table of every run (report.md has them all)")

    c.add_argument("--torch-path", choices=("fast", "plain"), default="fast",
                   help="fast (default): the torch backend's batched path, bit-identical to plain (tested); plain: "
                        "the idiomatic nn.Module trained with autograd, ~10x slower. Models beyond the tutorial "
                        "always use plain")
    c.add_argument("--workers", type=_positive_int, default=DEFAULT_WORKERS,
                   help=f"processes for independent runs (default {DEFAULT_WORKERS}; 1 trains in this process)")

    w = sub.add_parser("sweep", help="torch vs reference over many seeds: is parity luck?")
    w.add_argument("--seeds", type=_positive_int, default=8,
                   help="how many seeds: --first-seed .. --first-seed + N - 1 (default 8)")
    w.add_argument("--first-seed", type=_nonnegative_int, default=0, help="default 0")
    w.add_argument("--activation", type=_choice_or_both(ACTIVATIONS), default=ACTIVATIONS,
                   help="identity, tanh or both (default)")
    w.add_argument("--dtype", type=_choice_or_both(DTYPES), default=DTYPES, help="float32, float64 or both (default)")
    w.add_argument("--samples", type=_positive_int, default=1000, help="training sequences per seed; default 1000")
    w.add_argument("--epochs", type=_positive_int, default=50, help="default 50")
    w.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate; default 1e-3")
    w.add_argument("--out", type=Path, default=Path("fluxparity-sweep"),
                   help="folder for sweep.json, sweep.csv, sweep.png (default ./fluxparity-sweep)")
    w.add_argument("--torch-optimizer", choices=("torch", "optimisers"), default="torch",
                   help="torch: torch.optim.Adam's arithmetic (default); optimisers: Optimisers.jl's")
    w.add_argument("--reference-tanh", choices=("exact", "fast"), default="exact",
                   help="the reference's tanh: exact (as PyTorch) or NNlib's tanh_fast (as Flux)")
    w.add_argument("--workers", type=_positive_int, default=DEFAULT_WORKERS,
                   help=f"processes for the independent (activation, dtype) runs (default {DEFAULT_WORKERS})")
    w.add_argument("--quiet", action="store_true", help="no progress lines")

    sub.add_parser("doctor", help="what is installed, whether Julia and Flux can run here, and what to do next")
    sub.add_parser("setup-julia", help="let juliacall download Julia and install Flux (needs network)")
    return parser


def _backend_options(name: str, args) -> dict:
    return {"torch": {"optimizer": args.torch_optimizer, "path": args.torch_path},
            "reference": {"tanh": args.reference_tanh}}.get(name, {})


def _resolve_backends(args) -> tuple[dict, dict]:
    """(name -> backend, name -> why skipped). Unavailable explicit backends are a usage error."""
    auto = args.backends == ("auto",)
    names = BACKEND_NAMES if auto else args.backends
    chosen, skipped = {}, {}
    for name in names:
        try:
            backend = get_backend(name, **_backend_options(name, args))
            reason = backend.unavailable_reason()
        except ImportError as exc:
            backend, reason = None, f"its Python dependencies are missing ({exc})"
        if reason is None:
            chosen[name] = backend
        elif auto:
            skipped[name] = reason
        else:
            raise UsageError(f"backend {name!r} cannot run here: {reason}")
    if not chosen:
        raise UsageError("no backend can run here; see `fluxparity doctor`")
    return chosen, skipped


class _Progress:
    """One line per backend run, rewritten in place on a terminal, every 10% otherwise."""

    def __init__(self, stream) -> None:
        self.stream, self.tty = stream, stream.isatty()
        self.last = {}
        self.started = {}

    def __call__(self, backend: str, run: str, done: int, total: int) -> None:
        key = (backend, run)
        self.started.setdefault(key, time.perf_counter())
        tenth = 10 * done // total
        if not self.tty and self.last.get(key) == tenth:
            return
        self.last[key] = tenth
        line = f"  {backend:9s} {run:16s} {done:>7d}/{total} steps  {time.perf_counter() - self.started[key]:6.1f}s"
        self.stream.write(("\r" + line + ("\n" if done == total else "")) if self.tty else line + "\n")
        self.stream.flush()


def _compare(args) -> int:
    from .experiment import run_experiment
    from .report import format_experiment, write_reports

    _check_writable_dir(args.out)
    backends, skipped = _resolve_backends(args)  # the report's header says which were skipped, and why
    experiment = run_experiment(
        samples=args.samples, seed=args.seed, epochs=args.epochs, lr=args.lr, activations=args.activation,
        dtypes=args.dtype, backends=backends, skipped=skipped,
        progress=None if args.quiet else _Progress(sys.stderr),
        options={"torch_optimizer": args.torch_optimizer, "torch_path": args.torch_path,
                 "reference_tanh": args.reference_tanh},
        model=args.model, hidden=args.hidden, workers=args.workers,
    )
    print(format_experiment(experiment, verbose=args.verbose))
    paths = write_reports(experiment, args.out)
    print("\nWrote " + ", ".join(str(p) for p in paths))
    return EXIT_OK if experiment.verdict == "pass" else EXIT_PARITY_FAILED


def _sweep(args) -> int:
    from .sweep import format_sweep, run_sweep, write_sweep

    _check_writable_dir(args.out)

    def report(what: str, done: int, total: int) -> None:
        print(f"  {what:26s} {done:>5d}/{total} seeds", file=sys.stderr, flush=True)

    sweep = run_sweep(list(range(args.first_seed, args.first_seed + args.seeds)), args.samples, args.epochs, args.lr,
                      args.activation, args.dtype, torch_optimizer=args.torch_optimizer,
                      reference_tanh=args.reference_tanh, workers=args.workers,
                      progress=None if args.quiet else report)
    print(format_sweep(sweep))
    paths = write_sweep(sweep, args.out)
    print("\nWrote " + ", ".join(str(p) for p in paths))
    return EXIT_OK if sweep.verdict == "pass" else EXIT_PARITY_FAILED


def _doctor(args) -> int:
    from .julia_setup import doctor_lines

    print("\n".join(doctor_lines()))
    return EXIT_OK


def _setup_julia(args) -> int:
    from .julia_setup import JuliaSetupError, setup_julia

    try:
        setup_julia(print)
    except JuliaSetupError as exc:
        print(f"fluxparity setup-julia: {exc}", file=sys.stderr)
        return EXIT_BACKEND_FAILED
    return EXIT_OK


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    command = {"compare": _compare, "sweep": _sweep, "doctor": _doctor, "setup-julia": _setup_julia}[args.command]
    try:
        return command(args)
    except UsageError as exc:
        print(f"fluxparity {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackendError as exc:
        print(f"fluxparity {args.command}: a backend failed: {exc}", file=sys.stderr)
        return EXIT_BACKEND_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `fluxparity compare | head`: the reader left; not an error of ours
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""``fluxparity``: compare training runs across backends, check the Julia setup.

Exit status: 0 every parity verdict passed, 1 a parity check failed, 2 bad usage (a one-line message
naming the value; also an --out that cannot be written), 3 a backend failed while running (e.g. a Julia
exception), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

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


def _prepare_out(out: Path) -> bool:
    """Before any training: make ``out`` a folder a file can be written in. Returns whether it was created.

    A real write, not a permission check: ``os.access`` says yes to root, and knows nothing of read-only
    file systems.
    """
    _check_writable_dir(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".fluxparity-write-test-"):
            pass
    except OSError as exc:
        if created:
            _remove_if_empty(out)
        raise UsageError(f"--out {str(out)!r} cannot be written: {exc.strerror or exc}") from None
    return created


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only succeeds when empty: never removes anything of the user's
    except OSError:
        pass


def _check_lr(lr: float, dtypes) -> None:
    """An lr that float32 cannot hold would silently become 0 or inf in the float32 runs."""
    if "float32" in dtypes:
        as_f32 = np.float32(lr) if lr <= np.finfo(np.float32).max else np.float32(np.inf)
        if not (np.isfinite(as_f32) and as_f32 > 0):
            info = np.finfo(np.float32)
            raise UsageError(f"--lr {lr!r} is not representable in float32 (float32 runs need "
                             f"{info.smallest_subnormal:g} <= lr <= {info.max:g}; or use --dtype float64)")


def _emit(text: str) -> None:
    """Print a report; a reader that went away (``| head``) is not an error, and the exit code still counts."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice for SIGPIPE


def _write_or_clean(write, out: Path, created: bool):
    try:
        return write()
    except OSError as exc:
        if created:
            _remove_if_empty(out)
        raise UsageError(f"--out {str(out)!r} could not be written: {exc.strerror or exc}") from None


def _add_training_arguments(p: argparse.ArgumentParser, out: str, files: str) -> None:
    """What ``compare`` and ``sweep`` share: the runs, the training settings, the options, the output."""
    p.add_argument("--activation", type=_choice_or_both(ACTIVATIONS), default=ACTIVATIONS,
                   help="identity, tanh or both (default: both, the tutorial's two experiments)")
    p.add_argument("--dtype", type=_choice_or_both(DTYPES), default=DTYPES, help="float32, float64 or both (default)")
    p.add_argument("--samples", type=_positive_int, default=1000, help="training sequences (test = 2x); default 1000")
    p.add_argument("--epochs", type=_positive_int, default=50, help="default 50")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate; default 1e-3")
    p.add_argument("--out", type=Path, default=Path(out), help=f"folder for {files} (default ./{out})")
    p.add_argument("--torch-optimizer", choices=("torch", "optimisers"), default="torch",
                   help="torch: torch.optim.Adam (default, what a port uses); optimisers: Optimisers.jl's arithmetic")
    p.add_argument("--reference-tanh", choices=("exact", "fast"), default="exact",
                   help="the reference's tanh: exact (as PyTorch) or NNlib's tanh_fast (as Flux's RNN cell)")
    p.add_argument("--workers", type=_positive_int, default=DEFAULT_WORKERS,
                   help=f"processes for independent runs (default {DEFAULT_WORKERS}; 1 trains in this process)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fluxparity", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compare", help="train the tutorial's model in every backend and compare")
    c.add_argument("--backends", type=_backend_list, default=("auto",),
                   help=f"comma list of {', '.join(BACKEND_NAMES)}; 'auto' (default) = every backend available here")
    c.add_argument("--model", choices=MODELS, default="rnn",
                   help="the recurrent cell (default rnn, the tutorial's). Gated cells (lstm, gru, gruv3) have no "
                        "--activation; every model but the one-unit rnn reads its last step through a Dense head")
    c.add_argument("--hidden", type=_positive_int, default=1, help="hidden size (default 1, the tutorial's)")
    c.add_argument("--seed", type=_nonnegative_int, default=0, help="fixes data and initial weights; default 0")
    c.add_argument("--torch-path", choices=("fast", "plain"), default="fast",
                   help="fast (default): the torch backend's batched path, bit-identical to plain (tested); plain: "
                        "the idiomatic nn.Module trained with autograd, ~10x slower. Models beyond the tutorial "
                        "always use plain")
    c.add_argument("--verbose", action="store_true", help="print every table of every run (report.md has them all)")
    _add_training_arguments(c, "fluxparity-report", "report.json, report.md, losses.csv, loss_curves.png")

    w = sub.add_parser("sweep", help="torch vs reference over many seeds: is parity luck?")
    w.add_argument("--seeds", type=_positive_int, default=8,
                   help="how many seeds: --first-seed .. --first-seed + N - 1 (default 8)")
    w.add_argument("--first-seed", type=_nonnegative_int, default=0, help="default 0")
    _add_training_arguments(w, "fluxparity-sweep", "sweep.json, sweep.csv, sweep.png")

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


def _compare(args) -> int:
    from .experiment import run_experiment
    from .progress import progress_display
    from .report import format_experiment, write_reports

    _check_lr(args.lr, args.dtype)
    backends, skipped = _resolve_backends(args)  # the report's header says which were skipped, and why
    created = _prepare_out(args.out)
    with progress_display(sys.stderr, quiet=args.quiet) as progress:  # stderr: stdout has only the report
        try:
            experiment = run_experiment(
                samples=args.samples, seed=args.seed, epochs=args.epochs, lr=args.lr, activations=args.activation,
                dtypes=args.dtype, backends=backends, skipped=skipped, progress=progress,
                options={"torch_optimizer": args.torch_optimizer, "torch_path": args.torch_path,
                         "reference_tanh": args.reference_tanh},
                model=args.model, hidden=args.hidden, workers=args.workers,
            )
        except BaseException:
            if created:
                _remove_if_empty(args.out)
            raise
        if progress is not None:
            progress.phase("report", f"writing the report files to {args.out}")
        paths = _write_or_clean(lambda: write_reports(experiment, args.out), args.out, created)  # files first
        if progress is not None:
            progress.phase("report", f"written to {args.out}", finished=True)
    _emit(format_experiment(experiment, verbose=args.verbose, terminal=sys.stdout))
    _emit("\nWrote " + ", ".join(str(p) for p in paths))
    return EXIT_OK if experiment.verdict == "pass" else EXIT_PARITY_FAILED


def _sweep(args) -> int:
    from .progress import progress_display
    from .sweep import format_sweep, run_sweep, write_sweep

    _check_lr(args.lr, args.dtype)
    created = _prepare_out(args.out)
    with progress_display(sys.stderr, quiet=args.quiet, unit="seeds") as progress:  # stderr, as compare's
        try:
            sweep = run_sweep(list(range(args.first_seed, args.first_seed + args.seeds)), args.samples, args.epochs,
                              args.lr, args.activation, args.dtype, torch_optimizer=args.torch_optimizer,
                              reference_tanh=args.reference_tanh, workers=args.workers,
                              progress=None if progress is None else progress.update)
        except BaseException:
            if created:
                _remove_if_empty(args.out)
            raise
        paths = _write_or_clean(lambda: write_sweep(sweep, args.out), args.out, created)
    _emit(format_sweep(sweep))
    _emit("\nWrote " + ", ".join(str(p) for p in paths))
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


if __name__ == "__main__":
    sys.exit(main())

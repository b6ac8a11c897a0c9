"""``fluxparity``: compare training runs across backends, check the Julia setup.

Exit status: 0 every parity verdict passed, 1 a parity check failed, 2 bad usage (a one-line message
naming the value; also an --out that cannot be written, a run too large for this machine's memory or
disk), 3 a backend failed or an unexpected error (one line), 4 nothing was compared (fewer than two
backends ran: not a pass), 130 interrupted (SIGINT), 143 terminated (SIGTERM), 129 hung up (SIGHUP).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import numpy as np

from . import _limits
from ._streams import forgiving_standard_streams
from .backends import BACKEND_NAMES, BackendError, ModuleError, get_backend
from .compare import NOTHING_COMPARED
from .experiment import ACTIVATIONS, DTYPES, MODELS
from .models import LOSSES, READOUTS
from .run import DEFAULT_LR
from .parallel import DEFAULT_WORKERS
from .report._files import OutFolderError, OutLock, check_out_folder

EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE, EXIT_BACKEND_FAILED, EXIT_NOTHING_COMPARED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
# SIGTERM and SIGHUP end a run as Ctrl-C does (workers stopped, nothing half-written), exit 128 + signal.
_HANDLED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (every ``finally`` and clean-up runs), then exits 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _ignore_further_signals(signum: int) -> None:
    """After the first SIGINT, SIGTERM or SIGHUP: a second one (a double Ctrl-C) must not interrupt the
    clean-up (stopping workers, removing a half-written report) and print a traceback."""
    global _signalled
    _signalled = signum
    for handled in (signal.SIGINT, *_HANDLED_SIGNALS):
        signal.signal(handled, signal.SIG_IGN)


_signalled = 0  # the handled signal that arrived (0: none): the handlers stay "ignore" until the process has exited


def _raise_terminated(signum, frame) -> None:
    _ignore_further_signals(signum)
    raise Terminated(signum)


def _raise_interrupted(signum, frame) -> None:
    _ignore_further_signals(signum)
    raise KeyboardInterrupt


class UsageError(Exception):
    """Bad input: reported as one line, exit 2, before anything is written."""


def one_line(text: str, limit: int = 600) -> str:
    """``text`` as one line of at most about ``limit`` characters: its start and its end (where a message
    says what is wrong), the middle of a huge quoted value left out."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[: limit // 2]} … {text[-(limit // 2):]}"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message; the hint points at --help
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


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


def _optimizer_spec(text: str):
    """An argparse type: the Optimisers.jl rule of a spec (``fluxparity.optim.parse_spec``; its message if bad)."""
    from .optim import parse_spec

    try:
        return parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _model_option(text: str):
    """An argparse type: a shorthand (``rnn``...), a weights file (an existing path or one ending ``.npz``), or a
    Flux expression (parsed now, so a bad token is reported before anything runs)."""
    if text in MODELS:
        return text
    if text.strip().endswith(".npz") or (Path(text).is_file() and "(" not in text):
        return Path(text)
    from .models import parse_flux

    try:
        return parse_flux(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not {', '.join(MODELS)}, a weights file or a Flux model: "
                                         f"{' '.join(str(exc).split())}") from None


def _out_folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a folder name, got {text!r}")
    return Path(text)


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


def _prepare_out(out: Path, names) -> OutLock:
    """Before any training: check ``out`` can take the report and lock it against other runs (exit 2 if not).

    A real write beside ``out`` (where the report is rendered), not a permission check: ``os.access`` says
    yes to root, and knows nothing of read-only file systems. Creates nothing but the lock's parent folders.
    """
    try:
        check_out_folder(out, names)
        lock = OutLock(out)
    except OutFolderError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"--out {str(out)!r} cannot be written: {exc.strerror or exc}") from None
    return lock


def _check_resources(out: Path, memory: int, disk: int, what: str) -> None:
    """Refuse (exit 2) a run whose estimated memory or report size does not fit here: before training."""
    available = _limits.available_memory()
    if available is not None and memory > available:
        raise UsageError(f"{what} needs about {_limits.gigabytes(memory)} of memory, more than the "
                         f"{_limits.gigabytes(available)} available here; use fewer --samples, --epochs or --hidden")
    free = _limits.free_disk(out)
    if free is not None and disk > free:
        raise UsageError(f"{what} writes about {_limits.gigabytes(disk)} of report, more than the "
                         f"{_limits.gigabytes(free)} free at --out {str(out)!r}")


def _check_lr(lr: float, dtypes) -> None:
    """An lr that float32 cannot hold would silently become 0 or inf in the float32 runs."""
    if "float32" in dtypes:
        with np.errstate(over="ignore", under="ignore"):
            as_f32 = np.float32(lr)
        if not (np.isfinite(as_f32) and as_f32 > 0):
            info = np.finfo(np.float32)
            raise UsageError(f"--lr {lr!r} is not representable in float32 (float32 runs need "
                             f"{info.smallest_subnormal:g} <= lr <= {info.max:g}; or use --dtype float64)")


def _rule_members(rule) -> tuple:
    return tuple(rule["opts"]) if rule.name == "OptimiserChain" else (rule,)


def _check_optimizer(rule, dtypes, steps: int) -> None:
    """--optimizer's numbers as the runs will hold them (as :func:`_check_lr` for --lr), before any training:
    a number the dtype cannot hold (it would become inf), an eta too small to change a weight, an AccumGrad
    that never reaches its first update in ``steps`` gradient steps. (Domains: ``optim.rule`` refused those.)"""
    if rule is None:
        return
    for member in _rule_members(rule):
        for field, value in member.fields:
            for dtype in dtypes:
                _check_in_dtype(member.name, field, value, np.dtype(dtype))
        if member.name == "AccumGrad" and member["n"] > steps:
            raise UsageError(f"--optimizer AccumGrad.n={member['n']} is more than the run's {steps} gradient steps "
                             "(--samples x --epochs): no update would ever happen")


def _check_in_dtype(rule: str, field: str, value, dtype: np.dtype) -> None:
    largest, tiny = float(np.finfo(dtype).max), float(np.finfo(dtype).tiny)  # Python floats: no NumPy cast
    for number in value if isinstance(value, tuple) else (value,):
        if isinstance(number, bool) or not isinstance(number, float) or not np.isfinite(number):
            continue
        if abs(number) > largest:
            raise UsageError(f"--optimizer {rule}.{field}={number!r} overflows {dtype.name} (largest {largest:g}); "
                             f"use a smaller value{' or --dtype float64' if dtype.name == 'float32' else ''}")
    if field == "eta" and isinstance(value, float) and value < tiny:
        raise UsageError(f"--optimizer {rule}.eta={value!r} is below {dtype.name}'s smallest normal number "
                         f"{tiny:g}: updates that small change no weight (nothing would train)")


def _quiet_libraries(quiet: bool) -> None:
    """--quiet: the libraries' own notices (matplotlib's "building the font cache") stay off stderr too."""
    if quiet:
        import logging

        logging.getLogger("matplotlib").setLevel(logging.ERROR)


def _say_training_warnings(experiment) -> None:
    """Each training's warnings (kept in report.json's notes.warnings), one line each, after the run."""
    for run in experiment.runs:
        for name, result in run.results.items():
            for text in result.notes.get("warnings", ()):
                _say(f"warning: {name} {run.config.label}: {text}")


def _emit(text: str) -> None:
    """Print a report; a reader that went away (``| head``) is not an error, and the exit code still counts."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice for SIGPIPE


def _add_training_arguments(p: argparse.ArgumentParser, out: str, files: str) -> None:
    """What ``compare`` and ``sweep`` share: the runs, the training settings, the options, the output."""
    p.add_argument("--activation", type=_choice_or_both(ACTIVATIONS), default=None,
                   help="identity, tanh or both (default: both, the tutorial's two experiments)")
    p.add_argument("--dtype", type=_choice_or_both(DTYPES), default=DTYPES, help="float32, float64 or both (default)")
    p.add_argument("--samples", type=_positive_int, default=None,
                   help="training sequences of the sum task (test = 2x); default 1000")
    p.add_argument("--epochs", type=_positive_int, default=50, help="default 50")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"the tutorial Adam's learning rate; default {DEFAULT_LR:g} (not with --optimizer)")
    p.add_argument("--optimizer", type=_optimizer_spec, default=None, metavar="SPEC",
                   help="an Optimisers.jl rule for every backend instead of Adam(--lr), e.g. momentum:eta=0.01,rho=0.9 "
                        "or chain:clipnorm=1,adamw (grammar and rules: docs/optimisers.md)")
    p.add_argument("--out", type=_out_folder, default=Path(out), help=f"folder for {files} (default ./{out})")
    p.add_argument("--torch-optimizer", choices=("torch", "optimisers"), default=None,
                   help="torch: torch.optim.Adam (default, what a port uses); optimisers: Optimisers.jl's arithmetic")
    p.add_argument("--reference-tanh", choices=("exact", "fast"), default=None,
                   help="the reference's tanh: exact (as PyTorch) or NNlib's tanh_fast (as Flux's RNN cell)")
    p.add_argument("--workers", type=_positive_int, default=DEFAULT_WORKERS,
                   help=f"processes for independent runs (default {DEFAULT_WORKERS}; 1 trains in this process)")
    p.add_argument("--quiet", action="store_true",
                   help="nothing on stderr but errors: no progress lines, no warnings (a training's warnings are in "
                        "report.json, notes.warnings)")


def _add_run_arguments(p: argparse.ArgumentParser, seed: str) -> None:
    """What ``compare`` and ``sweep`` share to describe a run: the model, the data, the loss, the batches
    (``seed``: where the drawn numbers come from, in the help's words). They become run descriptions in one
    place, :func:`_own_run_maker` (or ``experiment.shorthand_runs`` for the tutorial's shape)."""
    sweep = seed != "--seed"
    p.add_argument("--model", type=_model_option, default="rnn", metavar="MODEL",
                   help="rnn (default, the tutorial's), lstm, gru or gruv3 with --hidden (a Dense head reads the last "
                        "step of every model but the one-unit rnn); or a Flux expression, e.g. "
                        f"'Chain(LSTM(3 => 16), Dense(16 => 2, relu))' (weights drawn as Flux does from {seed}); or a "
                        "weights file (.npz: fluxparity-weights, e.g. from julia/weights.jl, or a golden file): its "
                        "weights start the run" + (" of every seed" if sweep else ""))
    p.add_argument("--data", default="sum", metavar="sum|FILE.npz",
                   help="sum (default: the tutorial's task, --samples" + (", new data for each seed" if sweep else "")
                        + ") or a .npz with x (N, len, in) and y (N, out) for readout last or (N, len, out) for all; "
                        "optional x_test, y_test; for logitcrossentropy y holds one-hot rows or integer class labels "
                        "(docs/porting.md)" + ("; a FILE's data are the same for every seed: only the initial weights "
                                               "(and the --shuffle order) change" if sweep else ""))
    p.add_argument("--loss", choices=LOSSES, default=None,
                   help="default abs_sum for --data sum (the tutorial's), mse otherwise; Flux's losses with agg = mean")
    p.add_argument("--readout", choices=READOUTS, default=None,
                   help="last (output = last step) or all (every step); default: what the data's y holds")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="samples per step (default 1 for --data sum, 32 for a file); the last batch keeps the rest")
    p.add_argument("--shuffle", action="store_true",
                   help=f"a new order each epoch, drawn from {seed} and handed to every backend (default: in order)")
    p.add_argument("--hidden", type=_positive_int, default=1, help="hidden size (default 1, the tutorial's)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fluxparity", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compare", help="train the tutorial's model in every backend and compare")
    c.add_argument("--backends", type=_backend_list, default=("auto",),
                   help=f"comma list of {', '.join(BACKEND_NAMES)}; 'auto' (default) = every backend available here")
    _add_run_arguments(c, "--seed")
    c.add_argument("--seed", type=_nonnegative_int, default=0, help="fixes data and initial weights; default 0")
    c.add_argument("--torch-path", choices=("fast", "plain"), default=None,
                   help="fast (default): the torch backend's batched path, bit-identical to plain (tested); plain: "
                        "the idiomatic nn.Module trained with autograd, ~10x slower. Models beyond the tutorial "
                        "always use plain (--torch-path fast is refused for them)")
    c.add_argument("--torch-module", default=None, metavar="PKG.MOD:FACTORY",
                   help="train YOUR torch module as the torch leg (does my port train like Flux?): a callable returning "
                        "a fresh nn.Module (or an nn.Module), imported from the current folder; it gets the run's initial "
                        "weights (matched as fluxparity check matches them), receives (len, batch, in) and returns every "
                        "step (len, batch, out) or the last (batch, out)")
    c.add_argument("--batch-first", action="store_true",
                   help="with --torch-module: the module takes (batch, len, in) and returns (batch, len, out)")
    c.add_argument("--mapping", type=Path, default=None, metavar="FILE",
                   help="with --torch-module: Flux flat name -> module parameter name (JSON object or TOML table) when "
                        "the automatic match fails (it prints one to edit)")
    c.add_argument("--verbose", action="store_true", help="print every table of every run (report.md has them all)")
    _add_training_arguments(c, "fluxparity-report", "report.json, report.md, losses.csv, loss_curves.png")

    w = sub.add_parser("sweep", help="torch vs reference over many seeds: is parity luck? (compare's run options)")
    w.add_argument("--seeds", type=_positive_int, default=8,
                   help="how many seeds: --first-seed .. --first-seed + N - 1 (default 8); each seed draws its own "
                        "initial weights (and --data sum's data, and the --shuffle order) as compare --seed does")
    w.add_argument("--first-seed", type=_nonnegative_int, default=0, help="default 0")
    _add_run_arguments(w, "each seed")
    _add_training_arguments(w, "fluxparity-sweep", "sweep.json, sweep.csv, sweep.png")

    sub.add_parser("doctor", help="what is installed, whether Julia and Flux can run here, and what to do next")
    sub.add_parser("setup-julia", help="let juliacall download Julia and install Flux (needs network)")
    from .testing._cli import add_parsers  # check, record (golden files): their own module

    add_parsers(sub)
    from .port._cli import add_parser as add_port_parser  # port: code generation, its own module

    add_port_parser(sub)
    return parser


def _backend_options(name: str, args) -> dict:
    torch = {"optimizer": args.torch_optimizer, "path": args.torch_path}
    if getattr(args, "torch_module_factory", None) is not None:  # compare --torch-module: the user's module
        torch = {"optimizer": args.torch_optimizer, "module_factory": args.torch_module_factory,
                 "batch_first": args.batch_first, "mapping": args.torch_module_mapping,
                 "module_label": f"--torch-module {args.torch_module!r}"}
    return {"torch": torch, "reference": {"tanh": args.reference_tanh}}.get(name, {})


def _settle_torch_module(args) -> None:
    """``compare --torch-module PKG.MOD:FACTORY [--batch-first] [--mapping FILE]``: checked and imported (from
    the current folder, as ``fluxparity check --module``) before anything runs; options that do not apply are
    refused. Sets ``args.torch_module_factory`` (a fresh module per call) and ``args.torch_module_mapping``."""
    args.torch_module_factory = args.torch_module_mapping = None
    args.torch_path_of_module = False
    if args.torch_module is None:
        for option, given in (("--batch-first", args.batch_first), ("--mapping", args.mapping is not None)):
            if given:
                raise UsageError(f"{option} applies with --torch-module (your own module) only")
        return
    if args.backends != ("auto",) and "torch" not in args.backends:
        raise UsageError(f"--torch-module trains your module as the torch backend, which does not run here "
                         f"(--backends {','.join(args.backends)}); add torch")
    if args.torch_path is not None:
        raise UsageError(f"--torch-path {args.torch_path} applies to fluxparity's own torch port; --torch-module "
                         "trains your module with autograd (leave --torch-path out)")
    if _is_tutorial_shaped(args) and args.model == "rnn" and (args.activation is None or len(args.activation) > 1):
        raise UsageError("--torch-module trains one module for every run: give --activation identity or tanh "
                         "(your module's), not both")
    import copy

    from torch import nn

    from .testing._cli import _Usage, _built_module, _factory, _mapping_file, _split_spec

    try:
        _split_spec(args.torch_module, "--torch-module")
        mapping = _mapping_file(args.mapping) if args.mapping is not None else None
    except _Usage as exc:
        raise UsageError(str(exc)) from None
    target = _factory(args.torch_module, "--torch-module")  # the user's import: a failure is exit 2, one line
    spec = args.torch_module
    if not callable(target):
        _built_module(spec, target, "--torch-module")  # neither a factory nor a module: refused now
    args.torch_module_factory = (lambda: copy.deepcopy(target)) if isinstance(target, nn.Module) else (
        lambda: _built_module(spec, target, "--torch-module"))
    args.torch_module_mapping = mapping
    args.torch_path, args.torch_path_of_module = "plain", True  # what the torch leg runs: said in the report


def _settle_options(args) -> None:
    """Refuse options that do not apply to this run (exit 2), then fill in the defaults of those left unset.

    An option that is given but would change nothing is an error, never silently ignored.
    """
    model = getattr(args, "model", "rnn")
    _settle_optimizer(args)
    if model != "rnn" and args.activation is not None:
        raise UsageError(f"--activation does not apply to --model {model}: gated cells have fixed nonlinearities "
                         "(sigmoid gates, tanh candidate); leave it out")
    if model != "rnn" or getattr(args, "hidden", 1) != 1:
        if getattr(args, "torch_path", None) == "fast":
            raise UsageError(f"--torch-path fast applies only to the tutorial's model (--model rnn --hidden 1); "
                             f"--model {model} --hidden {args.hidden} always uses the plain path")
        if getattr(args, "torch_path", "absent") is None:
            args.torch_path = "plain"  # what the torch backend runs for every other model: said truthfully
    activations = args.activation or ACTIVATIONS
    if args.reference_tanh is not None and "tanh" not in activations and model == "rnn":
        raise UsageError("--reference-tanh applies only to tanh runs, and --activation identity has none")
    args.activation = activations
    args.torch_optimizer = args.torch_optimizer or "torch"
    args.reference_tanh = args.reference_tanh or "exact"
    if hasattr(args, "torch_path") and args.torch_path is None:
        args.torch_path = "fast"


def _settle_optimizer(args) -> None:
    """--optimizer replaces Adam(--lr): both is refused; a rule other than Adam trains torch on the plain path."""
    if args.optimizer is not None and args.lr is not None:
        raise UsageError(f"--lr does not apply with --optimizer {args.optimizer.name}: the rule holds its own eta "
                         "(write it in the spec, e.g. momentum:eta=0.01); give one or the other")
    args.lr = DEFAULT_LR if args.lr is None else args.lr
    if args.optimizer is None or args.optimizer.name == "Adam":
        return
    if getattr(args, "torch_path", None) == "fast":
        raise UsageError(f"--torch-path fast spells out Adam only; --optimizer {args.optimizer.name} runs the "
                         "torch backend's plain path (leave --torch-path out, or give plain)")
    if getattr(args, "torch_path", "absent") is None:
        args.torch_path = "plain"  # what the torch backend runs for this rule: said truthfully in the report


def _check_torch_equivalent(args) -> None:
    """--torch-optimizer torch (the default) needs a stock torch.optim port of the rule; refuse when there is none."""
    if args.optimizer is None or args.torch_optimizer != "torch":
        return
    from .optim import NoTorchEquivalent, torch_mapping

    try:
        torch_mapping(args.optimizer)
    except NoTorchEquivalent as exc:
        raise UsageError(f"--optimizer {args.optimizer.name} has no torch.optim equivalent for --torch-optimizer "
                         f"torch: {' '.join(str(exc).split())}; use --torch-optimizer optimisers "
                         "(Optimisers.jl's arithmetic in torch)") from None


def _check_options_apply(args, chosen) -> None:
    """Backend options for a backend that does not run are refused (exit 2)."""
    given = {"torch": [f"--{o}" for o, v in (("torch-optimizer", args.given_torch_optimizer),
                                                ("torch-path", args.given_torch_path)) if v],
             "reference": ["--reference-tanh"] if args.given_reference_tanh else []}
    for backend, options in given.items():
        if options and backend not in chosen:
            raise UsageError(f"{', '.join(options)} applies to the {backend} backend, which does not run here "
                             f"(running: {', '.join(chosen)})")


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


def _note_given(args) -> None:
    args.given_torch_optimizer = args.torch_optimizer is not None
    args.given_torch_path = getattr(args, "torch_path", None) is not None and not getattr(
        args, "torch_path_of_module", False)
    args.given_reference_tanh = args.reference_tanh is not None


def _verdict_exit(verdict: str) -> int:
    return {"pass": EXIT_OK, NOTHING_COMPARED: EXIT_NOTHING_COMPARED}.get(verdict, EXIT_PARITY_FAILED)


def _write(write, out: Path):
    try:
        return write()
    except OutFolderError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"--out {str(out)!r} could not be written: {exc.strerror or exc}") from None


def _is_tutorial_shaped(args) -> bool:
    """The tutorial's sum task with a shorthand model and its loss, batch 1, in order: ``run_experiment``."""
    return (isinstance(args.model, str) and args.data == "sum" and args.loss in (None, "abs_sum")
            and args.readout in (None, "last") and args.batch_size in (None, 1) and not args.shuffle)


def _load_model_file(path: Path):
    """--model FILE: a weights file (``models.load_npz``) or a golden file (``testing.load_golden``, checked whole:
    its initial weights and chain); a bad file is a UsageError naming the file and what is wrong."""
    from ._npzio import npz_headers
    from .models import load_npz as load_weights

    try:
        if any(name.startswith("golden.") for name in npz_headers(path)):
            from .testing import load_golden

            return load_golden(path).chain
        return load_weights(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--model {str(path)!r}: {' '.join(str(exc).split())}") from None


def _own_run_maker(args):
    """The run descriptions of a user's own run (a model, data or loss beyond the tutorial's shape), for any seed.

    The one place ``compare`` and ``sweep`` turn --model, --data, --loss, --readout, --batch-size, --shuffle,
    --hidden, --activation, --dtype, --epochs and --lr/--optimizer into :class:`~fluxparity.run.RunSpec` s:
    refuses what does not apply (UsageError), reads the files once, and returns ``runs(seed)``: that seed's
    descriptions, one per dtype (raising UsageError when they do not fit together). A seed draws the initial
    weights of a shorthand or an expression and the sum task's data (``seeds_for``) and the shuffle order
    (``RunSpec.seed``); a data file and a weights file stay the same for every seed.
    """
    from .data import generate_dataset, load_npz_data
    from .experiment import GATED, seeds_for
    from .models import ModelSpec
    from .run import RunSpec

    model = args.model
    chain = None
    if isinstance(model, Path):
        chain = _load_model_file(model)
        if args.readout is not None and args.readout != chain.readout:
            raise UsageError(f"--readout {args.readout} does not apply: the weights file {str(model)!r} is read at "
                             f"{chain.readout!r}")
    file_data = None
    if args.data == "sum":
        if args.given_samples is False:
            args.samples = 1000
    else:
        if args.given_samples:
            raise UsageError(f"--samples applies to --data sum only; {args.data!r} holds its own samples")
        classes = None
        if args.loss == "logitcrossentropy":
            classes = chain.output_size if chain is not None else (
                model.output_size if isinstance(model, ModelSpec) else None)
        try:
            file_data = load_npz_data(args.data, classes=classes)
        except FileNotFoundError:
            raise UsageError(f"--data {args.data!r}: no such file (give sum or a .npz file)") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"--data: {' '.join(str(exc).split())}") from None
    if isinstance(model, str):  # a shorthand: <model>(in => hidden), Dense(hidden => out) sized from the data
        if len(args.activation or ()) > 1:
            raise UsageError("--activation both applies to the tutorial's runs; give identity or tanh")
        activation = (args.activation or ("tanh",))[0] if model == "rnn" else None
        label_activation = activation or GATED
    elif isinstance(model, ModelSpec):
        if args.activation is not None:
            raise UsageError("--activation does not apply to a Flux expression: write the activation in it")
        label_activation = None
    else:
        label_activation = None
    if args.hidden != 1 and not isinstance(model, str):
        raise UsageError("--hidden applies to the shorthand models only: a Flux expression or a weights file has its sizes")
    loss = args.loss or ("abs_sum" if args.data == "sum" else "mse")
    batch_size = args.batch_size or (1 if args.data == "sum" else 32)
    rule = args.optimizer if args.optimizer is not None else None
    if rule is None:
        from .optim import rule as make_rule

        rule = make_rule("Adam", eta=args.lr)

    def runs(seed: int) -> list:
        data_seed, param_seed = seeds_for(seed)
        data = file_data if file_data is not None else generate_dataset(args.samples, data_seed)
        readout = args.readout or (chain.readout if chain is not None else data.readout)
        if isinstance(model, str):
            spec = ModelSpec(data.input_size, ((model, args.hidden, activation),), ((data.output_size, "identity", True),))
            initial = spec.init(param_seed, readout=readout)
        elif isinstance(model, ModelSpec):
            initial = model.init(param_seed, readout=readout)
        else:
            initial = chain
        described = []
        for dtype in args.dtype:
            label = dtype if label_activation is None else f"{model}-h{args.hidden}/{label_activation}/{dtype}"
            try:
                described.append(RunSpec(initial, data, loss=loss, rule=rule, dtype=dtype, epochs=args.epochs,
                                         batch_size=batch_size, shuffle=args.shuffle, seed=seed, label=label,
                                         notes={} if label_activation is None else {
                                             "activation": label_activation, "model": model, "hidden": args.hidden}))
            except ValueError as exc:
                raise UsageError(" ".join(str(exc).split())) from None
        return described

    return runs


def _check_own_runs(args, runs) -> None:
    """What compare and sweep check of a user's own runs once they are described (exit 2 when not)."""
    if args.given_reference_tanh and not any(
            getattr(layer, "activation", None) == "tanh" or layer.kind != "dense" for layer in runs[0].model.layers):
        raise UsageError("--reference-tanh applies only to runs with tanh")
    _check_optimizer(args.optimizer, args.dtype, runs[0].total_steps)


def _compare(args) -> int:
    from .progress import progress_display
    from .report import format_experiment, write_reports
    from .report._files import FILES

    args.given_samples = args.samples is not None
    _settle_torch_module(args)
    if _is_tutorial_shaped(args):
        args.samples = 1000 if args.samples is None else args.samples
        return _compare_tutorial(args)
    _note_given(args)
    _settle_optimizer(args)
    runs = _own_run_maker(args)(args.seed)
    _check_own_runs(args, runs)
    if args.torch_path == "fast" and not all(r.fits_tutorial_kernels for r in runs):
        raise UsageError("--torch-path fast applies only to the tutorial's shape (Chain(RNN(1 => 1)), abs_sum, "
                         "batch 1, in order); this run always uses the plain path")
    args.torch_path = args.torch_path or "plain"
    args.torch_optimizer = args.torch_optimizer or "torch"
    args.reference_tanh = args.reference_tanh or "exact"
    _check_lr(args.lr, args.dtype)
    n = runs[0].data.n_train
    backends_max = len(BACKEND_NAMES) if args.backends == ("auto",) else len(args.backends)
    hidden = max(layer.hidden_size if hasattr(layer, "hidden_size") else layer.output_size
                 for layer in runs[0].model.layers)
    _check_resources(args.out, _limits.compare_memory(n, args.epochs, hidden, "lstm", len(runs), backends_max,
                                                      args.workers),
                     _limits.report_disk(runs[0].batches.steps_per_epoch, args.epochs, len(runs), backends_max),
                     f"--data {args.data} --epochs {args.epochs}")
    lock = _prepare_out(args.out, FILES)
    try:
        backends, skipped = _resolve_backends(args)
        _check_options_apply(args, backends)
        if "torch" in backends:
            _check_torch_equivalent(args)
        from .experiment import train_and_compare

        with progress_display(sys.stderr, quiet=args.quiet) as progress:
            experiment = train_and_compare(
                runs, backends, skipped=skipped, progress=progress, workers=args.workers,
                settings={"samples": runs[0].data.n_train, "model": runs[0].to_dict()["model"],
                          "torch_optimizer": args.torch_optimizer, "torch_path": args.torch_path,
                          "reference_tanh": args.reference_tanh})
            paths = _write(lambda: write_reports(experiment, args.out), args.out)
    finally:
        lock.release()
    _emit(format_experiment(experiment, verbose=args.verbose, terminal=sys.stdout))
    _emit("\nWrote " + ", ".join(str(p) for p in paths))
    return _verdict_exit(experiment.verdict)


def _compare_tutorial(args) -> int:
    from .experiment import run_experiment
    from .progress import progress_display
    from .report import format_experiment, write_reports
    from .report._files import FILES

    _note_given(args)
    _settle_options(args)
    _check_lr(args.lr, args.dtype)
    _check_optimizer(args.optimizer, args.dtype, args.samples * args.epochs)
    _quiet_libraries(args.quiet)
    runs = len(args.dtype) * (len(args.activation) if args.model == "rnn" else 1)
    backends_max = len(BACKEND_NAMES) if args.backends == ("auto",) else len(args.backends)
    _check_resources(args.out, _limits.compare_memory(args.samples, args.epochs, args.hidden, args.model, runs,
                                                      backends_max, args.workers),
                     _limits.report_disk(args.samples, args.epochs, runs, backends_max),
                     f"--samples {args.samples} --epochs {args.epochs} --model {args.model} --hidden {args.hidden}")
    lock = _prepare_out(args.out, FILES)
    try:
        backends, skipped = _resolve_backends(args)  # the report's header says which were skipped, and why
        _check_options_apply(args, backends)
        if "torch" in backends:
            _check_torch_equivalent(args)
        with progress_display(sys.stderr, quiet=args.quiet) as progress:  # stderr: stdout has only the report
            experiment = run_experiment(
                samples=args.samples, seed=args.seed, epochs=args.epochs, lr=args.lr, activations=args.activation,
                dtypes=args.dtype, backends=backends, skipped=skipped, progress=progress,
                options={"torch_optimizer": args.torch_optimizer, "torch_path": args.torch_path,
                         "reference_tanh": args.reference_tanh},
                model=args.model, hidden=args.hidden, workers=args.workers, optimizer=args.optimizer,
            )
            if progress is not None:
                progress.phase("report", f"writing the report files to {args.out}")
            paths = _write(lambda: write_reports(experiment, args.out), args.out)  # files first
            if progress is not None:
                progress.phase("report", f"written to {args.out}", finished=True)
    finally:
        lock.release()
    if not args.quiet:
        _say_training_warnings(experiment)
    _emit(format_experiment(experiment, verbose=args.verbose, terminal=sys.stdout))
    _emit("\nWrote " + ", ".join(str(p) for p in paths))
    return _verdict_exit(experiment.verdict)


def _sweep(args) -> int:
    from .progress import progress_display
    from .sweep import FILES, MAX_BATCH, format_sweep, run_sweep, write_sweep

    args.given_samples = args.samples is not None
    if not (_is_tutorial_shaped(args) and args.model == "rnn" and args.hidden == 1):
        return _sweep_runs(args)
    args.samples = 1000 if args.samples is None else args.samples
    _note_given(args)
    _settle_options(args)
    _check_lr(args.lr, args.dtype)
    _check_optimizer(args.optimizer, args.dtype, args.samples * args.epochs)
    _check_torch_equivalent(args)  # a sweep always runs torch
    _quiet_libraries(args.quiet)
    runs = len(args.activation) * len(args.dtype)
    what = f"--seeds {args.seeds} --samples {args.samples} --epochs {args.epochs}"
    _check_resources(args.out, _limits.sweep_memory(args.seeds, args.samples, args.epochs, runs, MAX_BATCH),
                     _limits.report_disk(1, args.seeds, runs, 8), what)
    lock = _prepare_out(args.out, FILES)
    try:
        if not args.quiet:
            steps = args.seeds * args.samples * args.epochs
            rule_name = args.optimizer.name if args.optimizer is not None else "Adam"
            print(f"sweep: {args.seeds} seeds x {runs} runs, {steps:,} {rule_name} steps per run and backend",
                  file=sys.stderr, flush=True)
        with progress_display(sys.stderr, quiet=args.quiet, unit="seeds") as progress:  # stderr, as compare's
            sweep = run_sweep(list(range(args.first_seed, args.first_seed + args.seeds)), args.samples, args.epochs,
                              args.lr, args.activation, args.dtype, torch_optimizer=args.torch_optimizer,
                              reference_tanh=args.reference_tanh, workers=args.workers, optimizer=args.optimizer,
                              progress=None if progress is None else progress.update)
        paths = _write(lambda: write_sweep(sweep, args.out), args.out)
    finally:
        lock.release()
    _emit(format_sweep(sweep))
    _emit("\nWrote " + ", ".join(str(p) for p in paths))
    return _verdict_exit(sweep.verdict)


def _sweep_run_maker(args):
    """``runs(seed)`` for a sweep that is not the tutorial's: the shorthand models on the sum task as
    ``compare`` runs them (``experiment.shorthand_runs``), anything else as compare's own runs (:func:`_own_run_maker`)."""
    if _is_tutorial_shaped(args):
        from .experiment import GATED, shorthand_runs
        from .optim import rule as make_rule

        args.samples = 1000 if args.samples is None else args.samples
        _settle_options(args)
        rule = args.optimizer if args.optimizer is not None else make_rule("Adam", eta=args.lr)
        activations = args.activation if args.model == "rnn" else (GATED,)
        return lambda seed: shorthand_runs(args.samples, seed, args.epochs, rule, args.model, args.hidden,
                                           activations, args.dtype)
    _settle_optimizer(args)
    return _own_run_maker(args)


def _sweep_runs(args) -> int:
    """``sweep`` with compare's run options beyond the tutorial's shape: every seed's runs as ``compare --seed S``
    describes them, torch (plain path) vs the reference, compared seed by seed (``sweep.sweep_runs``)."""
    from .progress import progress_display
    from .sweep import FILES, format_sweep, sweep_runs, write_sweep

    _note_given(args)
    if isinstance(args.model, Path) and args.data != "sum" and not args.shuffle:
        raise UsageError(f"--seeds: the weights file {str(args.model)!r} and the data file {args.data!r} are the same "
                         "for every seed, so every seed would train the same run; add --shuffle (a new order per "
                         "seed), give a Flux expression or a shorthand as --model, or use compare")
    runs_for = _sweep_run_maker(args)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    first = runs_for(seeds[0])  # every bad option is refused here, before anything is trained or written
    _check_own_runs(args, first)
    args.torch_optimizer = args.torch_optimizer or "torch"
    args.reference_tanh = args.reference_tanh or "exact"
    _check_lr(args.lr, args.dtype)
    _check_torch_equivalent(args)  # a sweep always runs torch
    _quiet_libraries(args.quiet)
    n = first[0].data.n_train
    hidden = max(layer.hidden_size if hasattr(layer, "hidden_size") else layer.output_size
                 for layer in first[0].model.layers)
    _check_resources(args.out, _limits.compare_memory(n, args.epochs, hidden, "lstm", len(first), 2, args.workers)
                     + args.seeds * len(first) * 4096,
                     _limits.report_disk(1, args.seeds, len(first), 8),
                     f"--seeds {args.seeds} --data {args.data} --epochs {args.epochs}")
    lock = _prepare_out(args.out, FILES)
    try:
        runs = first + [spec for seed in seeds[1:] for spec in runs_for(seed)]
        if not args.quiet:
            rule_name = first[0].rule.name
            print(f"sweep: {args.seeds} seeds x {len(first)} runs, {first[0].total_steps:,} {rule_name} steps per "
                  "seed, run and backend", file=sys.stderr, flush=True)
        with progress_display(sys.stderr, quiet=args.quiet, unit="seeds") as progress:
            # the maker's runs are consistent by construction (distinct seeds, one dtype and model per run name)
            sweep = sweep_runs(runs, torch_optimizer=args.torch_optimizer, reference_tanh=args.reference_tanh,
                               workers=args.workers, progress=None if progress is None else progress.update,
                               settings={"model_option": str(args.model) if isinstance(args.model, (str, Path))
                                         else args.model.to_flux()})
        paths = _write(lambda: write_sweep(sweep, args.out), args.out)
    finally:
        lock.release()
    _emit(format_sweep(sweep))
    _emit("\nWrote " + ", ".join(str(p) for p in paths))
    return _verdict_exit(sweep.verdict)


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


def _usable_standard_streams() -> None:
    """A closed stdout/stderr (``2>&-``) becomes /dev/null: the run still writes its report and exit code."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
            setattr(sys, name, open(fd, "w", closefd=False))


def _say(line: str) -> None:
    """One line to stderr; an error writing it (a full or closed device) must not change the exit code."""
    try:
        print(one_line(line, 1000), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def main(argv=None) -> int:
    """The ``fluxparity`` command; stdout and stderr that refuse text (``/dev/full``, a closed pipe) change
    neither the files written nor the exit code (:mod:`fluxparity._streams`)."""
    _usable_standard_streams()
    with forgiving_standard_streams():
        return _main(argv)


def _main(argv) -> int:
    global _signalled
    _signalled = 0
    args = build_parser().parse_args(argv)
    command = getattr(args, "handler", None) or {"compare": _compare, "sweep": _sweep, "doctor": _doctor,
                                                 "setup-julia": _setup_julia}[args.command]
    import threading

    in_main_thread = threading.current_thread() is threading.main_thread()  # only there can handlers be set
    handlers = {signal.SIGINT: _raise_interrupted, **{s: _raise_terminated for s in _HANDLED_SIGNALS}}
    previous = {s: signal.signal(s, h) for s, h in handlers.items()} if in_main_thread else {}
    try:
        try:
            return command(args)
        except Exception as exc:
            if not _signalled:
                raise
            # The signal's exception was replaced by another one raised while the run stopped (or swallowed
            # where Python discards exceptions, e.g. in a finalizer): the signal still decides the outcome.
            _say(f"fluxparity {args.command}: while stopping: {type(exc).__name__}: {exc}")
            raise (KeyboardInterrupt() if _signalled == signal.SIGINT else Terminated(_signalled)) from exc
    except UsageError as exc:
        _say(f"fluxparity {args.command}: error: {exc}")
        return EXIT_USAGE
    except ModuleError as exc:  # the user's own module (compare --torch-module) failed or does not fit: their input
        _say(f"fluxparity {args.command}: error: {exc}" + (" (a mapping to edit is printed on stdout; pass it with "
                                                          "--mapping FILE)" if exc.template else ""))
        if exc.template:
            _emit(exc.template)
        return EXIT_USAGE
    except BackendError as exc:
        _say(f"fluxparity {args.command}: a backend failed: {exc}")
        return EXIT_BACKEND_FAILED
    except Terminated as exc:
        _say(f"terminated ({exc})")
        return 128 + exc.signum
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:
        _say(f"fluxparity {args.command}: error: out of memory (try {_MEMORY_HINTS.get(args.command, 'a smaller run')})")
        return EXIT_BACKEND_FAILED
    except Exception as exc:  # noqa: BLE001 — anything unforeseen: one line and exit 3, never a traceback and 1
        where = ""
        if os.environ.get("FLUXPARITY_TRACEBACK"):
            import traceback

            where = "\n" + traceback.format_exc()
        text = " ".join(str(exc).split())
        _say(f"fluxparity {args.command}: unexpected error: {type(exc).__name__}: {text}"
             f" (set FLUXPARITY_TRACEBACK=1 for the traceback){where}")
        return EXIT_BACKEND_FAILED
    finally:
        for s, handler in previous.items() if not _signalled else ():
            signal.signal(s, handler)
        _flush_or_silence()


# What makes each command's run smaller, for the out-of-memory message: that command's own options.
_MEMORY_HINTS = {
    "compare": "fewer --samples or --epochs, or a smaller --hidden",
    "sweep": "fewer --seeds, --samples or --epochs, or --workers 1",
    "record": "a smaller --length, --batch or --steps, or fewer and smaller --layers",
    "check": "a smaller golden file (fluxparity record --length/--batch/--steps)",
}


def _flush_or_silence() -> None:
    """Flush stdout now; if it cannot take the text (a full device), silence it so exit has nothing to report."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())

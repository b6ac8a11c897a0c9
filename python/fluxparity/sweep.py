"""Seed sweeps: the tutorial's comparison (torch vs reference) repeated over many seeds, cheaply.

Each seed fixes its own data and initial weights exactly as ``fluxparity compare --seed S`` does
(``seeds_for`` + ``generate_dataset`` + ``tutorial_chain``). The reference trains once per seed (compiled,
milliseconds); PyTorch trains every seed of an (activation, dtype) run at once through the batched fast
path (``backends/pytorch_fast.py``), whose float64 trajectories are the plain ``torch`` backend's to the
last bit (float32 too). Each seed's pair is then compared by ``compare_results``: the very checks
``compare`` reports. The (activation, dtype) runs are independent and go to two spawned worker processes.

    fluxparity sweep --seeds 64      # seeds 0..63: sweep.json, sweep.csv, sweep.png in ./fluxparity-sweep

Any other run (a user's model, data, loss, batches: ``compare``'s options) sweeps through :func:`sweep_runs`,
which takes :class:`~fluxparity.run.RunSpec` descriptions as :func:`fluxparity.train_and_compare` does and
trains each in the plain torch backend and the reference (in ``workers`` processes), compared as above.
"""

from __future__ import annotations

import csv
import json
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .backends.base import BackendError, RunResult
from .compare import RTOL_FLOAT32, RTOL_FLOAT64, Parity, compare_results
from .data import generate_dataset
from .experiment import ACTIVATIONS, DTYPES, scales_for
from .models import flux_expression, tutorial_chain
from .optim import Rule, rule as make_rule, to_dict as rule_to_dict
from .run import DEFAULT_LR, RunSpec, run_list
from .parallel import DEFAULT_WORKERS, MIN_STEPS_FOR_WORKERS, relayed_progress, worker_progress
from .report._json import finite_json

FILES = ("sweep.json", "sweep.csv", "sweep.png")
FORMAT = "fluxparity-sweep/2"  # 2: every seed row has "run" and "model"; settings has "steps" (docs/report-format.md)
BACKENDS = ("torch", "reference")  # compared as "torch vs reference", the pair compare reports
MAX_BATCH = 64  # seeds per batched torch computation (memory grows with the batch; time hardly does)

# progress(what, done, total): what = "torch identity/float64" etc., done/total in seeds (done may be a
# fraction: torch trains a batch of seeds at once and reports each epoch). From this process's threads, a
# worker's progress too (through a queue, fluxparity.parallel.relayed_progress).
SweepProgress = Callable[[str, float, int], None]


def _worker_sweep_progress() -> Optional[SweepProgress]:
    """In a pool worker started under ``relayed_progress``: a SweepProgress that reports to the parent."""
    if worker_progress("") is None:
        return None
    reporters: dict = {}

    def report(what: str, done: float, total: int) -> None:
        if what not in reporters:
            reporters[what] = worker_progress(what)
        reporters[what](done, total)

    return report


@dataclass
class SeedResult:
    """One seed of one run (the tutorial's: an (activation, dtype) pair): what compare would say about torch vs
    reference."""

    seed: int
    activation: Optional[str]  # the tutorial's identity/tanh, "gated", or None (the activations are in the model)
    dtype: str
    verdict: str
    step_loss_max_rel: float  # the step_losses check's max |a-b| / max(|a|, |b|)
    step_loss_max_abs: float
    step_loss_max_label_scaled: float  # max |a-b| / |label|: the measure compare's rule bounds by rtol
    first_divergent_step: Optional[int]  # first step beyond the rule (float32: the separation), or None
    test_loss_after: dict  # backend -> final test-loss sum
    failed_checks: list
    parity: Parity = field(repr=False)
    results: dict = field(repr=False, default_factory=dict)  # backend -> RunResult
    run: Optional[str] = None  # the run's name; None: the tutorial's "<activation>/<dtype>"
    model: str = ""  # the model's Flux expression (architecture only), e.g. "Chain(RNN(1 => 1))"

    @property
    def label(self) -> str:
        return self.run or f"{self.activation}/{self.dtype}"

    def to_dict(self) -> dict:
        return {"seed": self.seed, "run": self.label, "model": self.model, "activation": self.activation,
                "dtype": self.dtype, "verdict": self.verdict,
                "step_loss_max_rel": self.step_loss_max_rel, "step_loss_max_abs": self.step_loss_max_abs,
                "step_loss_max_label_scaled": self.step_loss_max_label_scaled,
                "first_divergent_step": self.first_divergent_step, "test_loss_after": dict(self.test_loss_after),
                "failed_checks": list(self.failed_checks), "checks": [c.to_dict() for c in self.parity.checks]}


@dataclass
class Sweep:
    settings: dict
    rows: list  # SeedResult, grouped by run, seeds in order
    seconds: dict  # "torch identity/float64" -> wall seconds of that training

    @property
    def verdict(self) -> str:
        return "fail" if any(r.verdict == "fail" for r in self.rows) else "pass"

    def runs(self) -> list[str]:
        return list(dict.fromkeys(r.label for r in self.rows))

    def summary(self) -> dict:
        """Per run: seeds passing, median and worst step-loss difference, divergence, test-loss difference."""
        out = {}
        for label in self.runs():
            rows = [r for r in self.rows if r.label == label]
            rel = np.array([r.step_loss_max_rel for r in rows])
            worst = rows[int(np.argmax(rel))]
            diverged = [r.first_divergent_step for r in rows if r.first_divergent_step is not None]
            test = np.array([abs(r.test_loss_after["torch"] - r.test_loss_after["reference"])
                             / max(abs(r.test_loss_after["torch"]), abs(r.test_loss_after["reference"]), 1e-300)
                             for r in rows])
            out[label] = {
                "seeds": len(rows),
                "passed": sum(r.verdict == "pass" for r in rows),
                "failed_seeds": [r.seed for r in rows if r.verdict == "fail"],
                "step_loss_max_rel_median": float(np.median(rel)),
                "step_loss_max_rel_worst": float(rel.max()),
                "step_loss_max_label_scaled_median": float(np.median([r.step_loss_max_label_scaled for r in rows])),
                "step_loss_max_label_scaled_worst": float(max(r.step_loss_max_label_scaled for r in rows)),
                "worst_seed": worst.seed,
                "diverged_seeds": len(diverged),
                "first_divergent_step_earliest": min(diverged) if diverged else None,
                "first_divergent_step_median": float(np.median(diverged)) if diverged else None,
                "test_loss_after_rel_diff_median": float(np.median(test)),
                "test_loss_after_rel_diff_worst": float(test.max()),
            }
        return out

    def to_dict(self) -> dict:
        """JSON-ready; non-finite numbers (a diverged run, an unbounded tolerance ratio) become null."""
        return finite_json({"format": FORMAT, "settings": self.settings, "verdict": self.verdict,
                "summary": self.summary(), "seconds": self.seconds, "seeds": [r.to_dict() for r in self.rows]})


def _seed_list(seeds: Union[int, Sequence[int]]) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive number of seeds, got {seeds!r}")
        return list(range(int(seeds)))
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    for s in seeds:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0:
            raise ValueError(f"every seed must be a non-negative integer, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must not repeat")
    return [int(s) for s in seeds]


def _validate(samples, epochs, lr, activations, dtypes, torch_optimizer, reference_tanh, optimizer=None) -> None:
    if not isinstance(samples, (int, np.integer)) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    _SweepRun("identity", "float64", epochs, lr, optimizer)  # validates epochs, lr and the rule
    for a in activations:
        if a not in ACTIVATIONS:
            raise ValueError(f"activation {a!r} is not one of {', '.join(ACTIVATIONS)}")
    for d in dtypes:
        if d not in DTYPES:
            raise ValueError(f"dtype {d!r} is not one of {', '.join(DTYPES)}")
    if not activations or not dtypes:
        raise ValueError("a sweep needs at least one activation and one dtype")
    if torch_optimizer not in ("torch", "optimisers"):
        raise ValueError(f"torch_optimizer must be 'torch' or 'optimisers', got {torch_optimizer!r}")
    if reference_tanh not in ("exact", "fast"):
        raise ValueError(f"reference_tanh must be 'exact' or 'fast', got {reference_tanh!r}")
    if optimizer is not None and torch_optimizer == "torch":
        from .optim import torch_mapping

        torch_mapping(optimizer)  # NoTorchEquivalent (a ValueError saying why) before any training


def _inputs(seed_list: Sequence[int], samples: int) -> list:
    """Each seed's data and weight seed, exactly as ``compare --seed S`` draws them (the initial Chain is
    drawn from the weight seed with each run's activation: ``tutorial_chain``)."""
    from .experiment import seeds_for

    inputs = []
    for s in seed_list:
        data_seed, param_seed = seeds_for(s)
        inputs.append((generate_dataset(int(samples), data_seed), param_seed))
    return inputs


@dataclass(frozen=True)
class _SweepRun:
    """One (activation, dtype) run of the sweep: the tutorial's description for every seed."""

    activation: str
    dtype: str
    epochs: int
    lr: float = DEFAULT_LR
    optimizer: Optional[Rule] = None

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, (int, np.integer)) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer is not None and self.lr != DEFAULT_LR:
            raise ValueError(f"lr {self.lr!r} does not apply with optimizer {self.optimizer}: the rule holds its own "
                             "eta; give one or the other")

    @property
    def rule(self) -> Rule:
        return self.optimizer if self.optimizer is not None else make_rule("Adam", eta=self.lr)

    @property
    def is_adam(self) -> bool:
        return self.rule.name == "Adam"

    @property
    def label(self) -> str:
        return f"{self.activation}/{self.dtype}"

    def spec(self, data, param_seed, seed: int) -> RunSpec:
        return RunSpec(tutorial_chain(param_seed, self.activation), data, loss="abs_sum", rule=self.rule,
                       dtype=self.dtype, epochs=self.epochs, seed=seed, label=self.label)


def _sweep_run(config: _SweepRun, seed_list: Sequence[int], samples: int, inputs: Optional[list],
               torch_optimizer: str, reference_tanh: str, batch: int, keep_results: bool,
               progress: Optional[SweepProgress] = None) -> tuple[list, dict]:
    """One (activation, dtype) run over every seed: train both, compare each seed. Returns (rows, seconds).

    Module-level so that a spawned worker can run it; a worker draws the inputs itself (``inputs=None``:
    cheaper than pickling thousands of small arrays, and the same numbers) and reports its progress to the
    parent when it was started under ``relayed_progress``.
    """
    if progress is None:
        progress = _worker_sweep_progress()
    from .backends.pytorch import TorchBackend
    from .backends.pytorch_fast import train_batch
    from .backends.reference import ReferenceBackend

    if inputs is None:
        inputs = _inputs(seed_list, samples)
    label, seconds, n = config.label, {}, len(seed_list)
    report = (lambda what, done, total: None) if progress is None else progress
    reference = ReferenceBackend(tanh=reference_tanh)
    start = time.perf_counter()
    ref_results = []
    report(f"reference {label}", 0, n)
    for s, (data, param_seed) in zip(seed_list, inputs):
        try:
            ref_results.append(reference.train(config.spec(data, param_seed, s)))
        except Exception as exc:
            raise BackendError(f"backend 'reference' failed on {label}, seed {s}: {type(exc).__name__}: {exc}") from exc
        report(f"reference {label}", len(ref_results), n)
    seconds[f"reference {label}"] = time.perf_counter() - start
    start = time.perf_counter()
    torch_results: list[RunResult] = []
    report(f"torch {label}", 0, n)
    for lo in range(0, len(inputs), batch):
        chunk = [config.spec(data, param_seed, s)
                 for s, (data, param_seed) in zip(seed_list[lo:lo + batch], inputs[lo:lo + batch])]

        def epochs_done(done: int, total: int, _lo=lo, _k=len(chunk)) -> None:  # seeds of the batch, in part
            if done < total:
                report(f"torch {label}", _lo + _k * done / total, n)

        try:
            if config.is_adam:
                torch_results.extend(train_batch(chunk, torch_optimizer, epochs_done))
            else:  # the fast path spells out Adam only: any other rule trains on the plain path, seed by seed
                torch_results.extend(TorchBackend(torch_optimizer, "plain").train(run) for run in chunk)
        except Exception as exc:
            path = "fast" if config.is_adam else "plain"
            raise BackendError(f"backend 'torch' ({path} path) failed on {label}: {type(exc).__name__}: {exc}") from exc
        report(f"torch {label}", len(torch_results), n)
    seconds[f"torch {label}"] = time.perf_counter() - start
    rows = [_seed_row(config.spec(data, param_seed, s), {"torch": t_res, "reference": r_res}, config.activation,
                      None, keep_results)
            for s, (data, param_seed), t_res, r_res in zip(seed_list, inputs, torch_results, ref_results)]
    return rows, seconds


def _seed_row(spec: RunSpec, results: dict, activation: Optional[str], run: Optional[str],
              keep_results: bool) -> SeedResult:
    """One seed's comparison of torch vs reference, by ``compare_results`` with compare's scales. The
    step-loss difference is also scaled by each step's natural magnitude (``RunSpec.scales``: for the tutorial
    the step's |label|), the measure compare's rule bounds by rtol."""
    scales = scales_for(spec)
    parity = compare_results(spec.dtype, results, scales)
    step = next(c for c in parity.checks if c.quantity == "step_losses")
    scaled = np.abs(results["torch"].step_losses - results["reference"].step_losses) / np.abs(scales.step)
    return SeedResult(
        seed=int(spec.seed), activation=activation, dtype=spec.dtype, verdict=parity.verdict,
        step_loss_max_rel=step.max_rel, step_loss_max_abs=step.max_abs,
        step_loss_max_label_scaled=float(scaled.max()),
        first_divergent_step=step.first_divergent_step,
        test_loss_after={k: float(v.test_loss_after) for k, v in results.items()},
        failed_checks=[c.quantity for c in parity.failed()], parity=parity,
        results=results if keep_results else {}, run=run, model=flux_expression(spec.model))


def run_sweep(seeds: Union[int, Sequence[int]], samples: int = 1000, epochs: int = 50, lr: float = 1e-3,
              activations: Sequence[str] = ACTIVATIONS, dtypes: Sequence[str] = DTYPES, *,
              torch_optimizer: str = "torch", reference_tanh: str = "exact", batch: int = MAX_BATCH,
              keep_results: bool = False, workers: int = DEFAULT_WORKERS, min_steps: int = MIN_STEPS_FOR_WORKERS,
              progress: Optional[SweepProgress] = None, optimizer: Optional[Rule] = None) -> Sweep:
    """Train and compare torch vs reference for every seed (an int N means seeds 0..N-1) and run.

    The (activation, dtype) runs are independent: with ``workers > 1`` and runs of at least ``min_steps``
    Adam steps (samples x epochs) they go to that many spawned worker processes (same results, same
    progress calls, from a thread of this process). ``keep_results`` keeps each seed's two RunResults on its row
    (memory: two step-loss arrays per row). ``optimizer``: an Optimisers.jl rule instead of ``Adam(lr)`` (then
    ``lr`` stays at its default); a rule other than Adam trains torch on the plain path.
    """
    seed_list = _seed_list(seeds)
    activations, dtypes = tuple(activations), tuple(dtypes)
    _validate(samples, epochs, lr, activations, dtypes, torch_optimizer, reference_tanh, optimizer)
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    configs = [_SweepRun(a, d, epochs, lr, optimizer)
               for a in activations for d in dtypes]
    options = (torch_optimizer, reference_tanh, batch, keep_results)
    outcomes: list = [None] * len(configs)
    if workers > 1 and len(configs) > 1 and samples * epochs >= min_steps:
        from .parallel import result_of, spawn_pool, stop_pool

        # slowest first (tanh and float32 take more torch ops per step), so that the workers end together
        order = sorted(range(len(configs)), key=lambda i: (configs[i].activation != "tanh", configs[i].dtype != "float32"))
        with relayed_progress(progress) as pool_progress, \
                spawn_pool(min(workers, len(configs)), **pool_progress) as pool:  # spawned: never fork torch
            try:  # a signal may come while submitting, too: the workers must then be stopped, not awaited
                futures = {i: pool.submit(_sweep_run, configs[i], seed_list, samples, None, *options) for i in order}
                for i in order:
                    outcomes[i] = result_of(futures[i])  # wakes for signals other threads received
            except BaseException:
                stop_pool(pool)
                raise
    else:
        inputs = _inputs(seed_list, samples)
        for i, config in enumerate(configs):
            outcomes[i] = _sweep_run(config, seed_list, samples, inputs, *options, progress=progress)
    rows, seconds = [], {}
    for run_rows, run_seconds in outcomes:
        rows.extend(run_rows)
        seconds.update(run_seconds)
    rule = configs[0].rule
    settings = dict(seeds=seed_list, samples=int(samples), epochs=epochs, steps=int(samples) * epochs,
                    lr=lr if optimizer is None else None,
                    activations=list(activations), dtypes=list(dtypes), backends=list(BACKENDS),
                    torch_optimizer=torch_optimizer, reference_tanh=reference_tanh,
                    torch_path="fast (batched; identical to the plain path)" if rule.name == "Adam" else "plain",
                    optimizer=rule_to_dict(rule))
    return Sweep(settings, rows, seconds)


def _run_name(spec: RunSpec) -> str:
    """A run's name in a sweep: its label, or, for the default label (the dtype), ``<Flux expression>/<dtype>``."""
    return f"{flux_expression(spec.model)}/{spec.dtype}" if spec.label == spec.dtype else spec.label


def sweep_runs(runs: Sequence[RunSpec], *, torch_optimizer: str = "torch", reference_tanh: str = "exact",
               keep_results: bool = False, workers: int = DEFAULT_WORKERS, min_steps: int = MIN_STEPS_FOR_WORKERS,
               progress: Optional[SweepProgress] = None, settings: Optional[dict] = None) -> Sweep:
    """Train every run description in torch (the plain ``nn.Module`` path) and in the reference, and compare
    each pair as ``compare`` does: the sweep of any run, as :func:`fluxparity.train_and_compare` is the
    comparison of any run.

    ``runs``: :class:`~fluxparity.run.RunSpec` s, one per seed and run, each holding its seed's data,
    initial weights and (``shuffle``) permutation seed ``RunSpec.seed``; ``fluxparity sweep`` builds them as
    ``compare --seed S`` does for every S. Rows group by run name: the RunSpec's ``label``, or for the default
    label (the dtype) ``"<Flux expression>/<dtype>"`` (e.g. ``"Chain(LSTM(3 => 4), Dense(4 => 2))/float64"``);
    within a run, seeds must not repeat, and the dtype and model architecture must agree. ``settings`` adds to
    (or replaces) what the sweep records about the runs. The trainings go to ``workers`` spawned processes
    when runs have at least ``min_steps`` steps (``fluxparity.parallel.run_runs_concurrently``: the same
    results). ``progress(what, done, total)`` counts seeds per ``"torch <run>"`` / ``"reference <run>"``.
    Raises ValueError/TypeError before any training for an inconsistent list.
    """
    from dataclasses import replace

    from .backends.pytorch import TorchBackend
    from .backends.reference import ReferenceBackend
    from .parallel import run_runs_concurrently

    runs = run_list(runs)
    if torch_optimizer not in ("torch", "optimisers"):
        raise ValueError(f"torch_optimizer must be 'torch' or 'optimisers', got {torch_optimizer!r}")
    if reference_tanh not in ("exact", "fast"):
        raise ValueError(f"reference_tanh must be 'exact' or 'fast', got {reference_tanh!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    names = [_run_name(r) for r in runs]
    groups: dict = {}
    for name, r in zip(names, runs):
        groups.setdefault(name, []).append(r)
    for name, group in groups.items():
        seeds = [int(r.seed) for r in group]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"runs: run {name!r} has seed {next(s for s in seeds if seeds.count(s) > 1)} twice")
        kinds = {(r.dtype, flux_expression(r.model)) for r in group}
        if len(kinds) > 1:
            raise ValueError(f"runs: run {name!r} mixes dtypes or models ({', '.join(sorted(map(str, kinds)))}); "
                             "give each run its own label")
    if torch_optimizer == "torch":
        from .optim import torch_mapping

        for rule in {id(r.rule): r.rule for r in runs}.values():
            torch_mapping(rule)  # NoTorchEquivalent (a ValueError saying why) before any training
    # Each training gets its own label ("<run> seed <s>"), so that progress can tell the seeds apart.
    tasks = [replace(r, label=f"{name} seed {r.seed}") for name, r in zip(names, runs)]
    where = {t.label: (name, len(groups[name])) for name, t in zip(names, tasks)}
    fraction: dict = {}  # (backend, training label) -> its part done
    seeds_done: dict = {}  # (backend, run name) -> the sum of its trainings' parts

    def relay(backend: str, label: str, done: int, total: int) -> None:
        name, n = where[label]
        part = min(done / total, 1.0) if total else 1.0
        key = (backend, name)
        seeds_done[key] = seeds_done.get(key, 0.0) + part - fraction.get((backend, label), 0.0)
        fraction[(backend, label)] = part
        progress(f"{backend} {name}", min(round(seeds_done[key], 9), n), n)  # float sums: 3, not 2.9999999

    backends = {"torch": TorchBackend(torch_optimizer, "plain"), "reference": ReferenceBackend(tanh=reference_tanh)}
    results = run_runs_concurrently(tasks, backends, workers=workers, min_steps=min_steps,
                                    progress=None if progress is None else relay)
    seconds: dict = {}  # "torch <run>" -> the seeds' training seconds, summed (each backend's own clock)
    rows_of: dict = {name: [] for name in groups}
    for name, spec, result in zip(names, runs, results):
        for b in BACKENDS:
            seconds[f"{b} {name}"] = seconds.get(f"{b} {name}", 0.0) + float(result[b].seconds)
        rows_of[name].append(_seed_row(spec, {b: result[b] for b in BACKENDS}, spec.notes.get("activation"), name,
                                       keep_results))
    rows = [row for name in groups for row in rows_of[name]]
    first = runs[0]
    rule = first.rule
    recorded = dict(seeds=list(dict.fromkeys(int(r.seed) for r in runs)), samples=int(first.data.n_train),
                    epochs=int(first.epochs), steps=int(first.total_steps), lr=first.lr,
                    activations=list(dict.fromkeys(r.notes.get("activation") for r in runs)),
                    dtypes=list(dict.fromkeys(r.dtype for r in runs)), backends=list(BACKENDS),
                    torch_optimizer=torch_optimizer, reference_tanh=reference_tanh, torch_path="plain",
                    optimizer=rule_to_dict(rule), runs=list(groups),
                    models=list(dict.fromkeys(flux_expression(r.model) for r in runs)), data=first.data.source,
                    loss=first.loss, readout=first.readout, batch_size=int(first.batch_size),
                    shuffle=bool(first.shuffle))
    return Sweep({**recorded, **(settings or {})}, rows, seconds)


# ---------------------------------------------------------------------------------------------- output


def _optimizer_words(settings: dict) -> str:
    """", optimizer <rule>" when a rule replaced the tutorial's Adam(lr), else nothing (the header as before)."""
    if settings.get("lr") is None and settings.get("optimizer"):
        from .optim import from_dict

        return f", optimizer {from_dict(settings['optimizer'])}"
    return ""


def _run_words(settings: dict) -> str:
    """", data <source>, loss <loss>, batch <n>[, shuffled]" for a sweep that is not the tutorial's."""
    if "data" not in settings:
        return ""
    shuffled = ", shuffled each epoch" if settings.get("shuffle") else ""
    return f", data {settings['data']}, loss {settings['loss']}, batch {settings['batch_size']}{shuffled}"


def format_sweep(sweep: Sweep) -> str:
    width = max([16, *map(len, sweep.runs())])
    header = (f"{'run':{width}s} {'seeds':>5s} {'pass':>5s} {'median rel':>10s} {'worst rel':>10s} {'worst seed':>10s}"
              f" {'worst |d|/label':>15s}"
              f" {'diverged':>8s} {'earliest div':>12s}  failed seeds")
    lines = [f"Sweep: torch vs reference, {len(sweep.settings['seeds'])} seeds, "
             f"{sweep.settings['samples']} samples x {sweep.settings['epochs']} epochs{_optimizer_words(sweep.settings)}"
             f"{_run_words(sweep.settings)}",
             header, "-" * len(header)]
    for label, s in sweep.summary().items():
        earliest = "-" if s["first_divergent_step_earliest"] is None else str(s["first_divergent_step_earliest"])
        failed = ", ".join(map(str, s["failed_seeds"][:12])) + (" ..." if len(s["failed_seeds"]) > 12 else "")
        lines.append(f"{label:{width}s} {s['seeds']:5d} {s['passed']:5d} {s['step_loss_max_rel_median']:10.2e} "
                     f"{s['step_loss_max_rel_worst']:10.2e} {s['worst_seed']:10d} "
                     f"{s['step_loss_max_label_scaled_worst']:15.2e} {s['diverged_seeds']:8d} "
                     f"{earliest:>12s}  {failed or '-'}")
    scale = "|label|" if "data" not in sweep.settings else "the step's scale"
    lines.append(f"Verdict: {sweep.verdict.upper()}. Step losses: rel = max |a-b|/max(|a|,|b|); |d|/label = "
                 f"max |a-b|/{scale} (what compare's rule bounds); divergence: first step beyond that rule.")
    return "\n".join(lines)


CSV_COLUMNS = ("run", "model", "seed", "activation", "dtype", "verdict", "step_loss_max_rel", "step_loss_max_abs",
               "step_loss_max_label_scaled",
               "first_divergent_step", "test_loss_after_torch", "test_loss_after_reference", "failed_checks")


def write_sweep_csv(sweep: Sweep, path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in sweep.rows:
            writer.writerow([r.label, r.model, r.seed, "" if r.activation is None else r.activation, r.dtype, r.verdict, repr(r.step_loss_max_rel),
                             repr(r.step_loss_max_abs), repr(r.step_loss_max_label_scaled), "" if r.first_divergent_step is None else r.first_divergent_step,
                             repr(r.test_loss_after["torch"]), repr(r.test_loss_after["reference"]),
                             ";".join(r.failed_checks)])


def plot_sweep(sweep: Sweep, path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    floor = 1e-18  # exact agreement, drawn below float64's resolution
    labels = sweep.runs()
    fig, axes = plt.subplots(2, len(labels), figsize=(4.2 * len(labels), 6.5), squeeze=False)
    n_steps = sweep.settings.get("steps", sweep.settings["samples"] * sweep.settings["epochs"])
    for col, label in enumerate(labels):
        rows = [r for r in sweep.rows if r.label == label]
        seeds = np.array([r.seed for r in rows])
        rel = np.maximum([r.step_loss_max_label_scaled for r in rows], floor)
        ok = np.array([r.verdict == "pass" for r in rows])
        top, bottom = axes[0, col], axes[1, col]
        top.scatter(seeds[ok], rel[ok], s=14, color="tab:green", label="pass")
        top.scatter(seeds[~ok], rel[~ok], s=18, color="tab:red", marker="x", label="fail")
        top.axhline(RTOL_FLOAT64 if rows[0].dtype == "float64" else RTOL_FLOAT32, color="grey", ls="--", lw=0.8,
                    label="compare's rtol")
        top.set_yscale("log")
        top.set_ylim(bottom=floor / 3)
        top.set_title(textwrap.fill(label, 40), fontsize=9 if len(label) > 24 else None)
        top.set_ylabel("step losses: max |a-b| / |label|" if "data" not in sweep.settings
                       else "step losses: max |a-b| / step scale")
        top.xaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        top.grid(True, which="both", alpha=0.3)
        top.legend(fontsize=7)
        div = np.array([n_steps if r.first_divergent_step is None else r.first_divergent_step for r in rows])
        never = div == n_steps
        bottom.scatter(seeds[~never], div[~never], s=14, color="tab:orange", label="first divergent step")
        bottom.scatter(seeds[never], div[never], s=14, color="tab:blue", marker="^", label="never (drawn at end)")
        bottom.set_ylim(-0.03 * n_steps, 1.05 * n_steps)
        bottom.set_xlabel("seed")
        bottom.set_ylabel("step")
        bottom.grid(True, alpha=0.3)
        bottom.legend(fontsize=7)
    fig.suptitle("torch vs reference over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_sweep(sweep: Sweep, out_dir) -> list[Path]:
    """sweep.json, sweep.csv and sweep.png, rendered beside ``out_dir`` and swapped in as one folder."""
    from .report._files import publish_folder

    def render(folder: Path) -> None:
        with open(folder / "sweep.json", "w") as f:
            json.dump(sweep.to_dict(), f, allow_nan=False)
        write_sweep_csv(sweep, folder / "sweep.csv")
        plot_sweep(sweep, folder / "sweep.png")

    return publish_folder(out_dir, FILES, render)

"""Train run descriptions in several backends on identical inputs and collect what they measured.

:func:`run_experiment` builds the runs from command-line-shaped settings (the tutorial's shorthands, or a
model, data and loss of the user's) and trains them; :func:`train_and_compare` (``fluxparity.compare_training``)
takes :class:`~fluxparity.run.RunSpec` descriptions directly.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Mapping, Optional, Sequence

import numpy as np

from .backends import RunResult
from .compare import NOTHING_COMPARED, OUTCOME_STEPS, Parity, Scales, adam_jitter, compare_results, \
    outcome_not_judged_because
from .data import Dataset, generate_dataset
from .models import Chain, init_chain, tutorial_chain
from .optim import Rule, rule as make_rule, to_dict as rule_to_dict
from .parallel import DEFAULT_WORKERS, ExperimentProgress, run_runs_concurrently
from .run import DEFAULT_LR, RunSpec, run_list

ACTIVATIONS = ("identity", "tanh")  # the tutorial's two experiments
DTYPES = ("float32", "float64")
MODELS = ("rnn", "lstm", "gru", "gruv3")  # the shorthands: <model>(1 => hidden) on the sum task
# Gated cells have fixed nonlinearities (sigmoid gates, tanh candidate); their runs are labelled "gated".
GATED = "gated"


@dataclass
class Run:
    """One trained run: its description, every backend's result and their comparison."""

    config: RunSpec  # the description every backend trained
    results: dict[str, RunResult]
    parity: Parity

    @property
    def initial_params(self) -> Chain:
        """float64, the same numbers for every backend."""
        return self.config.model


@dataclass
class Experiment:
    settings: dict  # seed, epochs, backends, dtypes, model, data, loss, batch size, optimizer, options
    data: Dataset
    runs: list[Run]
    skipped: dict[str, str] = field(default_factory=dict)  # backend -> why it was not run
    versions: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """"fail" if any judged check failed; "nothing compared" if no check was judged at all (one backend
        ran, or none): that is not a pass; else "pass"."""
        if any(r.parity.verdict == "fail" for r in self.runs):
            return "fail"
        if not any(c.judged for r in self.runs for c in r.parity.checks):
            return NOTHING_COMPARED
        return "pass"


def seeds_for(seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """Independent streams for the data and the initial weights, both fixed by one user-facing seed
    (the shuffle permutations use a third: ``fluxparity.run.shuffle_seed``)."""
    data_seed, param_seed = np.random.SeedSequence(seed).spawn(2)
    return data_seed, param_seed


def shorthand_chain(model: str, hidden: int, activation: str, param_seed) -> Chain:
    """The initial weights of a shorthand run on the sum task, drawn from ``param_seed``: ``rnn`` with hidden 1
    is the tutorial's ``Chain(RNN(1 => 1, σ))``; any other is ``Chain(<model>(1 => hidden), Dense(hidden => 1))``
    (cell drawn first, then the Dense). The same numbers for every dtype and backend."""
    if model not in MODELS:
        raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
    if model == "rnn" and hidden == 1:
        return tutorial_chain(param_seed, activation)
    cell_activation = "tanh" if activation == GATED else activation
    return init_chain(1, [(model, hidden, cell_activation)], [(1,)], seed=param_seed, dtype=np.float64)


def shorthand_label(model: str, hidden: int, activation: str, dtype: str) -> str:
    if model == "rnn" and hidden == 1:
        return f"{activation}/{dtype}"
    return f"{model}-h{hidden}/{activation}/{dtype}"


def shorthand_runs(samples: int, seed: int, epochs: int, rule: Rule, model: str, hidden: int,
                   activations: Sequence[str], dtypes: Sequence[str]) -> list[RunSpec]:
    """The run descriptions of ``compare --seed seed`` for a shorthand model on the sum task: one per
    (activation, dtype), all on the data and initial weights ``seed`` draws (``seeds_for``); ``abs_sum``,
    batch 1, in order. Gated models take ``activations = ("gated",)``."""
    data_seed, param_seed = seeds_for(seed)
    data = generate_dataset(samples, data_seed)
    for activation in activations:
        allowed = ACTIVATIONS if model == "rnn" else (GATED,)
        if activation not in allowed:
            raise ValueError(f"activation {activation!r} is not one of {', '.join(allowed)} for {model}")
    return [RunSpec(shorthand_chain(model, hidden, activation, param_seed), data, loss="abs_sum", rule=rule,
                    dtype=dtype, epochs=epochs, seed=seed, label=shorthand_label(model, hidden, activation, dtype),
                    notes={"activation": activation, "model": model, "hidden": hidden})
            for activation in activations for dtype in dtypes]


def scales_for(run: RunSpec) -> Scales:
    """The comparison's scales for ``run`` (``RunSpec.scales``) and, for a run trained with Adam on the sum
    task, the float32 outcome tolerance of ``OUTCOME_STEPS`` Adam steps of jitter (judged only for the
    tutorial's shape: :attr:`RunSpec.outcome_tolerance_derived`)."""
    s = run.scales()
    common = dict(step=s["step"], train=s["train"], test=s["test"], probe=s["probe"],
                  steps_per_epoch=run.batches.steps_per_epoch)
    if not run.is_adam:
        return Scales(**common, outcome_why=outcome_not_judged_because(run.rule.name))
    if run.data.source != "sum":
        return Scales(**common, outcome_why="not judged: the float32 outcome tolerance is derived for the "
                                            "tutorial's sum task only")
    lr = run.lr
    return Scales(**common, outcome_test=OUTCOME_STEPS * adam_jitter(run.data.test_sequences, lr).sum(),
                  outcome_probe=OUTCOME_STEPS * adam_jitter(run.data.probes, lr),
                  outcome_judged=run.outcome_tolerance_derived)


def versions(backend_names: Sequence[str]) -> dict:
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("fluxparity", "numpy", "torch", "numba", "juliacall"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    found["backends"] = list(backend_names)
    return found


def train_and_compare(runs: Sequence[RunSpec], backends: Mapping[str, object], *, skipped: Optional[dict] = None,
                      progress: Optional[ExperimentProgress] = None, workers: int = DEFAULT_WORKERS,
                      settings: Optional[dict] = None) -> Experiment:
    """Train every run description in every backend and compare them pairwise: the experiment the report
    is written from. ``runs`` share one data set (the report records ``runs[0].data``).

    ``backends``: name -> backend (``fluxparity.get_backend(name)``); results are paired by name. To train YOUR
    torch module as the torch leg: ``get_backend("torch", module_factory=build, batch_first=True, mapping=None)``
    (``build()`` returns a fresh ``nn.Module``; it receives ``(len, batch, in)`` or, batch_first, ``(batch, len,
    in)`` and returns every step or the last, ``(batch, out)``; see ``fluxparity.backends.pytorch.TorchBackend``)."""
    runs = run_list(runs)
    for backend in backends.values():  # a backend that can find bad input cheaply says so before any training
        check = getattr(backend, "check_run", None)
        for r in runs if check is not None else ():
            check(r)
    all_results = run_runs_concurrently(runs, backends, workers=workers, progress=progress)
    done = [Run(spec, results, compare_results(spec.dtype, results, scales_for(spec)))
            for spec, results in zip(runs, all_results)]
    first = runs[0]
    base = dict(seed=first.seed, epochs=first.epochs, loss=first.loss, readout=first.readout,
                batch_size=first.batch_size, shuffle=first.shuffle, data=first.data.source,
                backends=list(backends), dtypes=list(dict.fromkeys(r.dtype for r in runs)),
                optimizer=rule_to_dict(first.rule), lr=first.lr)
    return Experiment({**base, **(settings or {})}, first.data, done, dict(skipped or {}), versions(list(backends)))


def run_experiment(*, samples: int, seed: int, epochs: int, lr: float, activations: Sequence[str],
                   dtypes: Sequence[str], backends: Mapping[str, object], skipped: Optional[dict] = None,
                   progress: Optional[ExperimentProgress] = None, options: Optional[dict] = None,
                   model: str = "rnn", hidden: int = 1, workers: int = DEFAULT_WORKERS,
                   optimizer: Optional[Rule] = None) -> Experiment:
    """The tutorial's experiments (and the shorthand models on its sum task): every (activation, dtype) run,
    trained in every backend and compared pairwise.

    ``optimizer``: the Optimisers.jl rule every backend trains with; ``None`` is the tutorial's ``Adam(lr)``
    (with a rule, ``lr`` must be left at its default).

    Independent trainings run in ``workers`` spawned processes when they are long enough to pay for one
    (``fluxparity.parallel``); the results are those of training them one after the other.
    """
    if optimizer is not None and lr != DEFAULT_LR:
        raise ValueError(f"lr {lr!r} does not apply with optimizer {optimizer}: the rule holds its own eta; "
                         "give one or the other")
    if not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    rule = optimizer if optimizer is not None else make_rule("Adam", eta=lr)
    if model != "rnn":
        activations = (GATED,)  # gated cells have no activation option
    runs = shorthand_runs(samples, seed, epochs, rule, model, hidden, activations, dtypes)
    settings = dict(samples=samples, lr=lr if optimizer is None else None, model=model, hidden=hidden,
                    activations=list(activations), **(options or {}))
    return train_and_compare(runs, backends, skipped=skipped, progress=progress, workers=workers, settings=settings)

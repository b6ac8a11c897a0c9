"""Run the tutorial's experiments in several backends on identical inputs and collect what they measured."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Mapping, Optional, Sequence

import numpy as np

from .backends import RunResult
from .compare import NOTHING_COMPARED, Parity, compare_results
from .config import GATED, RunConfig
from .data import Dataset, generate_dataset
from .parallel import DEFAULT_WORKERS, ExperimentProgress, run_runs_concurrently
from .models import Chain, init_chain, tutorial_chain
from .optim import Rule, to_dict as rule_to_dict


@dataclass
class Run:
    """One (activation, dtype) experiment: the same data and initial params in every backend."""

    config: RunConfig
    initial_params: Chain  # float64, the same numbers for every backend
    results: dict[str, RunResult]
    parity: Parity


@dataclass
class Experiment:
    settings: dict  # samples, seed, epochs, lr, backends, activations, dtypes, options
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
    """Independent streams for the data and the initial weights, both fixed by one user-facing seed."""
    data_seed, param_seed = np.random.SeedSequence(seed).spawn(2)
    return data_seed, param_seed


def initial_for(config: RunConfig, param_seed: np.random.SeedSequence):
    """The run's initial weights, drawn from ``param_seed``: the same numbers for every dtype and backend."""
    if config.is_tutorial:
        return tutorial_chain(param_seed, config.activation)  # Chain(RNN(1 => 1, σ)), last step
    activation = "tanh" if config.activation == GATED else config.activation
    # Chain(<model>(1 => hidden), Dense(hidden => 1)), last step: cell drawn first, then the Dense.
    return init_chain(1, [(config.model, config.hidden, activation)], [(1,)], seed=param_seed, dtype=np.float64)


def versions(backend_names: Sequence[str]) -> dict:
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("fluxparity", "numpy", "torch", "numba", "juliacall"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    found["backends"] = list(backend_names)
    return found




def run_experiment(*, samples: int, seed: int, epochs: int, lr: float, activations: Sequence[str],
                   dtypes: Sequence[str], backends: Mapping[str, object], skipped: Optional[dict] = None,
                   progress: Optional[ExperimentProgress] = None, options: Optional[dict] = None,
                   model: str = "rnn", hidden: int = 1, workers: int = DEFAULT_WORKERS,
                   optimizer: Optional[Rule] = None) -> Experiment:
    """Train every (activation, dtype) run in every backend and compare them pairwise.

    ``optimizer``: the Optimisers.jl rule every backend trains with; ``None`` is the tutorial's ``Adam(lr)``
    (with a rule, ``lr`` must be left at its default: see :class:`~fluxparity.config.RunConfig`).

    Independent trainings run in ``workers`` spawned processes when they are long enough to pay for one
    (``fluxparity.parallel``); the results are those of training them one after the other.
    """
    data_seed, param_seed = seeds_for(seed)
    data = generate_dataset(samples, data_seed)
    if model != "rnn":
        activations = (GATED,)  # gated cells have no activation option
    tasks = [(config, initial_for(config, param_seed)) for config in (
        RunConfig(activation=activation, dtype=dtype, epochs=epochs, lr=lr, model=model, hidden=hidden,
                  optimizer=optimizer)
        for activation in activations for dtype in dtypes)]
    all_results = run_runs_concurrently(tasks, data, backends, workers=workers, progress=progress)
    runs = [Run(config, initial, results,
                compare_results(config.dtype, config.rule["eta"] if config.is_adam else lr, results, data,
                                outcome_judged=config.is_tutorial, optimizer=config.rule.name))
            for (config, initial), results in zip(tasks, all_results)]
    rule = tasks[0][0].rule if tasks else None
    # lr is None when a rule was given: the rule holds its own eta (report.json's "optimizer").
    settings = dict(samples=samples, seed=seed, epochs=epochs, lr=lr if optimizer is None else None, model=model,
                    hidden=hidden, backends=list(backends), activations=list(activations), dtypes=list(dtypes),
                    optimizer=None if rule is None else rule_to_dict(rule), **(options or {}))
    return Experiment(settings, data, runs, dict(skipped or {}), versions(list(backends)))

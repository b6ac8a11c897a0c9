"""The Flux leg trains the run's Optimisers.jl rule (issue 12): the worker's request and, with Julia, the run."""

from __future__ import annotations

import pytest

from fluxparity.backends import get_backend
from fluxparity.backends._flux_worker import julia_rule_source
from fluxparity.compare import compare_results
from fluxparity.optim import parse_spec, to_dict, to_julia

from conftest import make_inputs, run_of, scales_of
from julia_support import flux_backend  # noqa: F401  (fixture)


def test_the_tutorial_adam_leaves_train_chain_to_build_adam_lr_itself():
    request = {"lr": 0.002, "optimizer": to_dict(parse_spec("adam:eta=0.002"))}
    assert julia_rule_source(request) is None
    assert julia_rule_source({"lr": 0.001}) is None  # an old request without a rule


def test_any_other_rule_is_built_in_julia_by_optimisers_rule_from_its_dict():
    for spec in ("momentum:eta=0.01,rho=0.9", "chain:clipnorm=1,adamw", "adam:eta=0.002,beta=(0.9,0.99)"):
        rule = parse_spec(spec)
        request = {"lr": 0.001, "optimizer": to_dict(rule)}
        assert julia_rule_source(request) == f"FluxParity.optimisers_rule({to_julia(rule)})"


@pytest.mark.julia
@pytest.mark.parametrize("spec", ["momentum:eta=0.001,rho=0.9", "chain:clipnorm=1,adamw"])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_flux_trains_the_rule_and_passes_the_float64_policy(flux_backend, spec, activation):  # noqa: F811
    # Optimisers.jl's own rule in Flux vs fluxparity.optim's NumPy arithmetic in the reference (NNlib's
    # tanh_fast on both sides), judged by the rules the report uses (float64: every step within 1e-9).
    data, initial = make_inputs(30, seed=1, activation=activation)
    config = dict(dtype="float64", epochs=2, optimizer=parse_spec(spec))
    results = {"flux": flux_backend.train(run_of(data, initial, **config)),
               "reference": get_backend("reference", tanh="fast").train(run_of(data, initial, **config))}
    parity = compare_results("float64", results, scales_of(data, epochs=len(next(iter((results).values())).epoch_train_loss), dtype="float64", optimizer=config["optimizer"]))
    failed = [f"{c.a} vs {c.b}: {c.quantity}[{c.worst_index}] max abs {c.max_abs:.3e} breaks {c.rule}"
              for c in parity.failed()]
    assert parity.verdict == "pass", failed

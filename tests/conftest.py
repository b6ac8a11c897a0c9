import numpy as np
import pytest

from fluxparity.data import generate_dataset
from fluxparity.experiment import seeds_for
import dataclasses

from fluxparity.models import Chain, tutorial_chain
from fluxparity.optim import rule
from fluxparity.run import RunSpec


@pytest.fixture(autouse=True)
def _numpy_errors_raise():
    # A silent overflow or invalid operation in a backend is a bug, never a number to compare.
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is benign
        yield


def make_inputs(samples: int, seed: int = 0, activation: str = "identity"):
    """The data and initial model ``fluxparity compare --samples N --seed S`` would use for ``activation``."""
    data_seed, param_seed = seeds_for(seed)
    return generate_dataset(samples, data_seed), tutorial_chain(param_seed, activation)


def run_of(data, initial, dtype: str = "float32", epochs: int = 50, lr: float = 1e-3, optimizer=None,
           **more) -> RunSpec:
    """The run description of a sum-task test: ``initial`` on ``data`` with the tutorial's loss (abs_sum) and
    batch 1, trained with ``optimizer`` or ``Adam(lr)``; ``more``: any other RunSpec field."""
    more.setdefault("loss", "abs_sum")
    return RunSpec(initial, data, rule=optimizer if optimizer is not None else rule("Adam", eta=lr),
                   dtype=dtype, epochs=epochs, **more)


def scales_of(data, epochs: int, dtype: str = "float32", lr: float = 1e-3, optimizer=None, outcome_judged=None):
    """The comparison scales of a sum-task run on ``data`` (``fluxparity.experiment.scales_for``); the outcome is
    judged as for the tutorial unless ``outcome_judged`` says otherwise."""
    import dataclasses

    from fluxparity.experiment import scales_for

    initial = tutorial_chain(0)
    scales = scales_for(run_of(data, initial, dtype=dtype, lr=lr, optimizer=optimizer, epochs=epochs))
    return scales if outcome_judged is None else dataclasses.replace(scales, outcome_judged=outcome_judged)


def tutorial_for(initial: Chain, activation: str) -> Chain:
    """The tutorial's Chain with the same weights and another RNN activation."""
    return Chain((dataclasses.replace(initial.layers[0], activation=activation),), initial.readout)


@pytest.fixture
def small_inputs():
    return make_inputs(40, seed=1)


def pytest_addoption(parser):
    parser.addoption("--run-compile", action="store_true",
                     help="also run the tests marked `compile` (a cold torch.compile, ~30 s)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-compile"):
        return
    skip = pytest.mark.skip(reason="a cold torch.compile (~30 s): opt in with `pytest --run-compile -m compile`")
    for item in items:
        if "compile" in item.keywords:
            item.add_marker(skip)

import numpy as np
import pytest

from fluxparity.data import generate_dataset
from fluxparity.experiment import seeds_for
import dataclasses

from fluxparity.models import Chain, tutorial_chain


@pytest.fixture(autouse=True)
def _numpy_errors_raise():
    # A silent overflow or invalid operation in a backend is a bug, never a number to compare.
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is benign
        yield


def make_inputs(samples: int, seed: int = 0, activation: str = "identity"):
    """The data and initial model ``fluxparity compare --samples N --seed S`` would use for ``activation``."""
    data_seed, param_seed = seeds_for(seed)
    return generate_dataset(samples, data_seed), tutorial_chain(param_seed, activation)


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

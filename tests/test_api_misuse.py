"""Misusing the Python API (issue 17, item 17): the wrong kind of argument raises a TypeError or ValueError
naming the argument and what it accepts — never an AttributeError from deep inside."""

import numpy as np
import pytest
import torch

from fluxparity import models
from fluxparity.testing import (assert_forward_parity, assert_gradient_parity, assert_parity,
                                assert_training_parity, load_golden, record_golden, save_golden)
from golden_support import make_golden, small_chain

ASSERTIONS = [assert_forward_parity, assert_gradient_parity, assert_training_parity, assert_parity]


@pytest.fixture
def golden(tmp_path):
    return make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")])


def port(dtype=torch.float64):
    return models.build_module(small_chain([("rnn", 3, "tanh")]), dtype=dtype)


@pytest.mark.parametrize("assertion", ASSERTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("module, said", [
    (None, "module must be a torch.nn.Module instance (the port to check), got builtins.NoneType"),
    (np.zeros((3, 3)), "module must be a torch.nn.Module instance (the port to check), got numpy.ndarray"),
    (torch.nn.LSTM, "module must be a torch.nn.Module instance, got the class LSTM; pass an instance"),
])
def test_a_module_that_is_not_a_module_instance_is_a_type_error(golden, assertion, module, said):
    with pytest.raises(TypeError) as error:
        assertion(golden, module)
    assert said in str(error.value)


@pytest.mark.parametrize("assertion", [assert_training_parity, assert_parity], ids=lambda f: f.__name__)
@pytest.mark.parametrize("optimizer, said", [("sgd", "got 'sgd'"), (torch.optim.SGD, "got the class SGD")])
def test_an_optimizer_that_is_not_an_optimizer_instance_is_a_type_error(golden, assertion, optimizer, said):
    with pytest.raises(TypeError, match=r"^optimizer must be an object with zero_grad\(\) and step\(\)") as error:
        assertion(golden, port(), optimizer)
    assert said in str(error.value)


@pytest.mark.parametrize("assertion", ASSERTIONS, ids=lambda f: f.__name__)
def test_a_bfloat16_module_is_a_value_error_naming_what_numpy_holds(golden, assertion):
    with pytest.raises(ValueError, match=r"^module's parameter .* is torch.bfloat16; .*float16, float32 and float64"):
        assertion(golden, port(torch.bfloat16))


def test_a_bytes_path_is_a_type_error_naming_the_argument(tmp_path, golden):
    name = str(tmp_path / "g.npz").encode()
    for call in (lambda: load_golden(name), lambda: models.load_npz(name),
                 lambda: record_golden(name, golden.chain, golden.x, golden.y),
                 lambda: save_golden(name, golden)):
        with pytest.raises(TypeError, match=r"^path must be a file name \(str or pathlib.Path\), got bytes") as error:
            call()
        assert len(name) > 60 and str(error.value).endswith(f"got bytes {name[:60]!r}")  # the value, cut to 60
    for value, kind in ((5, "int"), (None, "NoneType"), ([1, 2], "list")):  # only bytes get their value shown
        with pytest.raises(TypeError) as error:
            load_golden(value)
        assert str(error.value) == f"path must be a file name (str or pathlib.Path), got {kind}"
    with pytest.raises(TypeError, match="^golden must be a fluxparity.testing.Golden or a golden file's path"):
        assert_forward_parity(name, port())

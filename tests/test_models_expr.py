"""``fluxparity.models.parse_flux``: a model as Flux prints it -> ModelSpec, safely; ``to_flux`` /
``flux_expression`` back; ``ModelSpec.init`` draws the weights with init_chain. Every error is tested."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxparity import models
from fluxparity.models import ModelSpec, flux_expression, parse_flux

# What Flux 0.16 prints for each (show methods cited in docs/julia-names.md) and what it means.
EXAMPLES = {
    "Chain(LSTM(3 => 16), Dense(16 => 2, relu))": ModelSpec(3, [("lstm", 16, None)], [(2, "relu", True)]),
    "RNN(1 => 1, identity)": ModelSpec(1, [("rnn", 1, "identity")]),
    "RNN(1 => 4)": ModelSpec(1, [("rnn", 4, "tanh")]),
    "Chain(RNN(1 => 4, tanh))": ModelSpec(1, [("rnn", 4, "tanh")]),
    "Chain(RNN(2 => 3, relu), RNN(3 => 3, identity))": ModelSpec(2, [("rnn", 3, "relu"), ("rnn", 3, "identity")]),
    "GRU(2 => 3)": ModelSpec(2, [("gru", 3, None)]),
    "Chain(GRUv3(2 => 3), Dense(3 => 1, σ))": ModelSpec(2, [("gruv3", 3, None)], [(1, "sigmoid", True)]),
    "Chain(GRUv3(2 => 3), Dense(3 => 1, sigmoid))": ModelSpec(2, [("gruv3", 3, None)], [(1, "sigmoid", True)]),
    "Chain(LSTM(3 => 4), Dense(4 => 2, tanh), Dense(2 => 2))":
        ModelSpec(3, [("lstm", 4, None)], [(2, "tanh", True), (2, "identity", True)]),
    "Chain(LSTM(3 => 16), Dense(16 => 2, relu; bias=false))": ModelSpec(3, [("lstm", 16, None)], [(2, "relu", False)]),
    "Chain(LSTM(3 => 16), Dense(16 => 2, relu; bias = false))": ModelSpec(3, [("lstm", 16, None)], [(2, "relu", False)]),
    "Chain(LSTM(3 => 16), Dense(16 => 2; bias=false))": ModelSpec(3, [("lstm", 16, None)], [(2, "identity", False)]),
    "Chain(LSTM(3 => 16), Dense(16 => 2; bias = true))": ModelSpec(3, [("lstm", 16, None)], [(2, "identity", True)]),
    "Flux.Chain(Flux.LSTM(3=>16), Flux.Dense(16=>2, Flux.relu))": ModelSpec(3, [("lstm", 16, None)], [(2, "relu", True)]),
    "Chain(RNN(1 => 2, NNlib.σ))": None,  # RNN takes no sigmoid: an error, tested below
    "\n  Chain(\n    LSTM(3 => 16),\n    Dense(16 => 2, relu),\n  )\n": ModelSpec(3, [("lstm", 16, None)], [(2, "relu", True)]),
}


@pytest.mark.parametrize("text", [t for t, s in EXAMPLES.items() if s is not None])
def test_examples_parse(text):
    assert parse_flux(text) == EXAMPLES[text]


def test_to_flux_writes_what_flux_prints():
    assert parse_flux("Chain(LSTM(3=>16), Dense(16=>2, relu))").to_flux() == "Chain(LSTM(3 => 16), Dense(16 => 2, relu))"
    assert parse_flux("RNN(1 => 4)").to_flux() == "Chain(RNN(1 => 4, tanh))"
    assert parse_flux("Chain(GRUv3(2 => 3), Dense(3 => 1, sigmoid; bias = false))").to_flux() == \
        "Chain(GRUv3(2 => 3), Dense(3 => 1, σ; bias=false))"


def test_init_draws_the_same_numbers_as_init_chain():
    spec = parse_flux("Chain(RNN(2 => 3, relu), LSTM(3 => 4), Dense(4 => 2, relu; bias=false), Dense(2 => 1))")
    chain = spec.init(7, dtype=np.float32, readout="all")
    expected = models.init_chain(2, [("rnn", 3, "relu"), ("lstm", 4)], [(2, "relu", False), (1, "identity")],
                                 seed=7, dtype=np.float32, readout="all")
    assert chain.readout == "all" and chain.dtype == np.float32 and chain.layers[2].bias is None
    assert list(chain.arrays()) == list(expected.arrays())
    for n, a in expected.arrays().items():
        np.testing.assert_array_equal(chain.arrays()[n], a)
    assert ModelSpec.from_chain(chain) == spec
    assert flux_expression(chain) == chain.to_flux() == spec.to_flux()


def test_init_default_dtype_and_readout():
    chain = parse_flux("RNN(1 => 1, identity)").init(0)
    assert chain.dtype == np.float64 and chain.readout == "last" and chain.is_tutorial_shape
    assert flux_expression(models.tutorial_chain(0, "identity")) == "Chain(RNN(1 => 1, identity))"


def test_init_refuses_an_unknown_readout():
    with pytest.raises(ValueError, match="readout 'first'"):
        parse_flux("RNN(1 => 1)").init(0, readout="first")


# ------------------------------------------------------------------------------------------------ round trip
_RNN = st.tuples(st.just("rnn"), st.integers(1, 40), st.sampled_from(models.RNN_ACTIVATIONS))
_GATED = st.tuples(st.sampled_from(["lstm", "gru", "gruv3"]), st.integers(1, 40), st.none())
_DENSE = st.tuples(st.integers(1, 40), st.sampled_from(models.DENSE_ACTIVATIONS), st.booleans())
SPECS = st.builds(ModelSpec, st.integers(1, 40), st.lists(_RNN | _GATED, min_size=1, max_size=4),
                  st.lists(_DENSE, max_size=3))


@settings(max_examples=200, deadline=None)
@given(SPECS)
def test_parse_of_to_flux_is_the_spec(spec):
    assert parse_flux(spec.to_flux()) == spec


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_fails_with_one_line(text):
    try:
        parse_flux(text)
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 200


# ------------------------------------------------------------------------------------------------ errors
ERRORS = {
    "Chain(LSTM(3, 16))": "column 13: expected '=>' after 3, got ','",
    "Chain(LSTM(3 => 16), Dense(15 => 2))": "column 22: Dense(15 => 2) takes 15 inputs but the layer before it gives 16",
    "Dense(8 => 2)": "column 1: a model starts with a recurrent layer (RNN, LSTM, GRU or GRUv3), not a Dense",
    "Chain(Dense(2 => 3), RNN(3 => 1))": "column 7: a model starts with a recurrent layer",
    "Chain(RNN(1 => 3), Dense(3 => 3), RNN(3 => 1))":
        "column 35: a RNN after a Dense is not supported: recurrent layers come first, then Dense layers",
    "RNN(1 => 1, sigmoid)": "column 13: activation 'sigmoid' is not supported for RNN; allowed: identity, tanh, relu",
    "Chain(RNN(1 => 2, NNlib.σ))": "column 25: activation 'σ' is not supported for RNN",
    "Chain(LSTM(3 => 4), Dense(4 => 2, softmax))":
        "column 35: activation 'softmax' is not supported for Dense; allowed: identity, relu, tanh, σ (sigmoid)",
    "LSTM(3 => 4, tanh)": "column 14: LSTM takes no activation (its nonlinearities are fixed), got 'tanh'",
    "GRU(3 => 4, relu)": "column 13: GRU takes no activation",
    "RNN(0 => 2)": "column 5: the input size must be positive, got 0",
    "RNN(2 => 0)": "column 10: the output size must be positive, got 0",
    "RNN(-1 => 2)": "column 5: expected the input size (a positive integer) after 'RNN(', got '-'",
    "RNN(1.5 => 2)": "column 5: the input size must be a whole number, got '1.5'",
    "RNN(1 => 2000000)": "column 10: the output size '2000000' is larger than 1000000",
    "RNN(1 => 2; bias=false)": "column 18: RNN(…; bias = false) is not supported: only a Dense may have no bias",
    "Chain(RNN(1 => 2), Dense(2 => 1; init=zeros))": "column 34: unsupported keyword 'init' for Dense; only 'bias' is",
    "Chain(RNN(1 => 2), Dense(2 => 1; bias=0))": "column 39: expected true or false after 'bias =', got '0'",
    "Chain(RNN(1 => 2), Dense(2 => 1; bias false))": "column 39: expected '=' after 'bias', got 'false'",
    "Chain(RNN(1 => 2), Dense(2 => 1; 3))": "column 34: expected a keyword after ';', got '3'",
    "Chain(RNN(1 => 2)) x": "column 20: expected the end of the model after ')', got 'x'",
    "Chain(RNN(1 => 2)": "column 18: expected ',' or ')' after a layer, got the end of the text",
    "Chain(RNN(1 => 2) Dense(2 => 1))": "column 19: expected ',' or ')' after a layer, got 'Dense'",
    "Chain RNN(1 => 2)": "column 7: expected '(' after 'Chain', got 'RNN'",
    "Chain()": "column 7: expected a layer after 'Chain(', got ')'",
    "Chain(Chain(RNN(1 => 1)))": "column 7: a Chain inside a Chain is not supported",
    "Conv((3, 3), 1 => 2)": "column 1: unknown layer 'Conv'; expected one of RNN, LSTM, GRU, GRUv3, Dense",
    "Flux.": "column 6: expected a layer or Chain after 'Flux.', got the end of the text",
    "RNN(1 => 2, tanh": "column 17: expected ',', ';' or ')' after 2, got the end of the text",
    "LSTM(1 => 2 3)": "column 13: expected ';' or ')' after 2, got '3'",
    "RNN(1 => 2, 3)": "column 13: expected an activation after ',', got '3'",
    "RNN(1 => x)": "column 10: expected the output size (a positive integer) after '=>', got 'x'",
    "RNN(1 = > 2)": "column 7: expected '=>' after 1, got '='",
    "eval(1)": "column 1: unknown layer 'eval'",
    '__import__("os")': "column 1: unknown layer '__import__'",
    "Chain(\n  LSTM(3 => 4),\n  Dense(4 => 2, softmax))": "line 3, column 17: activation 'softmax'",
    "RNN(1 => " + "1" * 5000 + ")": "column 10: the output size '11111111111111111111111…' is larger than 1000000",
    "Dense" + "x" * 5000: "column 1: unknown layer 'Densexxxxxxxxxxxxxxxxxx…'",
}


@pytest.mark.parametrize("text", list(ERRORS))
def test_each_error_is_one_line_naming_the_column_and_token(text):
    with pytest.raises(ValueError) as info:
        parse_flux(text)
    message = str(info.value)
    assert message.startswith(ERRORS[text]), message
    assert "\n" not in message and len(message) < 200


def test_empty_huge_and_non_text_input():
    with pytest.raises(ValueError, match="empty"):
        parse_flux("  \n ")
    with pytest.raises(ValueError, match=r"is 100001 characters long; at most 100000 are read$"):
        parse_flux("(" * 100_001)
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        parse_flux(b"RNN(1 => 1)")


@pytest.mark.parametrize("args, error, match", [
    ((0, [("rnn", 1, "tanh")]), ValueError, "input_size must be between 1 and"),
    ((1, []), ValueError, "at least one recurrent layer"),
    ((1, [("conv", 1, None)]), ValueError, r"recurrent\[0\]: kind 'conv'"),
    ((1, [("lstm", 1, "tanh")]), ValueError, r"recurrent\[0\]: activation 'tanh' is not one of \(None,\)"),
    ((1, [("rnn", 1, None)]), ValueError, r"recurrent\[0\]: activation None"),
    ((1, [("rnn", 1)]), ValueError, r"recurrent\[0\]: expected \(kind, hidden, activation\)"),
    ((1, [("rnn", 1.0, "tanh")]), TypeError, r"hidden must be an integer"),
    ((1, [("rnn", True, "tanh")]), TypeError, r"hidden must be an integer"),
    ((1, [("rnn", 1, "tanh")], [(2, "softmax", True)]), ValueError, r"dense\[0\]: activation 'softmax'"),
    ((1, [("rnn", 1, "tanh")], [(2, "relu")]), ValueError, r"dense\[0\]: expected \(out, activation, bias\)"),
    ((1, [("rnn", 1, "tanh")], [(2, "relu", 0)]), TypeError, r"dense\[0\]: bias must be True or False"),
    ((1, [("rnn", 1, "tanh")], [(0, "relu", True)]), ValueError, r"dense\[0\] out must be between"),
])
def test_model_spec_checks_its_fields(args, error, match):
    with pytest.raises(error, match=match):
        ModelSpec(*args)


def test_from_chain_refuses_other_objects():
    with pytest.raises(TypeError, match="expected a fluxparity.models.Chain, got str"):
        flux_expression("Chain(RNN(1 => 1))")

"""Deliberate porting mistakes, each planted by hand in an otherwise right port: assert_parity fails, and its
message names the right parameter and, where the pattern fits, the mistake."""

import pytest
import torch

from fluxparity import models
from fluxparity.testing import ParityError, assert_parity

from golden_support import make_golden


def failure(golden, module, **options) -> ParityError:
    with pytest.raises(ParityError) as info:
        assert_parity(golden, module, **options)
    return info.value


def right_port(golden, dtype=torch.float64):
    return models.build_module(golden.chain, dtype=dtype)


def test_lstm_gate_order_ifog(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),))
    module = right_port(golden)
    with torch.no_grad():  # another framework's i, f, o, g blocks copied as they are
        i, f, g, o = module.layers[0].weight_ih_l0.clone().chunk(4)
        module.layers[0].weight_ih_l0.copy_(torch.cat([i, f, o, g]))
    err = failure(golden, module, check_weights=True)
    first = err.mismatches[0]
    assert (first.flux_name, first.torch_name) == ("layers[1].cell.Wi", "layers.0.weight_ih_l0")
    assert "LSTM gate order" in str(err)


def test_bias_copied_into_both_torch_biases(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)])
    module = right_port(golden)
    with torch.no_grad():
        module.layers[0].bias_hh_l0.copy_(module.layers[0].bias_ih_l0)
    err = failure(golden, module, check_weights=True)
    assert err.mismatches[0].flux_name == "layers[1].cell.bias"
    assert "a bias counted twice" in str(err)


def test_gru_b_hn_nonzero(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 3)])
    module = right_port(golden)
    with torch.no_grad():
        module.layers[0].bias_hh_l0[6:] = 0.25  # nn.GRU's b_hn, which Flux does not have
    err = failure(golden, module, check_weights=True)
    assert err.mismatches[0].flux_name == "layers[1].cell.b"
    assert "bias_hh_l0" in err.mismatches[0].torch_name
    assert "GRU b_hn ≠ 0" in str(err)


def test_transposed_recurrent_matrix(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "tanh")])
    module = right_port(golden)
    with torch.no_grad():
        module.layers[0].weight_hh_l0.copy_(module.layers[0].weight_hh_l0.T.clone())
    err = failure(golden, module, check_weights=True)
    assert err.mismatches[0].flux_name == "layers[1].cell.Wh"
    assert "a transposed matrix" in str(err)


class BatchFirstOutput(torch.nn.Module):
    """Takes (len, batch, in) but hands back (batch, len, out): the axes swapped on the way out."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).transpose(0, 1)


def test_time_and_batch_axes_swapped(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 3)], ((2,),), readout="all", length=5, batch=4)
    err = failure(golden, BatchFirstOutput(right_port(golden)))
    assert err.mismatches[0].flux_name == "output"
    assert "time and batch axes swapped" in str(err)


def test_float32_module_against_a_float64_golden(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),))
    err = failure(golden, right_port(golden, torch.float32))
    assert err.mismatches[0].flux_name == "output"
    assert "Float32 against a Float64 golden" in str(err)


class LSTMOnly(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(3, 3, dtype=torch.float64)

    def forward(self, x):
        return self.rnn(x)[0]


def test_missing_dense_layer(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),))
    err = failure(golden, LSTMOnly())
    assert err.mismatches[0].flux_name == "layers[2].weight"
    assert "a missing parameter" in str(err)


def test_missing_name_in_an_explicit_mapping(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)])
    mapping = {"layers[1].cell.Wi": "rnn.weight_ih_l0", "layers[1].cell.Wh": "rnn.weight_hh_l0"}
    err = failure(golden, LSTMOnly(), mapping=mapping)
    assert err.mismatches[0].flux_name == "layers[1].cell.bias"
    assert "a missing parameter" in str(err)


class RNNPort(torch.nn.Module):
    def __init__(self, nonlinearity):
        super().__init__()
        self.rnn = torch.nn.RNN(3, 4, nonlinearity=nonlinearity, dtype=torch.float64)

    def forward(self, x):
        return self.rnn(x)[0]


def test_wrong_activation(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "relu")], readout="all")
    assert_parity(golden, RNNPort("relu"))  # the right port passes; tanh where Flux has relu does not
    err = failure(golden, RNNPort("tanh"))
    assert err.mismatches[0].flux_name == "output"
    assert "unit" in err.mismatches[0].where and "time step" in err.mismatches[0].where


def test_frozen_parameter_gets_no_gradient(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "relu")], readout="all")
    module = RNNPort("relu")
    module.rnn.weight_hh_l0.requires_grad_(False)
    err = failure(golden, module)
    assert err.mismatches[0].quantity == "gradient"
    assert err.mismatches[0].flux_name == "layers[1].cell.Wh"
    assert "gets no gradient" in str(err)


def test_message_names_the_producer_and_never_calls_the_reference_flux(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),))
    header = str(failure(golden, right_port(golden, torch.float32))).splitlines()[0]
    assert "produced by fluxparity NumPy reference" in header
    assert "Flux" not in header


def test_right_port_with_check_weights_passes(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 3)], ((2,),))
    assert_parity(golden, right_port(golden), check_weights=True)

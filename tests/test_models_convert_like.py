"""``models.from_module(module, like=...)``: a module matched against a Flux architecture (the path ``check``
and ``compare --torch-module`` take) keeps the conversion rules of the module-only path.

- A two-bias layer's Flux bias is ``bias_ih + bias_hh`` whatever ``bias_hh`` holds (zero, all ones, random).
- A GRU's ``b_hn`` (third block of ``bias_hh``) has no Flux counterpart: nonzero is refused, zero is accepted
  while the reset and update gates' hidden biases fold into Flux's bias.
- Every array comes back in the requested dtype.

Expected values are the module's own tensors added in NumPy, not the converter's output.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluxparity import models


def _rnn(fill):
    torch.manual_seed(3)
    rnn = torch.nn.RNN(3, 4, dtype=torch.float64)  # nonlinearity tanh, like Flux's RNN default
    with torch.no_grad():
        if fill == "random":
            rnn.bias_hh_l0.copy_(torch.linspace(-0.7, 0.9, 4, dtype=torch.float64))
        else:
            rnn.bias_hh_l0.fill_(fill)
    return rnn


@pytest.mark.parametrize("fill", [0.0, 1.0, -0.25, "random"])
def test_a_matched_two_bias_layer_holds_the_sum_of_its_biases(fill):
    rnn = _rnn(fill)
    chain = models.from_module(rnn, dtype=np.float64, like="Chain(RNN(3 => 4))")
    expected = rnn.bias_ih_l0.detach().numpy() + rnn.bias_hh_l0.detach().numpy()
    np.testing.assert_array_equal(chain.arrays()["layers[1].cell.bias"], expected)
    np.testing.assert_array_equal(chain.arrays()["layers[1].cell.Wi"], rnn.weight_ih_l0.detach().numpy())
    np.testing.assert_array_equal(chain.arrays()["layers[1].cell.Wh"], rnn.weight_hh_l0.detach().numpy())


def test_a_matched_gru_with_a_nonzero_b_hn_is_refused():
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, dtype=torch.float64)
    with torch.no_grad():
        gru.bias_hh_l0.zero_()
        gru.bias_hh_l0[8:].fill_(1.0)  # b_hn only: Flux's GRU has no bias inside r ⊙ (W_hn h + b_hn)
    with pytest.raises(ValueError, match="b_hn"):
        models.from_module(gru, dtype=np.float64, like="Chain(GRU(3 => 4))")


@pytest.mark.parametrize("gates", [1.0, -0.5])
def test_a_matched_gru_with_zero_b_hn_folds_its_gate_biases(gates):
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, dtype=torch.float64)
    with torch.no_grad():
        gru.bias_hh_l0[:8].fill_(gates)  # b_hr, b_hz: added to b_ir, b_iz before the sigmoid
        gru.bias_hh_l0[8:].zero_()
    chain = models.from_module(gru, dtype=np.float64, like="Chain(GRU(3 => 4))")
    expected = gru.bias_ih_l0.detach().numpy() + gru.bias_hh_l0.detach().numpy()
    np.testing.assert_array_equal(chain.arrays()["layers[1].cell.b"], expected)  # Flux GRU: `b`


@pytest.mark.parametrize("np_dtype", [np.float32, np.float64])
def test_a_matched_module_comes_back_in_the_requested_dtype(np_dtype):
    rnn = _rnn("random")
    chain = models.from_module(rnn, dtype=np_dtype, like="Chain(RNN(3 => 4))")
    assert chain.dtype == np_dtype
    assert {str(a.dtype) for a in chain.arrays().values()} == {np.dtype(np_dtype).name}
    expected = (rnn.bias_ih_l0.detach().numpy() + rnn.bias_hh_l0.detach().numpy()).astype(np_dtype)
    np.testing.assert_array_equal(chain.arrays()["layers[1].cell.bias"], expected)

"""Reference goldens of every cell kind, loss and dtype pass assert_parity against the torch module built from
the golden's Chain (models.build_module, the project's own converted port)."""

import numpy as np
import pytest
import torch

from fluxparity import models
from fluxparity.testing import assert_parity, load_golden

from golden_support import make_golden

TORCH = {np.float32: torch.float32, np.float64: torch.float64}

# (recurrent layers, dense layers, readout, loss): every cell kind single and stacked, with and without Dense.
ARCHITECTURES = {
    "rnn-identity": ([("rnn", 4, "identity")], (), "last", "mse"),
    "rnn-tanh+dense": ([("rnn", 4, "tanh")], ((2,),), "all", "mae"),
    "rnn-relu-stacked": ([("rnn", 4, "relu"), ("rnn", 3, "relu")], (), "last", "abs_sum"),
    "lstm+dense-relu+dense": ([("lstm", 5)], ((3, "relu"), (2,)), "last", "logitcrossentropy"),
    "lstm-stacked": ([("lstm", 4), ("lstm", 3)], (), "all", "mse"),
    "gru+dense-sigmoid": ([("gru", 4)], ((2, "sigmoid"),), "last", "mse"),
    "gru-stacked+dense": ([("gru", 4), ("gru", 3)], ((2,),), "all", "logitcrossentropy"),
    "gruv3+dense-tanh": ([("gruv3", 4)], ((2, "tanh"),), "all", "mae"),
    "gruv3-stacked-mixed": ([("gruv3", 3), ("lstm", 3), ("rnn", 2, "tanh")], (), "last", "abs_sum"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_reference_golden_passes_against_the_converted_module(tmp_path, name, dtype):
    recurrent, dense, readout, loss = ARCHITECTURES[name]
    golden = make_golden(tmp_path / "g.npz", recurrent, dense, dtype=dtype, readout=readout, loss=loss,
                         every_step=True)
    assert_parity(golden, models.build_module(golden.chain, dtype=TORCH[dtype]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("loss", models.LOSSES)
def test_every_loss_passes(tmp_path, loss, dtype):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),), dtype=dtype, loss=loss)
    assert_parity(golden, models.build_module(golden.chain, dtype=TORCH[dtype]))


def test_a_path_works_as_well_as_a_loaded_golden(tmp_path):
    make_golden(tmp_path / "g.npz", [("gru", 3)], ((2,),))
    assert_parity(str(tmp_path / "g.npz"), models.build_module(load_golden(tmp_path / "g.npz").chain,
                                                                 dtype=torch.float64))


class UserLSTMClassifier(torch.nn.Module):
    """A port as a user writes it: batch-first nn.LSTM, its own Linear head, returns the last step only."""

    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)
        self.head = torch.nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, x):  # (batch, len, in) -> (batch, out)
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_a_users_own_module_maps_automatically_batch_first(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), readout="last")
    assert_parity(golden, UserLSTMClassifier(), batch_first=True)


class StackedGRU(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(3, 3, num_layers=2, dtype=torch.float64)

    def forward(self, x):
        return self.gru(x)[0]


def test_num_layers_two_counts_as_two_stacked_flux_layers(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 3), ("gru", 3)], readout="all")
    assert_parity(golden, StackedGRU())


class Named(torch.nn.Module):
    """Parameters under the user's own names: mapped explicitly."""

    def __init__(self):
        super().__init__()
        self.enc = models.OneBiasRNN(3, 4, "tanh", dtype=torch.float64)
        self.proj = torch.nn.Parameter(torch.zeros(2, 4, dtype=torch.float64))
        self.shift = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, x):
        h, _ = self.enc(x)
        return h[-1] @ self.proj.T + self.shift


def test_an_explicit_mapping_names_each_torch_parameter(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "tanh")], ((2,),))
    mapping = {"layers[1].cell.Wi": "enc.weight_ih_l0", "layers[1].cell.Wh": "enc.weight_hh_l0",
               "layers[1].cell.bias": "enc.bias_l0", "layers[2].weight": "proj", "layers[2].bias": "shift"}
    assert_parity(golden, Named(), mapping=mapping)


def test_a_user_optimizer_is_used_when_given(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], rule="descent:eta=0.1")
    module = models.build_module(golden.chain, dtype=torch.float64)
    sgd = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    assert_parity(golden, module, sgd)
    wrong = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.2)
    with pytest.raises(AssertionError, match="parameters after step 3 of layers\\[1\\]"):
        assert_parity(golden, module, wrong)

"""Real ports, written as a user writes PyTorch (not this package's modules): matched by the order forward calls
their layers, subclasses included; a module with no automatic match gets one line and a ready-to-edit mapping;
a missing or extra parameter is a ParityError naming both sides; the user's own loss and optimizer object."""

import numpy as np
import pytest
import torch
from torch import nn

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package (pyproject)
    import tomli as tomllib

from fluxparity.testing import ParityError, assert_parity
from fluxparity.testing._mapping import slots_for

from golden_support import make_golden

DTYPES = {"f32": (np.float32, torch.float32), "f64": (np.float64, torch.float64)}


class HeadFirst(nn.Module):
    """The head is declared BEFORE the LSTM; forward calls the LSTM first."""

    def __init__(self, dtype, num_layers=1):
        super().__init__()
        self.head = nn.Linear(4, 2, dtype=dtype)
        self.lstm = nn.LSTM(3, 4, num_layers=num_layers, batch_first=True, dtype=dtype)

    def forward(self, x):  # (batch, len, in) -> (batch, out)
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_layers_are_matched_in_call_order_not_registration_order(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), dtype=np_dtype)
    assert_parity(golden, HeadFirst(torch_dtype), batch_first=True)


def test_num_layers_two_still_counts_as_two_layers_in_call_order(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4), ("lstm", 4)], ((2,),), every_step=True)
    module = HeadFirst(torch.float64, num_layers=2)
    module.lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True, dtype=torch.float64)
    assert_parity(golden, module, batch_first=True)


class MyLSTM(nn.LSTM):
    """A user's subclass (e.g. to add a docstring or an init); still an nn.LSTM."""


class MyLinear(nn.Linear):
    pass


class SubclassPort(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = MyLSTM(3, 4, dtype=torch.float64)
        self.fc = MyLinear(4, 2, dtype=torch.float64)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][-1])


def test_subclasses_of_torch_layers_count_as_those_layers(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),))
    assert_parity(golden, SubclassPort())


class Counting(HeadFirst):
    """Counts its calls: the dry run that finds the call order must not touch the module."""

    def __init__(self):
        super().__init__(torch.float64)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


def test_the_call_order_dry_run_leaves_the_module_and_the_random_generator_alone(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),))
    module = Counting()
    torch.manual_seed(5)
    slots = slots_for(golden.chain, module)
    drawn = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(drawn, torch.rand(1))
    assert module.calls == 0
    assert [s.torch_name for s in slots][:1] == ["lstm.weight_ih_l0"]


class HandWrittenRNN(nn.Module):
    """An Elman RNN written out by hand, as in a tutorial: no nn.RNN to match."""

    def __init__(self, dtype):
        super().__init__()
        self.W_x = nn.Parameter(torch.zeros(5, 3, dtype=dtype))
        self.W_h = nn.Parameter(torch.zeros(5, 5, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(5, dtype=dtype))
        self.out = nn.Linear(5, 2, dtype=dtype)

    def forward(self, x):  # (len, batch, in) -> (batch, out)
        h = x.new_zeros(x.shape[1], 5)
        for x_t in x:
            h = torch.tanh(x_t @ self.W_x.T + h @ self.W_h.T + self.b)
        return self.out(h)


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_automatic_match_prints_one_line_and_a_ready_to_edit_mapping(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    golden = make_golden(tmp_path / "g.npz", [("rnn", 5, "tanh")], ((2,),), dtype=np_dtype)
    with pytest.raises(ParityError) as info:
        assert_parity(golden, HandWrittenRNN(torch_dtype))
    message = str(info.value)
    first = message.splitlines()[1]
    assert "no automatic match" in first and "pass mapping=" in first
    for name in golden.chain.arrays():
        assert f'"{name}"' in message
    assert "W_x (5, 3)" in message and "out.weight (2, 5)" in message
    template = message[message.index("# mapping:"):]
    mapping = tomllib.loads(template)  # every shape here is unique, so the guesses are the answer
    assert mapping["layers[1].cell.Wh"] == "W_h"
    assert_parity(golden, HandWrittenRNN(torch_dtype), mapping=mapping)


class NoBiasHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, dtype=torch.float64)
        self.fc = nn.Linear(4, 2, bias=False, dtype=torch.float64)

    def forward(self, x):
        return self.fc(self.gru(x)[0][-1])


def test_a_linear_without_bias_for_a_dense_with_bias_names_both_sides(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 4)], ((2,),))
    with pytest.raises(ParityError) as info:
        assert_parity(golden, NoBiasHead())
    m = info.value.mismatches[0]
    assert (m.flux_name, m.torch_name) == ("layers[2].bias", "fc.bias")
    assert "a missing parameter" in str(info.value) and "bias=False" in str(info.value)


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, dtype=torch.float64)
        self.fc = nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, x):
        return self.fc(self.gru(x)[0][-1])


def test_the_users_own_loss_is_compared_value_gradients_and_training(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 4)], ((2,),), every_step=True)
    assert_parity(golden, Plain(), loss_fn=lambda y, t: ((y - t) ** 2).mean())
    with pytest.raises(ParityError) as info:  # summed where Flux's mse takes the mean
        assert_parity(golden, Plain(), loss_fn=lambda y, t: ((y - t) ** 2).sum())
    assert info.value.mismatches[0].flux_name == "loss"


class MyTrainingStep:
    """Not a torch.optim.Optimizer: any object with zero_grad() and step() works."""

    def __init__(self, params, lr):
        self.params, self.lr = [p for p in params if p.requires_grad], lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is not None:
                p -= self.lr * p.grad


def test_any_object_with_zero_grad_and_step_is_an_optimizer(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 4)], ((2,),), rule="descent:eta=0.1", every_step=True)
    module = Plain()
    assert_parity(golden, module, MyTrainingStep(module.parameters(), 0.1))


def test_steps_compares_the_first_steps_and_needs_every_step(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 4)], ((2,),), every_step=True)
    assert_parity(golden, Plain(), steps=2)
    only_last = make_golden(tmp_path / "h.npz", [("gru", 4)], ((2,),))
    with pytest.raises(ValueError, match="steps=2 needs a golden with the parameters after every step"):
        assert_parity(only_last, Plain(), steps=2)


def test_the_compared_column_names_every_step(tmp_path):
    from fluxparity.testing import _record

    golden = make_golden(tmp_path / "g.npz", [("gru", 4)], ((2,),), every_step=True)
    recorder = _record.start()
    try:
        assert_parity(golden, Plain())
    finally:
        _record.stop()
    compared = recorder.records[-1].compared
    assert compared[1] == "the update of every step 1-3 (p_k - p_(k-1))"


def test_from_module_converts_a_users_own_module_with_the_same_matcher(tmp_path):
    from fluxparity import models

    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),))
    port = HeadFirst(torch.float64)  # head declared first: matched by call order
    chain = models.from_module(port, dtype=np.float64, like="Chain(LSTM(3 => 4), Dense(4 => 2))")
    assert chain.arrays()["layers[1].cell.Wi"].tolist() == port.lstm.weight_ih_l0.detach().numpy().tolist()
    summed = (port.lstm.bias_ih_l0 + port.lstm.bias_hh_l0).detach().numpy()
    assert chain.arrays()["layers[1].cell.bias"].tolist() == summed.tolist()
    assert chain.arrays()["layers[2].weight"].tolist() == port.head.weight.detach().numpy().tolist()
    hand = HandWrittenRNN(torch.float64)
    with torch.no_grad():
        hand.W_h.fill_(0.5)
    mapping = {"layers[1].cell.Wi": "W_x", "layers[1].cell.Wh": "W_h", "layers[1].cell.bias": "b",
               "layers[2].weight": "out.weight", "layers[2].bias": "out.bias"}
    like = make_golden(tmp_path / "h.npz", [("rnn", 5, "tanh")], ((2,),)).chain
    chain = models.from_module(hand, dtype=np.float32, like=like, mapping=mapping)
    assert chain.dtype == np.float32 and chain.layers[0].activation == "tanh"
    assert np.all(chain.arrays()["layers[1].cell.Wh"] == np.float32(0.5))
    with pytest.raises(ValueError, match="no automatic match"):
        models.from_module(hand, dtype=np.float64, like=like)
    assert golden.chain.readout == "last"


class CallsForwardDirectly(nn.Module):
    """Calls ``self.gru.forward(x)``, which forward hooks do not see: registration order still matches."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, dtype=torch.float64)
        self.fc = nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, x):
        return self.fc(self.gru.forward(x)[0][-1])


def test_a_layer_the_hooks_miss_falls_back_to_registration_order(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("gru", 4)], ((2,),))
    assert_parity(golden, CallsForwardDirectly())

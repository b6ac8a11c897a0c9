"""Every classic porting mistake is caught AND named ("likely porting mistake: ..."), each planted in a port
written as a user writes PyTorch: the recognisers recompute the alternative from the golden's data."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fluxparity.testing import ParityError, assert_parity

from golden_support import make_golden

DTYPES = {"f32": (np.float32, torch.float32), "f64": (np.float64, torch.float64)}


def hint(golden, module, **options) -> str:
    with pytest.raises(ParityError) as info:
        assert_parity(golden, module, **options)
    hints = [m.likely_mistake for m in info.value.mismatches if m.likely_mistake]
    assert hints, str(info.value)
    assert "likely porting mistake: " + hints[0] in str(info.value)
    return hints[0]


class LSTMHead(nn.Module):
    """nn.LSTM then nn.Linear, time-first; ``read`` picks the step(s) the head sees; ``after`` post-processes."""

    def __init__(self, dtype, hidden=4, out=2, read=lambda o: o[-1], after=lambda y: y, batch_first=False,
                 dropout=0.0):
        super().__init__()
        self.lstm = nn.LSTM(3, hidden, batch_first=batch_first, dtype=dtype)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, out, dtype=dtype)
        self.read, self.after = read, after

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.after(self.head(self.drop(self.read(out))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_5_reading_the_first_step_says_which_step_matches(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), dtype=np_dtype)
    assert "read at step 1 of 5" in hint(golden, LSTMHead(torch_dtype, read=lambda o: o[0]))
    assert "read at step 3 of 5" in hint(golden, LSTMHead(torch_dtype, read=lambda o: o[2]))


def test_6_dropout_left_in_train_mode(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),))
    text = hint(golden, LSTMHead(torch.float64, dropout=0.5))
    assert "dropout left in train mode" in text and "drop (Dropout, p=0.5)" in text
    assert_parity(golden, LSTMHead(torch.float64, dropout=0.5).eval())


class CarriesState(nn.Module):
    """Keeps the LSTM's last state for the next call, as a stateful port of Flux's old Recur would."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, dtype=torch.float64)
        self.head = nn.Linear(4, 2, dtype=torch.float64)
        self.state = None

    def forward(self, x):
        out, state = self.lstm(x, self.state)
        self.state = tuple(s.detach() for s in state)
        return self.head(out[-1])


def test_7_a_hidden_state_carried_between_calls(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),))
    with pytest.raises(ParityError) as info:  # the first call (forward) matches; the second does not
        assert_parity(golden, CarriesState())
    assert info.value.mismatches[0].quantity == "gradient"
    assert "a hidden state carried between calls" in str(info.value)


@pytest.mark.parametrize("dtype", DTYPES)
def test_8_time_and_batch_swapped_when_len_equals_batch(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), dtype=np_dtype, length=4, batch=4)
    port = LSTMHead(torch_dtype, batch_first=True, read=lambda o: o[:, -1])  # a batch-first port ...
    assert "time and batch axes swapped on the way in" in hint(golden, port)  # ... checked as time-first
    assert_parity(golden, LSTMHead(torch_dtype, batch_first=True, read=lambda o: o[:, -1]), batch_first=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_9_an_activation_missing_or_extra_on_a_dense_layer(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    with_tanh = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2, "tanh"),), dtype=np_dtype)
    assert "an activation missing on Dense layer 2" in hint(with_tanh, LSTMHead(torch_dtype))
    plain = make_golden(tmp_path / "h.npz", [("lstm", 4)], ((2,),), dtype=np_dtype)
    text = hint(plain, LSTMHead(torch_dtype, after=torch.sigmoid))
    assert "an extra activation on Dense layer 2: the port applies sigmoid" in text


def test_10_softmax_before_a_logit_loss_in_forward_and_in_the_loss(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((3,),), loss="logitcrossentropy")
    assert "softmax applied before a logit loss" in hint(golden, LSTMHead(torch.float64, out=3,
                                                                           after=lambda y: y.softmax(-1)))
    text = hint(golden, LSTMHead(torch.float64, out=3), loss_fn=lambda y, t: F.cross_entropy(y.softmax(-1), t))
    assert "softmax applied before a logit loss" in text


class Step:
    """A training step as users write it: optional gradient clipping, then a torch.optim optimizer."""

    def __init__(self, module, make, clip=None):
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.opt, self.clip = make(self.params), clip

    def zero_grad(self):
        self.opt.zero_grad()

    def step(self):
        if self.clip:
            self.clip(self.params)
        self.opt.step()


@pytest.mark.parametrize("dtype", DTYPES)
def test_11_torch_adamw_default_weight_decay_on_a_three_step_golden(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), dtype=np_dtype, every_step=True)
    module = LSTMHead(torch_dtype)
    text = hint(golden, module, optimizer=Step(module, lambda ps: torch.optim.AdamW(ps, lr=0.01)))
    assert "torch.optim.AdamW's default weight_decay=0.01" in text


@pytest.mark.parametrize("dtype", DTYPES)
def test_11_another_epsilon_and_a_learning_rate_off_by_a_factor(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), dtype=np_dtype, every_step=True)
    module = LSTMHead(torch_dtype)
    text = hint(golden, module, optimizer=Step(module, lambda ps: torch.optim.Adam(ps, lr=0.01, eps=1e-4)))
    assert "an epsilon of 0.0001" in text
    module = LSTMHead(torch_dtype)
    text = hint(golden, module, optimizer=Step(module, lambda ps: torch.optim.Adam(ps, lr=0.02)))
    assert "a learning rate off by a factor 2" in text


@pytest.mark.parametrize("dtype", DTYPES)
def test_11_global_clip_grad_norm_where_flux_clips_per_array(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), dtype=np_dtype, every_step=True,
                         rule="chain:clipnorm=0.05,descent(eta=0.1)")
    module = LSTMHead(torch_dtype)
    step = Step(module, lambda ps: torch.optim.SGD(ps, lr=0.1),
                clip=lambda ps: torch.nn.utils.clip_grad_norm_(ps, 0.05))
    assert "global clipping" in hint(golden, module, optimizer=step)
    module = LSTMHead(torch_dtype)
    step = Step(module, lambda ps: torch.optim.SGD(ps, lr=0.1),
                clip=lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.05))
    assert "elementwise clipping" in hint(golden, module, optimizer=step)


def per_array(ps, omega=0.05):
    for p in ps:
        torch.nn.utils.clip_grad_norm_([p], omega)


def test_11_norm_clipping_where_flux_clamps_elements(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True,
                         rule="chain:clipgrad=0.01,descent(eta=0.1)")
    module = LSTMHead(torch.float64)
    step = Step(module, lambda ps: torch.optim.SGD(ps, lr=0.1), clip=lambda ps: per_array(ps, 0.01))
    assert "norm clipping (clip_grad_norm_ per parameter" in hint(golden, module, optimizer=step)


def test_14_per_array_clip_grad_norm_adds_1e_6_float64_names_it_float32_accepts_it(tmp_path):
    rule = "chain:clipnorm=0.05,descent(eta=0.1)"
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True, rule=rule)
    module = LSTMHead(torch.float64)
    step = Step(module, lambda ps: torch.optim.SGD(ps, lr=0.1), clip=per_array)
    assert "torch's clip_grad_norm_ divides by (norm + 1e-6)" in hint(golden, module, optimizer=step)
    golden32 = make_golden(tmp_path / "h.npz", [("lstm", 4)], ((2,),), every_step=True, rule=rule, dtype=np.float32)
    module = LSTMHead(torch.float32)
    assert_parity(golden32, module, Step(module, lambda ps: torch.optim.SGD(ps, lr=0.1), clip=per_array))


class HandGRU(nn.Module):
    """A GRU written out by hand; ``v3=True`` applies the reset gate BEFORE the matrix product (Flux's GRUv3)."""

    def __init__(self, dtype, v3):
        super().__init__()
        self.v3 = v3
        self.w_ih = nn.Parameter(torch.zeros(12, 3, dtype=dtype))
        self.w_hh = nn.Parameter(torch.zeros(12, 4, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(12, dtype=dtype))
        self.w_hn = nn.Parameter(torch.zeros(4, 4, dtype=dtype))  # used by the GRU-on-GRUv3 case only
        self.head = nn.Linear(4, 2, dtype=dtype)

    def forward(self, x):
        h = x.new_zeros(x.shape[1], 4)
        b_r, b_z, b_n = self.b.chunk(3)
        for x_t in x:
            i_r, i_z, i_n = (x_t @ self.w_ih.T).chunk(3, dim=1)
            w_r, w_z, w_n = self.w_hh.chunk(3)
            r = torch.sigmoid(i_r + h @ w_r.T + b_r)
            z = torch.sigmoid(i_z + h @ w_z.T + b_z)
            if self.v3:  # GRUv3's candidate with the third block of w_hh
                n = torch.tanh(i_n + (r * h) @ w_n.T + b_n)
            else:  # nn.GRU's candidate, with a separate W_h̃
                n = torch.tanh(i_n + r * (h @ self.w_hn.T) + b_n)
            h = (1 - z) * n + z * h
        return self.head(h)


@pytest.mark.parametrize("dtype", DTYPES)
def test_12_a_gruv3_cell_on_a_gru_golden_and_the_reverse(tmp_path, dtype):
    np_dtype, torch_dtype = DTYPES[dtype]
    gru = make_golden(tmp_path / "g.npz", [("gru", 4)], ((2,),), dtype=np_dtype)
    mapping = {"layers[1].cell.Wi": "w_ih", "layers[1].cell.Wh": "w_hh", "layers[1].cell.b": "b",
               "layers[2].weight": "head.weight", "layers[2].bias": "head.bias"}
    assert "a GRUv3 cell on a GRU golden" in hint(gru, HandGRU(torch_dtype, v3=True), mapping=mapping)
    v3 = make_golden(tmp_path / "h.npz", [("gruv3", 4)], ((2,),), dtype=np_dtype)
    text = hint(v3, HandGRU(torch_dtype, v3=False), mapping={**mapping, "layers[1].cell.Wh_htilde": "w_hn"})
    assert "a GRU cell (nn.GRU's r ⊙ (W_hn·h)) on a GRUv3 golden" in text


class TanhRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 4, dtype=torch.float64)  # nonlinearity='tanh', the only default
        self.fc = nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][-1])


def test_12_nn_rnn_tanh_on_an_identity_rnn_golden(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "identity")], ((2,),))
    text = hint(golden, TanhRNN())
    assert "an RNN with tanh where the golden's RNN has identity" in text and "nn.RNN takes only tanh or relu" in text


def test_every_test_named_in_the_mistakes_table_exists():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent
    doc = (root.parent / "docs" / "testing.md").read_text(encoding="utf-8")
    table = doc.split("## Mistakes we recognise", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"`(test_testing_\w+\.py)?::(test_\w+)`", table)
    assert len(names) >= 15
    current = None
    for file, test in names:
        current = file or current
        assert f"def {test}(" in (root / current).read_text(encoding="utf-8"), (current, test)


def test_13_a_float32_three_step_golden_sees_adamw_weight_decay_in_the_updates(tmp_path):
    from fluxparity.optim import FluxOptimiser, rule

    golden = make_golden(tmp_path / "g.npz", [("lstm", 5)], ((2,),), dtype=np.float32, every_step=True)
    module = LSTMHead(torch.float32, hidden=5)
    planted = FluxOptimiser([p for p in module.parameters() if p.requires_grad],
                            rule("AdamW", **{"eta": 0.01, "lambda": 0.01}))
    with pytest.raises(ParityError) as info:
        assert_parity(golden, module, planted)
    quantities = {m.quantity.split(" (")[0] for m in info.value.mismatches}
    assert {"update of step 1", "update of step 2", "update of step 3"} <= quantities  # every step's update
    # how small a planted difference each default detects: benchmarks/measure_update_sensitivity.py, parity.md

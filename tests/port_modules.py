"""Users' PyTorch modules for tests/test_port_flux.py, importable as ``port_modules:<factory>``."""

from __future__ import annotations

import torch
from torch import nn


class LstmRegressor(nn.Module):
    """The usual hand-written model: nn.LSTM, then two heads with relu between, read at the last step. Its
    biases are as torch initialises them (both bias_ih and bias_hh nonzero)."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.LSTM(3, 5, dtype=dtype)
        self.hidden = nn.Linear(5, 4, dtype=dtype)
        self.out = nn.Linear(4, 2, dtype=dtype)

    def forward(self, x):
        h, _ = self.rnn(x)
        return self.out(torch.relu(self.hidden(h)))[-1]


class StackedGru(nn.Module):
    """Batch-first, a two-layer nn.GRU (bias_hh's b_hn zeroed) then a tanh head, every step."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        torch.manual_seed(1)
        self.gru = nn.GRU(2, 4, num_layers=2, batch_first=True, dtype=dtype)
        with torch.no_grad():
            for k in range(2):
                getattr(self.gru, f"bias_hh_l{k}")[8:] = 0  # b_hn: Flux's GRU has none
        self.head = nn.Linear(4, 3, dtype=dtype)

    def forward(self, x):
        return torch.tanh(self.head(self.gru(x)[0]))


class CalledOutOfOrder(nn.Module):
    """Registered head first, called last; an nn.RNN(relu) feeding an nn.RNN(tanh), then sigmoid."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        torch.manual_seed(2)
        self.head = nn.Linear(3, 1, dtype=dtype)
        self.first = nn.RNN(2, 4, nonlinearity="relu", dtype=dtype)
        self.second = nn.RNN(4, 3, dtype=dtype)

    def forward(self, x):
        return torch.sigmoid(self.head(self.second(self.first(x)[0])[0]))[-1]


def lstm_regressor():
    return LstmRegressor()


def lstm_regressor_float32():
    return LstmRegressor(torch.float32)


def stacked_gru():
    return StackedGru()


def called_out_of_order():
    return CalledOutOfOrder()


def gru_with_b_hn():
    torch.manual_seed(3)
    return nn.Sequential(nn.GRU(2, 3, dtype=torch.float64))


class _WithConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 1)
        self.rnn = nn.LSTM(2, 3)

    def forward(self, x):
        return self.rnn(x)[0]


class _WithEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 2)
        self.rnn = nn.GRU(2, 3)

    def forward(self, x):
        return self.rnn(x)[0]


class _WithAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(2, 4)
        self.attention = nn.MultiheadAttention(4, 2)

    def forward(self, x):
        h = self.rnn(x)[0]
        return self.attention(h, h, h)[0]


class _Softplus(nn.Module):
    """An activation a Dense cannot have here."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(2, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return nn.functional.softplus(self.head(self.rnn(x)[0]))


def with_conv():
    return _WithConv()


def with_embedding():
    return _WithEmbedding()


def with_attention():
    return _WithAttention()


def with_softplus():
    return _Softplus()


def bidirectional():
    return nn.Sequential(nn.LSTM(2, 3, bidirectional=True))


class _NoBiasHead(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.rnn = nn.RNN(2, 3, dtype=torch.float64)
        self.head = nn.Linear(3, 2, bias=False, dtype=torch.float64)

    def forward(self, x):
        return self.head(self.rnn(x)[0])[-1]


def no_bias_head():
    return _NoBiasHead()


class _ReluNeverNegative(nn.Module):
    """A relu head whose inputs are always positive (bias 100, |weights| small): relu and identity compute the
    same function here, so no port can tell which the module applies."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.rnn = nn.GRU(2, 3, dtype=torch.float64)
        with torch.no_grad():
            self.rnn.bias_hh_l0[6:] = 0
        self.head = nn.Linear(3, 2, dtype=torch.float64)
        with torch.no_grad():
            self.head.bias.fill_(100.0)

    def forward(self, x):
        return torch.relu(self.head(self.rnn(x)[0]))[-1]


def relu_never_negative():
    return _ReluNeverNegative()


def fluxparity_chain():
    """The Chain behind :func:`fluxparity_module` (identity RNN, GRUv3, a tanh Dense; every step)."""
    import numpy as np

    from fluxparity import models

    return models.init_chain(2, [("rnn", 3, "identity"), ("gruv3", 3)], [(2, "tanh")], seed=1, dtype=np.float64,
                             readout="all")


def fluxparity_module():
    """fluxparity's own torch modules (OneBiasRNN, GRUv3, nn.Linear) built from :func:`fluxparity_chain`."""
    from fluxparity import models

    return models.build_module(fluxparity_chain(), dtype=torch.float64)

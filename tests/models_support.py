"""What the model-library tests share: the models under test and float64 as torch's default dtype."""

import pytest
import torch

MODELS = [("rnn", "identity"), ("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"), ("gruv3", "tanh")]
MODEL_IDS = ["rnn-identity", "rnn-tanh", "rnn-relu", "lstm", "gru", "gruv3"]


@pytest.fixture(autouse=True)
def float64_everywhere():
    """Tensors made without an explicit dtype are float64 (every call in these tests passes one anyway)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)

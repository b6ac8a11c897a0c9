"""The PyTorch backend: the idiomatic port a user would write, trained per sample with an optimizer.

``nn.RNN`` offers only tanh and relu and keeps two biases, so the port is a small module with Flux's
single bias; for tanh it equals ``nn.RNN`` with ``bias_ih = b`` and ``bias_hh = 0`` frozen (tested).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..adam import BETA1, BETA2, EPSILON
from ..config import RunConfig
from ..data import Dataset
from ..models import Chain, tutorial_weights, with_tutorial_weights
from .base import Progress, RunResult, check_initial

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
OPTIMIZERS = ("torch", "optimisers")


class SumRNN(nn.Module):
    """Flux's ``RNN(in => out, sigma)``: ``h_t = sigma((Wi x_t + Wh h_{t-1}) + b)``, ``h_0 = 0`` (not trained).

    ``forward`` takes one sequence ``(len, in)`` (PyTorch's time-first layout, no batch) and returns every
    hidden state ``(len, out)``, like Flux's ``rnn(x)`` returns ``out x len``.
    """

    def __init__(self, params: Chain, dtype: torch.dtype) -> None:
        super().__init__()
        wi, wh, b = tutorial_weights(params)  # the tutorial's shape only: Wi (1, 1), Wh (1, 1), bias (1,)
        self.template = params
        self.weight_ih = nn.Parameter(torch.tensor([[wi]], dtype=dtype))  # (out, in), as Flux's Wi
        self.weight_hh = nn.Parameter(torch.tensor([[wh]], dtype=dtype))  # (out, out), as Flux's Wh
        self.bias = nn.Parameter(torch.tensor([b], dtype=dtype))  # (out,): ONE bias, as Flux
        self.activation = {"identity": nn.Identity(), "tanh": nn.Tanh()}[params.layers[0].activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(self.weight_hh.shape[0], dtype=x.dtype)
        states = []
        for x_t in x:
            h = self.activation((self.weight_ih @ x_t + self.weight_hh @ h) + self.bias)
            states.append(h)
        return torch.stack(states)

    def to_params(self) -> Chain:
        """The trained weights as the tutorial's Chain, float64."""
        value = lambda t: float(t.detach().to(torch.float64).reshape(-1)[0])  # noqa: E731
        return with_tutorial_weights(self.template, value(self.weight_ih), value(self.weight_hh), value(self.bias))


def ieee_sqrt(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded (IEEE 754) square root of a CPU tensor, as Julia's ``sqrt`` computes it.

    ``torch.sqrt`` on the CPU is accurate to 1 ulp but not correctly rounded (with the torch 2.13 CPU
    wheel on x86-64, about 1.4% of float64 and 20% of float32 inputs come out 1 ulp off; the same behaviour
    is reported upstream in pytorch/pytorch#31250). Julia's ``sqrt`` is the hardware instruction, as is
    NumPy's, so this goes through NumPy. ``tests/test_ieee_sqrt.py`` checks the rounding with exact
    rational arithmetic; docs/parity.md shows what the difference does to a training run.
    """
    if x.device.type != "cpu":
        raise ValueError(f"ieee_sqrt needs a CPU tensor, got one on {x.device}")
    return torch.from_numpy(np.asarray(np.sqrt(x.detach().numpy())))  # asarray: a 0-d result stays an array


class OptimisersAdam(torch.optim.Optimizer):
    """``torch.optim`` optimizer with Optimisers.jl 0.4 Adam's arithmetic (see ``fluxparity.adam``).

    Constants are converted to the parameter's dtype, ``beta^t`` is a running product in that dtype, and
    the update is ``x - ((m / (1 - beta1_t)) / (sqrt(v / (1 - beta2_t)) + eps)) * eta``, op by op, with
    Julia's correctly rounded ``sqrt`` (:func:`ieee_sqrt`), not ``torch.sqrt``.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(BETA1, BETA2), eps: float = EPSILON) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                as_t = lambda v: torch.tensor(v, dtype=p.dtype)  # noqa: E731  (T(o.eta) etc.)
                one, b1, b2 = as_t(1.0), as_t(group["betas"][0]), as_t(group["betas"][1])
                state = self.state[p]
                if not state:
                    state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                    state["beta1_t"], state["beta2_t"] = b1.clone(), b2.clone()
                m, v, g = state["m"], state["v"], p.grad
                m.copy_(b1 * m + (one - b1) * g)
                v.copy_(b2 * v + (one - b2) * (g * g))
                p.sub_(((m / (one - state["beta1_t"])) / (ieee_sqrt(v / (one - state["beta2_t"])) + as_t(group["eps"])))
                       * as_t(group["lr"]))
                state["beta1_t"] = state["beta1_t"] * b1
                state["beta2_t"] = state["beta2_t"] * b2
        return loss


def check_optimizer(kind: str) -> None:
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose from {', '.join(OPTIMIZERS)}")


def make_optimizer(kind: str, params, lr: float) -> torch.optim.Optimizer:
    check_optimizer(kind)
    if kind == "torch":
        return torch.optim.Adam(params, lr=lr, betas=(BETA1, BETA2), eps=EPSILON)
    return OptimisersAdam(params, lr=lr)


def _as_inputs(sequences, dtype: torch.dtype) -> list[torch.Tensor]:
    # Boundary: float64 (len,) NumPy -> (len, in=1) tensors in the run's dtype, once.
    return [torch.tensor(s, dtype=dtype).reshape(-1, 1) for s in sequences]


@torch.no_grad()
def _loss_sum(model: SumRNN, inputs, labels) -> float:
    """Sum of |last output - label|, each term in the run's dtype, accumulated in float64."""
    return float(sum(float((model(x)[-1, 0] - y).abs()) for x, y in zip(inputs, labels)))


PATHS = ("fast", "plain")


class TorchBackend:
    """``optimizer="torch"``: ``torch.optim.Adam`` (what a port would use); ``"optimisers"``: Optimisers.jl arithmetic.

    ``path="plain"`` trains :class:`SumRNN` with autograd, one sample at a time: the porting reference.
    ``path="fast"`` (the default for the tutorial's model) computes the same per-sample training as one
    batched computation with hand-spelled gradients (``pytorch_fast``); its results are bit-identical to
    the plain path's in float32 and float64 (``tests/test_torch_fast.py``) and it is ~10x faster. Models
    beyond the tutorial always take the plain path.
    """

    name = "torch"
    cost_rank = 0  # the slowest backend: start it first when runs are spread over processes

    def __init__(self, optimizer: str = "torch", path: str = "fast") -> None:
        check_optimizer(optimizer)
        if path not in PATHS:
            raise ValueError(f"unknown torch path {path!r}; choose from {', '.join(PATHS)}")
        self.optimizer = optimizer
        self.path = path

    def unavailable_reason(self) -> Optional[str]:
        return None

    def train(self, config: RunConfig, data: Dataset, initial: Chain,
              progress: Optional[Progress] = None) -> RunResult:
        torch.set_num_threads(1)  # tiny tensors: threads only add overhead
        check_initial(config, initial)
        if not initial.is_tutorial_shape:  # SumRNN and the fast path serve only the tutorial's shape
            from ._torch_models import train_torch_model

            return train_torch_model(config, data, initial,
                                     lambda params, lr: make_optimizer(self.optimizer, params, lr), progress)
        if self.path == "fast":
            from .pytorch_fast import train_batch

            return train_batch([(config, data, initial)], self.optimizer, progress)[0]
        dtype = TORCH_DTYPES[config.dtype]
        model = SumRNN(initial, dtype)
        train_x, test_x, probe_x = (_as_inputs(s, dtype) for s in (data.train_sequences, data.test_sequences, data.probes))
        train_y, test_y = (torch.tensor(y, dtype=dtype) for y in (data.train_labels, data.test_labels))
        opt = make_optimizer(self.optimizer, model.parameters(), config.lr)
        n, epochs = len(train_x), config.epochs
        step_losses, epoch_test = np.zeros(n * epochs), np.zeros(epochs)
        start = time.perf_counter()
        train_before, test_before = _loss_sum(model, train_x, train_y), _loss_sum(model, test_x, test_y)
        for epoch in range(epochs):
            for i, (x, y) in enumerate(zip(train_x, train_y)):
                opt.zero_grad()
                loss = (model(x)[-1, 0] - y).abs()
                loss.backward()
                opt.step()
                step_losses[epoch * n + i] = loss.item()
            epoch_test[epoch] = _loss_sum(model, test_x, test_y)
            if progress is not None:
                progress((epoch + 1) * n, epochs * n)
        with torch.no_grad():
            probes = np.array([float(model(x)[-1, 0]) for x in probe_x])
        return RunResult.from_training(
            step_losses=step_losses,
            epoch_test_loss=epoch_test,
            train_loss_before=train_before,
            test_loss_before=test_before,
            final_params=model.to_params(),
            probe_predictions=probes,
            seconds=time.perf_counter() - start,
            notes={"optimizer": self.optimizer, "torch": torch.__version__, "path": "plain"},
        )

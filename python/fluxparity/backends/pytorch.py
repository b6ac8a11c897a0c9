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

from ..models import Chain, tutorial_weights, with_tutorial_weights
from ..optim import FluxOptimiser, Rule, torch_mapping
from ..run import RunSpec
from .base import Progress, RunResult

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


def check_optimizer(kind: str) -> None:
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose from {', '.join(OPTIMIZERS)}")


def make_optimizer(kind: str, params, rule: Rule):
    """The optimizer for ``rule`` (a :class:`fluxparity.optim.Rule`), with ``zero_grad()`` and ``step()``.

    ``"optimisers"``: :class:`fluxparity.optim.FluxOptimiser`, Optimisers.jl's arithmetic (the reference's
    operations in the same order: bit for bit on the same gradients, float32 and float64). ``"torch"``: the stock ``torch.optim`` port of the rule
    (:func:`fluxparity.optim.torch_mapping`, e.g. ``torch.optim.Adam(lr=eta, betas=beta, eps=epsilon)`` for
    Adam); raises :class:`fluxparity.optim.NoTorchEquivalent` (a ValueError saying why) when there is none.
    """
    check_optimizer(kind)
    if kind == "torch":
        return torch_mapping(rule).bind(params)
    return FluxOptimiser(params, rule)


def _as_inputs(sequences, dtype: torch.dtype) -> list[torch.Tensor]:
    # Boundary: float64 (len,) NumPy -> (len, in=1) tensors in the run's dtype, once.
    return [torch.tensor(s, dtype=dtype).reshape(-1, 1) for s in sequences]


@torch.no_grad()
def _loss_sum(model: SumRNN, inputs, labels) -> float:
    """Sum of |last output - label|, each term in the run's dtype, accumulated in float64."""
    return float(sum(float((model(x)[-1, 0] - y).abs()) for x, y in zip(inputs, labels)))


PATHS = ("fast", "plain")


class TorchBackend:
    """``optimizer="torch"``: the stock ``torch.optim`` port of the run's rule (``torch.optim.Adam`` for the
    tutorial: what a port would use); ``"optimisers"``: Optimisers.jl's arithmetic (``FluxOptimiser``).

    ``path="plain"`` trains :class:`SumRNN` with autograd, one sample at a time: the porting reference.
    ``path="fast"`` (the default for the tutorial's model) computes the same per-sample training as one
    batched computation with hand-spelled gradients (``pytorch_fast``); its results are bit-identical to
    the plain path's in float32 and float64 (``tests/test_torch_fast.py``) and it is ~10x faster. Models
    beyond the tutorial always take the plain path. The fast path spells out Adam only: a run with another
    rule and ``path="fast"`` is refused (ValueError); use ``path="plain"``.

    ``module_factory``: train YOUR module instead of this package's port ("does my port train like Flux?").
    A zero-argument callable returning a fresh ``torch.nn.Module`` (called once per run; a module built in
    another float type is converted to the run's dtype with ``module.to``, and the result's notes say so).
    The run's initial weights are loaded into it by the matcher ``fluxparity.testing`` uses (its layers in
    the order ``forward`` calls them, or ``mapping={flux flat name: torch parameter name}``; a two-bias
    layer gets Flux's bias in ``bias_ih`` and ``bias_hh = 0``, frozen), it is trained by the same loop, loss
    and rule as the port, and its trained weights are read back under the Chain's flat names. It receives
    ``(len, batch, in)``, or ``(batch, len, in)`` with ``batch_first=True``, and must return every step
    ``(len, batch, out)`` / ``(batch, len, out)`` (a tuple's first item is taken, as ``nn.LSTM``'s), or for
    readout ``last`` just the last step ``(batch, out)``. Its failures, or a module that does not fit the run
    (parameters, output shape), raise :class:`fluxparity.backends.ModuleError` in one line. ``path`` does not
    apply to it (giving one is a ValueError). It trains in the calling process (never in a pool worker: the
    factory may come from the current folder, which workers do not import from).
    """

    name = "torch"
    cost_rank = 0  # the slowest backend: start it first when runs are spread over processes

    def __init__(self, optimizer: str = "torch", path: Optional[str] = None, *, module_factory=None,
                 batch_first: bool = False, mapping: Optional[dict] = None, module_label: Optional[str] = None) -> None:
        check_optimizer(optimizer)
        if module_factory is None:
            if batch_first or mapping is not None or module_label is not None:
                raise ValueError("batch_first, mapping and module_label apply to module_factory= (your own module) only")
            path = "fast" if path is None else path
            if path not in PATHS:
                raise ValueError(f"unknown torch path {path!r}; choose from {', '.join(PATHS)}")
        else:
            if path is not None:
                raise ValueError(f"path {path!r} applies to this package's port; module_factory= trains your module "
                                 "with autograd (leave path out)")
            if not callable(module_factory):
                raise TypeError(f"module_factory must be a zero-argument callable returning a torch.nn.Module, got "
                                f"{type(module_factory).__name__}")
            if mapping is not None and not (isinstance(mapping, dict) and all(
                    isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())):
                raise TypeError(f"mapping must be a dict of Flux flat name -> torch parameter name, got {mapping!r}")
            path = "plain"
            self.own_process = True  # trained here, never in a pool worker (fluxparity.parallel)
        self.optimizer = optimizer
        self.path = path
        self.module_factory, self.batch_first, self.mapping = module_factory, bool(batch_first), mapping
        self.module_label = module_label or (None if module_factory is None else
                                             f"module_factory {getattr(module_factory, '__qualname__', module_factory)!r}")

    def unavailable_reason(self) -> Optional[str]:
        return None

    def check_run(self, run: RunSpec) -> None:
        """Before any training (``train_and_compare`` calls it): with ``module_factory``, build the module for
        ``run``, load its weights and run one forward pass on the first batch, so that a module that fails or
        does not fit raises its :class:`~fluxparity.backends.ModuleError` now, not after other backends trained."""
        if self.module_factory is None:
            return
        from ._torch_models import torch_batch
        from ._torch_user import user_leg

        dtype = TORCH_DTYPES[run.dtype]
        leg = user_leg(self.module_factory, self.module_label, self.batch_first, self.mapping)(run, dtype)
        with torch.no_grad():
            leg.predict(torch_batch(run.data.train_x, run.batches.epoch(0)[0], dtype))

    def train(self, run: RunSpec, progress: Optional[Progress] = None) -> RunResult:
        if not isinstance(run, RunSpec):
            raise TypeError(f"train takes a fluxparity.run.RunSpec, got {type(run).__name__}")
        torch.set_num_threads(1)  # tiny tensors: threads only add overhead
        if self.module_factory is not None:
            from ._torch_models import train_torch_model
            from ._torch_user import user_leg

            result = train_torch_model(run, lambda params: make_optimizer(self.optimizer, params, run.rule), progress,
                                       user_leg(self.module_factory, self.module_label, self.batch_first, self.mapping))
            result.notes["optimizer"] = self.optimizer
            return result
        if not run.fits_tutorial_kernels:  # SumRNN and the fast path serve only the tutorial's shape
            from ._torch_models import train_torch_model

            return train_torch_model(run, lambda params: make_optimizer(self.optimizer, params, run.rule), progress)
        if self.path == "fast":
            if not run.is_adam:
                raise ValueError(f"the torch fast path spells out Adam only; {run.rule} needs path='plain'")
            from .pytorch_fast import train_batch

            return train_batch([run], self.optimizer, progress)[0]
        config, data, initial = run, run.data, run.model
        dtype = TORCH_DTYPES[config.dtype]
        model = SumRNN(initial, dtype)
        train_x, test_x, probe_x = (_as_inputs(s, dtype) for s in (data.train_sequences, data.test_sequences, data.probes))
        train_y, test_y = (torch.tensor(y, dtype=dtype) for y in (data.train_labels, data.test_labels))
        opt = make_optimizer(self.optimizer, model.parameters(), config.rule)
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

"""A fast PyTorch path: K independent copies of the tutorial RNN trained as ONE batched computation.

Same model, same data order, same per-sample Adam step as the plain backend (``backends/pytorch.py``),
but without autograd and without ``nn.Module``/``torch.optim`` bookkeeping:

* the parameters of K models are one tensor ``P`` of shape ``(3, K)`` (rows ``Wh``, ``Wi``, ``b``), and
  every model trains on its own data: at step ``s`` model ``k`` sees sample ``s mod n`` of *its* data set;
* sequences are right-aligned in a time window of length 7 (the longest possible sequence) and padded at
  the front with ``x = 0`` and a zero mask, so unequal lengths, per step and per model, need no branching;
* forward and backpropagation through time are written out in torch ops under ``no_grad``;
* Adam is ``torch.optim.Adam``'s arithmetic (``_single_tensor_adam``, what ``torch.optim.Adam`` runs on CPU
  with default settings) or Optimisers.jl's (``fluxparity.optim.FluxOptimiser`` with Adam, with its correctly
  rounded ``ieee_sqrt``), op for op. Only Adam (any eta, beta, epsilon): runs with another rule take the
  plain path.

The per-sample steps are inherently sequential, so the cost is the number of torch ops per step, whatever
K is: about 27 (identity) and 35 (tanh) in float64, 43 and 58 in float32 (see below). K models cost about
what one costs, which is what makes seed sweeps cheap; a single run stays ~1 us per op away from a
compiled loop.

**Same numbers as the plain path, not just close.** Every operation is the plain path's operation, in
the same order, rounded the same way, so trajectories are identical to the last bit in float64 *and*
float32 (the tests check both). What makes that hold:

* ``(Wi*x + Wh*h) + b`` is one multiply of ``P`` (rows ``[Wh, Wi, b]``) by the column
  ``[h_{t-1}, x_t, mask_t]`` and a sequential sum of the three products; padded time steps give
  ``a = 0``, hence ``h = 0``, so no separate mask op is needed;
* gradients are summed over time latest first (the order autograd accumulates them); the ``dh`` chain
  ``dh <- (dh * q) * Wh`` takes ``q = 1 - h^2`` from ``aten::tanh_backward`` (which rounds it with one
  fma, as autograd does);
* float64 does those sequential sums/products with one ``cumsum``/``cumprod``; float32 cannot (PyTorch's
  CPU ``cumsum``/``cumprod`` accumulate float32 in double), so there they are spelled out op by op;
* every working tensor is a *strided* view (every second element of its storage). PyTorch's CPU kernels
  run their vectorised code (SLEEF ``tanh``, ``fma`` in ``lerp``) only on contiguous memory, and the plain
  path's one-element tensors always take the scalar code; strided views take the same scalar code.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..data import MAX_LENGTH, pack
from ..models import tutorial_weights, with_tutorial_weights
from ..run import RunSpec
from .base import Progress, RunResult, epoch_sums
from ..optim import ieee_sqrt
from .pytorch import TORCH_DTYPES, check_optimizer

WINDOW = MAX_LENGTH  # time steps per padded sequence
# Columns of a padded row: two scratch cells, then [h, x, mask] (multiplied by P's rows [Wh, Wi, b]).
H, X, MASK, NCOLS = 2, 3, 4, 5

# (done_steps, total_steps) for the whole batch
BatchProgress = Progress


def _strided_zeros(shape, dtype) -> torch.Tensor:
    """Zeros of ``shape`` whose last dimension has stride 2: PyTorch then runs its scalar CPU kernels."""
    return torch.zeros(*shape, 2, dtype=dtype)[..., 0]


def _columns(sequences_per_model: Sequence[Sequence[np.ndarray]], dtype) -> tuple[torch.Tensor, np.ndarray]:
    """Z (n, WINDOW + 1, NCOLS, K): row r holds [., ., h_{t-1}, x_t, mask_t] for t = WINDOW - r.

    Sequences are right-aligned (their last element at t = WINDOW - 1, row 1); h_{t-1} is filled while
    training (the forward step of time t writes its partial sums and h_t into row r - 1, columns 0..2), so
    row 0 column H receives the last output. Also returns the lengths (n, K).
    """
    k_models = len(sequences_per_model)
    n = len(sequences_per_model[0])
    values = np.zeros((n, WINDOW + 1, NCOLS, k_models))
    lengths = np.zeros((n, k_models), dtype=np.int64)
    for k, sequences in enumerate(sequences_per_model):
        flat, lens = pack(sequences)
        if len(lens) and not (1 <= lens.min() and lens.max() <= WINDOW):
            raise ValueError(f"sequence lengths must be within 1..{WINDOW}, got {lens.min()}..{lens.max()}")
        lengths[:, k] = lens
        sample = np.repeat(np.arange(len(lens)), lens)
        position = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)  # index within its sequence
        row = np.repeat(lens, lens) - position  # row r = time WINDOW - r: the last element in row 1
        values[sample, row, X, k] = flat
        values[sample, row, MASK, k] = 1.0
    z = _strided_zeros(values.shape, dtype)
    z.copy_(torch.from_numpy(values))
    return z, lengths


def _forward_all(p: torch.Tensor, z: torch.Tensor, activation: str) -> torch.Tensor:
    """Run every sequence of a set at once: z (WINDOW + 1, NCOLS, N, K) -> last outputs (N, K), in place in z."""
    pb = p[:, None, :]
    for r in range(WINDOW, 0, -1):
        if p.dtype == torch.float64:
            torch.cumsum(pb * z[r, H:], 0, out=z[r - 1, :H + 1])  # ((Wh*h + Wi*x) + b) in row H
        else:  # float32: cumsum would accumulate in double
            prod = pb * z[r, H:]
            torch.add(prod[0], prod[1], out=z[r - 1, 0])
            torch.add(z[r - 1, 0], prod[2], out=z[r - 1, H])
        if activation == "tanh":
            torch.tanh(z[r - 1, H], out=z[r - 1, H])
    return z[0, H]


def _loss_sums(outputs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(N, K) last outputs, (N, K) labels -> (K,) sums of |y_hat - y| (each in T), added in float64 in order."""
    losses = (outputs - labels).abs().to(torch.float64).numpy()
    if sys.version_info >= (3, 12):  # the plain path's builtin sum() of floats is compensated from 3.12 on
        return np.array([sum(column) for column in losses.T.tolist()])
    return np.cumsum(losses, axis=0)[-1]  # sequential: what the builtin sum() does up to 3.11


@dataclass
class _Set:
    """A data set of the K models, as padded columns, for evaluation."""

    z: torch.Tensor  # (WINDOW + 1, NCOLS, N, K)
    labels: torch.Tensor  # (N, K)

    @classmethod
    def build(cls, sequences_per_model, labels_per_model, dtype) -> "_Set":
        z, _ = _columns(sequences_per_model, dtype)
        z = z.permute(1, 2, 0, 3)  # (WINDOW + 1, NCOLS, N, K), still strided in K
        labels = torch.tensor(np.stack([np.asarray(y, dtype=np.float64) for y in labels_per_model], axis=1),
                              dtype=dtype)
        return cls(z, labels)


def _activation(run: RunSpec) -> str:
    return run.model.layers[0].activation


def _config_key(run: RunSpec) -> tuple:
    return (run.dtype, _activation(run), run.epochs, run.rule)


def _check_batch(runs) -> tuple[RunSpec, int]:
    if not runs:
        raise ValueError("train_batch needs at least one run (a fluxparity.run.RunSpec)")
    for run in runs:
        if not isinstance(run, RunSpec):
            raise TypeError(f"train_batch takes fluxparity.run.RunSpec runs, got {type(run).__name__}")
        if not run.fits_tutorial_kernels:  # this path serves only the tutorial's shape
            tutorial_weights(run.model)  # names the shape when the model is the reason
            raise ValueError("the torch fast path trains only the tutorial's shape: loss abs_sum, batch 1, in order")
    config = runs[0]
    if not config.is_adam:
        raise ValueError(f"the torch fast path spells out Adam only; {config.rule} needs the plain path")
    n = len(config.data.train_sequences)
    for run in runs:
        if _config_key(run) != _config_key(config):
            raise ValueError(f"one batch trains one configuration; got {_config_key(run)} and {_config_key(config)} "
                             "(train_many groups runs for you)")
        data = run.data
        if len(data.train_sequences) != n or len(data.test_sequences) != len(config.data.test_sequences) \
                or len(data.probes) != len(config.data.probes):
            raise ValueError("every model in a batch needs data sets of the same sizes (steps run in lockstep)")
    return config, n


def train_batch(runs: Sequence[RunSpec], optimizer: str = "torch",
                progress: Optional[BatchProgress] = None) -> list[RunResult]:
    """Train K runs with one configuration (activation, dtype, epochs, Adam rule) as one batched computation.

    Each run has its own data and initial parameters; all data sets must have the same sizes. Returns K
    :class:`RunResult`, equal to what ``TorchBackend(optimizer).train(run)`` returns for
    each run (``seconds`` is the batch's wall time, shared).
    """
    check_optimizer(optimizer)
    config, n = _check_batch(runs)
    dtype = TORCH_DTYPES[config.dtype]
    activation = _activation(config)
    tanh = activation == "tanh"
    k_models, epochs = len(runs), config.epochs
    adam = config.rule  # Adam(eta, beta, epsilon), checked by _check_batch
    eta, (beta1, beta2), epsilon = adam["eta"], adam["beta"], adam["epsilon"]
    torch.set_num_threads(1)  # as the plain path: tiny tensors, threads only add overhead

    with torch.no_grad():
        # --- the data, once, in the run's dtype -----------------------------------------------------------
        z_train, lengths = _columns([r.data.train_sequences for r in runs], dtype)
        y_train = torch.tensor(np.stack([r.data.train_labels for r in runs], axis=1), dtype=dtype)  # (n, K)
        test = _Set.build([r.data.test_sequences for r in runs], [r.data.test_labels for r in runs], dtype)
        probes = _Set.build([r.data.probes for r in runs], [r.data.probe_labels for r in runs], dtype)

        # --- parameters and optimizer state: (3, K), rows Wh, Wi, b (the order of the columns H, X, MASK) ---
        p = _strided_zeros((3, k_models), dtype)
        for k, run in enumerate(runs):
            wi, wh, b = tutorial_weights(run.model)
            p[:, k] = torch.tensor([wh, wi, b], dtype=dtype)
        wh = p[0]
        m, v = (_strided_zeros((3, k_models), dtype) for _ in range(2))

        # --- per-sample views, built once (indexing is a torch op too) -------------------------------------
        windows = lengths.max(axis=1)  # (n,): time steps sample i needs in this batch
        rows = [[z_train[i, r, H:] for r in range(WINDOW + 1)] for i in range(n)]  # [h_{t-1}, x_t, mask_t]
        sums = [[z_train[i, r, :H + 1] for r in range(WINDOW + 1)] for i in range(n)]  # partial sums, h_t
        outs = [[z_train[i, r, H] for r in range(WINDOW + 1)] for i in range(n)]
        grad_rows = [z_train[i, 1:windows[i] + 1, H:] for i in range(n)]  # (nt, 3, K), latest first
        h_rows = [z_train[i, 0:windows[i], H] for i in range(n)]  # (nt, K): h_t, latest first
        labels = list(y_train.unbind(0))
        grad_sums = _strided_zeros((WINDOW, 3, k_models), dtype)  # cumulative sums over time, latest first
        grads = list(grad_sums.unbind(0))  # grads[nt - 1]: the gradient [dWh, dWi, db] of a window nt
        # cumprod input: identity [s, Wh, Wh, ...]; tanh [s, q_0, Wh, q_1, Wh, q_2, ...] with q = 1 - h^2
        chain = _strided_zeros((2 * WINDOW, k_models), dtype)
        chain_out = _strided_zeros((2 * WINDOW, k_models), dtype)
        # float64: cumsum/cumprod round every partial result to T, exactly as a chain of adds/multiplies.
        # float32: PyTorch's CPU cumsum/cumprod accumulate float32 in double, so the chains are spelled out.
        chained = dtype == torch.float64
        sign_out = chain[0] if chained else chain_out[0]
        prod = _strided_zeros((3, k_models), dtype)
        prod_rows = list(prod.unbind(0))
        tmp = _strided_zeros((k_models,), dtype)
        chain_rows = list(chain_out.unbind(0))
        grad_prod = _strided_zeros((WINDOW, 3, k_models), dtype)
        grad_prod_rows = list(grad_prod.unbind(0))
        g_seq = _strided_zeros((3, k_models), dtype)
        # every slice the loop needs, per window length nt (slicing is a torch op too)
        sizes = range(WINDOW + 1)
        grad_prod_out = [grad_prod[:nt] for nt in sizes]
        wh_rep = [wh.expand(max(nt - 1, 0), k_models) for nt in sizes]
        grad_out = [grad_sums[:nt] for nt in sizes]
        if tanh:
            ones = _strided_zeros((WINDOW, k_models), dtype).fill_(1.0)
            ones_in = [ones[:nt] for nt in sizes]
            q_out = [chain[1:2 * nt:2] for nt in sizes]
            q_rows = list(chain[1::2].unbind(0))
            wh_out = [chain[2:2 * nt:2] for nt in sizes]
            chain_in = [chain[:2 * nt] for nt in sizes]
            chain_res = [chain_out[:2 * nt] for nt in sizes]
            da_rows = [chain_out[1:2 * nt:2][:, None, :] for nt in sizes]
        else:
            wh_out = [chain[1:nt] for nt in sizes]
            chain_in = [chain[:nt] for nt in sizes]
            chain_res = [chain_out[:nt] for nt in sizes]
            da_rows = [chain_out[:nt][:, None, :] for nt in sizes]
        residuals = _strided_zeros((n, k_models), dtype)
        residual_rows = list(residuals.unbind(0))
        step_losses = np.zeros((k_models, epochs * n))
        epoch_test = np.zeros((k_models, epochs))

        if optimizer == "torch":
            # torch.optim.Adam, _single_tensor_adam (foreach/fused are off for CPU tensors by default):
            # step is a float32 tensor, .item()'d (so it stops at 2**24); bias corrections in Python floats.
            lr, b1, b2, eps = float(eta), beta1, beta2, epsilon
        else:
            as_t = lambda x: torch.tensor(x, dtype=dtype)  # noqa: E731
            one, tb1, tb2, teps, teta = as_t(1.0), as_t(beta1), as_t(beta2), as_t(epsilon), as_t(eta)
            omb1, omb2 = one - tb1, one - tb2
            # 1 - beta^t with beta^t a running product in T, for every step
            bt = np.empty((epochs * n, 2), dtype=np.dtype(config.dtype))
            b1t, b2t = np.dtype(config.dtype).type(beta1), np.dtype(config.dtype).type(beta2)
            for s in range(epochs * n):
                bt[s] = (b1t, b2t)
                b1t, b2t = b1t * np.dtype(config.dtype).type(beta1), b2t * np.dtype(config.dtype).type(beta2)
            corrections = one - torch.from_numpy(bt)  # (steps, 2) in T

        start = time.perf_counter()
        train_before = _loss_sums(_forward_all(p, z_train.permute(1, 2, 0, 3), activation), y_train)
        test_before = _loss_sums(_forward_all(p, test.z, activation), test.labels)
        for epoch in range(epochs):
            if optimizer == "optimisers":
                c1, c2 = (list(c.unbind(0)) for c in corrections[epoch * n:(epoch + 1) * n].unbind(1))
            for i in range(n):
                nt = int(windows[i])
                row, partial, out = rows[i], sums[i], outs[i]
                # forward: h_t = sigma((Wi*x_t + Wh*h_{t-1}) + b), latest output into row 0
                for r in range(nt, 0, -1):
                    if chained:
                        torch.cumsum(p * row[r], 0, out=partial[r - 1])
                    else:
                        torch.mul(p, row[r], out=prod)
                        torch.add(prod_rows[0], prod_rows[1], out=tmp)
                        torch.add(tmp, prod_rows[2], out=out[r - 1])
                    if tanh:
                        torch.tanh(out[r - 1], out=out[r - 1])
                residual = torch.sub(out[0], labels[i], out=residual_rows[i])
                # backward: d|r|/dr = sign(r); the dh chain; gradients summed latest first (autograd's order)
                torch.sign(residual, out=sign_out)
                if tanh:  # q = 1 - h^2 exactly as autograd's tanh_backward rounds it (one fma)
                    torch.ops.aten.tanh_backward.grad_input(ones_in[nt], h_rows[i], grad_input=q_out[nt])
                if chained:
                    wh_out[nt].copy_(wh_rep[nt])
                    torch.cumprod(chain_in[nt], 0, out=chain_res[nt])
                    torch.cumsum(da_rows[nt] * grad_rows[i], 0, out=grad_out[nt])
                    g = grads[nt - 1]
                else:
                    if tanh:  # [s, s*q_0, (s*q_0)*Wh, ((s*q_0)*Wh)*q_1, ...]
                        torch.mul(sign_out, q_rows[0], out=chain_rows[1])
                        for j in range(1, nt):
                            torch.mul(chain_rows[2 * j - 1], wh, out=chain_rows[2 * j])
                            torch.mul(chain_rows[2 * j], q_rows[j], out=chain_rows[2 * j + 1])
                    else:  # [s, s*Wh, (s*Wh)*Wh, ...]
                        for j in range(1, nt):
                            torch.mul(chain_rows[j - 1], wh, out=chain_rows[j])
                    torch.mul(da_rows[nt], grad_rows[i], out=grad_prod_out[nt])
                    g = g_seq
                    if nt == 1:
                        g.copy_(grad_prod_rows[0])
                    else:
                        torch.add(grad_prod_rows[0], grad_prod_rows[1], out=g)
                        for j in range(2, nt):
                            g.add_(grad_prod_rows[j])
                # Adam
                if optimizer == "torch":
                    step = float(min(epoch * n + i + 1, 2 ** 24))  # the float32 step counter's value
                    bias_correction1 = 1 - b1 ** step
                    bias_correction2 = 1 - b2 ** step
                    step_size = lr / bias_correction1
                    bias_correction2_sqrt = bias_correction2 ** 0.5
                    m.lerp_(g, 1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
                    p.addcdiv_(m, denom, value=-step_size)
                else:
                    m.copy_(tb1 * m + omb1 * g)
                    v.copy_(tb2 * v + omb2 * (g * g))
                    p.sub_(((m / c1[i]) / (ieee_sqrt(v / c2[i]) + teps)) * teta)
            step_losses[:, epoch * n:(epoch + 1) * n] = residuals.abs().to(torch.float64).numpy().T
            epoch_test[:, epoch] = _loss_sums(_forward_all(p, test.z, activation), test.labels)
            if progress is not None:
                progress((epoch + 1) * n, epochs * n)
        probe_out = _forward_all(p, probes.z, activation).to(torch.float64).numpy()  # (n_probes, K)
        seconds = time.perf_counter() - start
        final = p.to(torch.float64).numpy()

    results = []
    for k in range(k_models):
        losses = step_losses[k]
        results.append(RunResult(
            step_losses=losses.copy(),
            epoch_train_loss=epoch_sums(losses, epochs),
            epoch_test_loss=epoch_test[k].copy(),
            train_loss_before=float(train_before[k]),
            test_loss_before=float(test_before[k]),
            test_loss_after=float(epoch_test[k, -1]),
            final_params=with_tutorial_weights(runs[k].model, final[1, k], final[0, k], final[2, k]),
            probe_predictions=probe_out[:, k].copy(),
            seconds=seconds,
            notes={"optimizer": optimizer, "torch": torch.__version__, "path": "fast", "batch": k_models},
        ))
    return results


def _batch_key(run: RunSpec) -> tuple:
    data = run.data
    return (*_config_key(run), len(data.train_sequences), len(data.test_sequences), len(data.probes))


def train_many(runs: Sequence[RunSpec], optimizer: str = "torch",
               progress: Optional[BatchProgress] = None) -> list[RunResult]:
    """Train any runs: those that can share a batch (same configuration and data sizes) are batched.

    Results come back in the order of ``runs``.
    """
    groups: dict[tuple, list[int]] = {}
    for index, run in enumerate(runs):
        groups.setdefault(_batch_key(run), []).append(index)
    results: list[Optional[RunResult]] = [None] * len(runs)
    for indices in groups.values():
        for index, result in zip(indices, train_batch([runs[i] for i in indices], optimizer, progress)):
            results[index] = result
    return results  # type: ignore[return-value]

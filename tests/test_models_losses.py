"""The losses as Flux 0.16 defines them (src/losses/functions.jl): values worked out by hand, gradients
against central finite differences, and the class-axis trap of ``logitcrossentropy`` vs ``cross_entropy``."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fluxparity import models


def test_mse_and_mae_are_means_over_every_element():
    y_hat = np.array([[1.0, 2.0], [3.0, 5.0]])
    y = np.array([[0.0, 2.0], [1.0, 1.0]])
    # residuals 1, 0, 2, 4: mean of squares (1 + 0 + 4 + 16) / 4, mean of |r| (1 + 0 + 2 + 4) / 4
    assert models.loss_value_and_grad("mse", y_hat, y)[0] == 21 / 4
    assert models.loss_value_and_grad("mae", y_hat, y)[0] == 7 / 4


def test_logitcrossentropy_sums_classes_along_the_first_axis_and_averages_the_rest():
    # 3 classes (rows, Flux's dims = 1) x 2 samples (columns); one-hot targets: class 0, then class 2.
    y_hat = np.array([[1.0, 0.5], [2.0, -1.0], [0.0, 3.0]])
    y = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    by_hand = []
    for column, true_class in ((0, 0), (1, 2)):
        logits = y_hat[:, column]
        by_hand.append(-(logits[true_class] - math.log(sum(math.exp(v) for v in logits))))
    value, _ = models.loss_value_and_grad("logitcrossentropy", y_hat, y)
    assert value == pytest.approx(sum(by_hand) / 2, rel=1e-15)


def test_cross_entropy_needs_the_flux_array_transposed_the_layout_trap():
    """Flux: classes along dim 1 of (C, N). torch ``cross_entropy``: classes along dim 1 of (N, C)."""
    rng = np.random.default_rng(0)
    y_hat = rng.standard_normal((3, 4))  # Flux layout: 3 classes x 4 samples
    y = np.eye(3)[:, rng.integers(0, 3, 4)]  # one-hot columns
    flux_value, _ = models.loss_value_and_grad("logitcrossentropy", y_hat, y)
    transposed = F.cross_entropy(torch.from_numpy(y_hat.T), torch.from_numpy(y.T))
    as_is = F.cross_entropy(torch.from_numpy(y_hat), torch.from_numpy(y))  # "4 classes x 3 samples": wrong
    assert float(transposed) == pytest.approx(flux_value, rel=1e-14)
    assert abs(float(as_is) - flux_value) > 1e-3
    assert float(models.torch_loss("logitcrossentropy", torch.from_numpy(y_hat.T), torch.from_numpy(y.T))) == \
        pytest.approx(flux_value, rel=1e-14)


def test_abs_sum_is_the_tutorials_loss():
    value, grad = models.loss_value_and_grad("abs_sum", np.array([[2.5]]), np.array([[4.0]]))
    assert value == 1.5 and grad.tolist() == [[-1.0]]


@pytest.mark.parametrize("loss", models.LOSSES)
def test_loss_gradients_match_central_finite_differences(loss):
    rng = np.random.default_rng(1)
    y_hat = rng.standard_normal((3, 2, 2))
    y = rng.standard_normal((3, 2, 2))
    if loss == "logitcrossentropy":
        y = np.exp(y) / np.exp(y).sum(axis=0, keepdims=True)
    _, grad = models.loss_value_and_grad(loss, y_hat, y)
    h = 1e-6
    numeric = np.zeros_like(y_hat)
    for idx in np.ndindex(y_hat.shape):
        plus, minus = y_hat.copy(), y_hat.copy()
        plus[idx] += h
        minus[idx] -= h
        numeric[idx] = (models.loss_value_and_grad(loss, plus, y)[0] - models.loss_value_and_grad(loss, minus, y)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)

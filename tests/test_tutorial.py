"""The tutorial's story: the identity RNN learns to sum; with tanh it saturates at 1 and cannot."""

import numpy as np
import pytest

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend

from conftest import make_inputs, run_of


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_identity_model_learns_the_sum(dtype):
    data, initial = make_inputs(1000, seed=0)
    result = ReferenceBackend().train(run_of(data, initial, **dict(dtype=dtype, epochs=50)))
    assert result.test_loss_after < 0.01 * result.test_loss_before
    np.testing.assert_allclose(result.probe_predictions, data.probe_labels, atol=0.1)


@pytest.mark.parametrize("backend,samples,epochs,atol", [
    (ReferenceBackend(), 1000, 50, 1e-3),
    (ReferenceBackend(tanh="fast"), 1000, 50, 1e-3),
    (TorchBackend(path="plain"), 200, 10, 2e-2),  # smaller, to keep the suite quick: already within 0.02 of 1
], ids=["reference", "reference-tanh_fast", "torch"])
def test_tanh_model_saturates_at_one(backend, samples, epochs, atol):
    data, initial = make_inputs(samples, seed=0, activation="tanh")
    result = backend.train(run_of(data, initial, **dict(dtype="float64", epochs=epochs)))
    np.testing.assert_allclose(result.probe_predictions, 1.0, atol=atol)
    # Every output is ~1, so the test loss is sum(labels) - N: the model cannot learn.
    expected = data.test_labels.sum() - len(data.test_labels)
    np.testing.assert_allclose(result.test_loss_after, expected, rtol=1e-3)

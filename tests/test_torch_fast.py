"""The batched fast PyTorch path against the plain (idiomatic) one: same trajectories, one model or K."""

import numpy as np
import pytest
import torch

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.pytorch_fast import train_batch, train_many

from conftest import make_inputs, tutorial_for, run_of



def assert_same_run(a, b):
    """Bit-identical, as the README claims for the fast path: every array and scalar, both dtypes."""
    np.testing.assert_array_equal(a.step_losses, b.step_losses)
    np.testing.assert_array_equal(a.epoch_train_loss, b.epoch_train_loss)
    np.testing.assert_array_equal(a.epoch_test_loss, b.epoch_test_loss)
    np.testing.assert_array_equal([a.train_loss_before, a.test_loss_before, a.test_loss_after],
                                  [b.train_loss_before, b.test_loss_before, b.test_loss_after])
    np.testing.assert_array_equal(a.probe_predictions, b.probe_predictions)
    for (name, va), (_, vb) in zip(a.final_params.arrays().items(), b.final_params.arrays().items()):
        assert va.shape == vb.shape, name
        np.testing.assert_array_equal(va, vb, err_msg=name)


@pytest.mark.parametrize("optimizer", ["torch", "optimisers"])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_float64_fast_is_bit_identical_to_plain(activation, optimizer):
    data, initial = make_inputs(40, seed=1, activation=activation)
    config = dict(dtype="float64", epochs=3, lr=1e-2)  # a larger lr: parameters move visibly
    plain = TorchBackend(optimizer, path="plain").train(run_of(data, initial, **config))
    fast = TorchBackend(optimizer, path="fast").train(run_of(data, initial, **config))
    assert_same_run(fast, plain)
    assert fast.notes["path"] == "fast" and plain.notes["path"] == "plain"
    assert np.abs(fast.final_params.layers[0].Wi - initial.layers[0].Wi).max() > 1e-3  # it did train


@pytest.mark.parametrize("optimizer", ["torch", "optimisers"])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_batch_of_models_equals_each_models_single_run(activation, optimizer):
    config = dict(dtype="float64", epochs=2)
    runs = [run_of(*make_inputs(30, seed=seed, activation=activation), **config) for seed in range(4)]
    lengths = np.array([[len(s) for s in run.data.train_sequences] for run in runs])
    assert (lengths.min(axis=0) != lengths.max(axis=0)).any()  # unequal lengths at the same step
    batch = train_batch(runs, optimizer)
    assert len(batch) == len(runs)
    for run, result in zip(runs, batch):
        assert_same_run(result, train_batch([run], optimizer)[0])
    # and, for two of them, the plain path itself
    for run, result in list(zip(runs, batch))[:2]:
        assert_same_run(result, TorchBackend(optimizer, path="plain").train(run))


@pytest.mark.parametrize("optimizer", ["torch", "optimisers"])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_float32_fast_is_bit_identical_to_plain_too(activation, optimizer):
    # float32 is not judged on the whole trajectory (it separates from the reference), but the fast path
    # must still be the plain path: PyTorch's CPU cumsum/cumprod accumulate float32 in double, so the fast
    # path spells those chains out in float32 ops; the result is the plain path's, bit for bit.
    config = dict(dtype="float32", epochs=2, lr=1e-2)
    runs = [run_of(*make_inputs(50, seed=seed, activation=activation), **config) for seed in (2, 5)]
    for run, fast in zip(runs, train_batch(runs, optimizer)):
        plain = TorchBackend(optimizer, path="plain").train(run)
        assert_same_run(fast, plain)


def test_train_many_batches_compatible_runs_and_keeps_order():
    data0, init0 = make_inputs(20, seed=0)
    data1, init1 = make_inputs(20, seed=1)
    data2, init2 = make_inputs(25, seed=2)  # another size: its own batch
    runs = [run_of(data0, init0, dtype="float64", epochs=1),
            run_of(data1, tutorial_for(init1, "tanh"), dtype="float64", epochs=1),
            run_of(data2, init2, dtype="float64", epochs=1),
            run_of(data1, init1, dtype="float64", epochs=1)]
    results = train_many(runs)
    assert [r.notes["batch"] for r in results] == [2, 1, 1, 2]
    for run, result in zip(runs, results):
        assert_same_run(result, train_batch([run])[0])


def test_batch_rejects_mixed_configurations_and_sizes():
    data, initial = make_inputs(20)
    other, _ = make_inputs(21)
    with pytest.raises(ValueError, match="one configuration"):
        train_batch([run_of(data, initial, dtype="float64"), run_of(data, tutorial_for(initial, "tanh"), dtype="float64")])
    with pytest.raises(ValueError, match="same sizes"):
        train_batch([run_of(data, initial, dtype="float64"), run_of(other, initial, dtype="float64")])
    with pytest.raises(ValueError, match="optimizer"):
        train_batch([run_of(data, initial)], optimizer="sgd")
    with pytest.raises(ValueError, match="at least one"):
        train_batch([])


def test_fast_path_leaves_no_autograd_state_and_returns_float64():
    data, initial = make_inputs(10)
    result = TorchBackend(path="fast").train(run_of(data, initial, **dict(dtype="float32", epochs=1)))
    assert result.step_losses.dtype == np.float64 and result.step_losses.shape == (10,)
    assert result.final_params.layers[0].Wi.shape == (1, 1) and result.final_params.layers[0].bias.shape == (1,)
    assert all(a.dtype == np.float64 for a in result.final_params.arrays().values())
    assert torch.is_grad_enabled()


def test_an_unknown_optimizer_is_refused_by_name_on_every_path():
    data, initial = make_inputs(3)
    config = dict(dtype="float64", epochs=1)
    for attempt in (lambda: TorchBackend("adamw"), lambda: train_batch([run_of(data, initial, **config)], "adamw")):
        with pytest.raises(ValueError, match=r"unknown optimizer 'adamw'; choose from torch, optimisers"):
            attempt()

"""Julia's sqrt is correctly rounded; torch.sqrt on the CPU need not be. What that costs, and the fix.

``ieee_sqrt`` is checked against exact rational arithmetic (not against another sqrt), and the
Optimisers.jl-arithmetic optimizer that uses it is checked against the NumPy reference, bit for bit, on
the whole tutorial run: in the identity model that optimizer is the only place the two backends compute
differently, so any sqrt that is not correctly rounded shows up as a trajectory difference.
"""

from fractions import Fraction

from conftest import run_of
import numpy as np
import pytest
import torch

from fluxparity.backends.base import epoch_sums
from fluxparity.backends.pytorch import TorchBackend
from fluxparity.optim import ieee_sqrt
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.data import generate_dataset
from fluxparity.experiment import seeds_for
from fluxparity.models import tutorial_chain

NP_TYPES = {torch.float64: np.float64, torch.float32: np.float32}


def correctly_rounded(x: float, r: float, np_type) -> bool:
    """True when r is the representable number nearest to sqrt(x), decided in exact rational arithmetic.

    r is nearest iff sqrt(x) lies between the midpoints from r to its two neighbours, i.e. (all values
    being >= 0) iff x lies between the squares of those midpoints. A square root is never exactly a
    midpoint, so ties do not arise.
    """
    exact = Fraction(x)
    below = Fraction(float(np.nextafter(np_type(r), np_type(0)))) if r > 0 else Fraction(0)
    above = Fraction(float(np.nextafter(np_type(r), np_type(np.inf))))
    lo_mid, hi_mid = (below + Fraction(r)) / 2, (Fraction(r) + above) / 2
    return (lo_mid ** 2 <= exact if r > 0 else True) and exact <= hi_mid ** 2


def sample_inputs(dtype, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    values = np.concatenate([
        rng.random(n),  # (0, 1): where Adam's v / (1 - beta2^t) lives
        rng.random(n // 4) * 1e6,
        10.0 ** rng.uniform(-30, 30, n // 4),
        np.array([0.0, 1.0, 4.0, 2.0, 0.25, 1e-300 if dtype == torch.float64 else 1e-40]),
    ])
    return torch.tensor(values, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ieee_sqrt_is_correctly_rounded(dtype):
    x = sample_inputs(dtype)
    got = ieee_sqrt(x)
    assert got.dtype == dtype and got.shape == x.shape
    wrong = [(float(a), float(r)) for a, r in zip(x, got) if not correctly_rounded(float(a), float(r), NP_TYPES[dtype])]
    assert not wrong, f"{len(wrong)} of {len(x)} not correctly rounded, e.g. sqrt({wrong[0][0]!r}) -> {wrong[0][1]!r}"


def test_the_exact_check_can_tell_one_ulp():
    # the oracle itself: the correctly rounded value passes, its neighbours fail
    x = 0.5720397101981094
    r = 0.7563330682960447  # NumPy's sqrt(x); torch 2.13's CPU sqrt returns the neighbour below
    assert correctly_rounded(x, r, np.float64)
    assert not correctly_rounded(x, float(np.nextafter(r, 0.0)), np.float64)
    assert not correctly_rounded(x, float(np.nextafter(r, 1.0)), np.float64)


def test_ieee_sqrt_works_on_strided_views_and_rejects_other_devices():
    base = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    view = base[:, ::2]
    np.testing.assert_array_equal(ieee_sqrt(view).numpy(), np.sqrt(view.numpy()))
    scalar = ieee_sqrt(torch.tensor(2.0, dtype=torch.float32))
    assert scalar.shape == () and scalar.dtype == torch.float32 and scalar.item() == float(np.sqrt(np.float32(2)))
    meta = torch.empty(3, device="meta")
    with pytest.raises(ValueError, match="CPU tensor"):
        ieee_sqrt(meta)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optimisers_arithmetic_equals_the_reference_bit_for_bit_on_the_tutorial_run(dtype):
    # identity model, seed 0, 1000 x 50: every step loss, the final parameters, the probes, equal to the bit
    data_seed, param_seed = seeds_for(0)
    data, initial = generate_dataset(1000, data_seed), tutorial_chain(param_seed)
    config = dict(dtype=dtype)
    ref = ReferenceBackend().train(run_of(data, initial, **config))
    torch_run = TorchBackend(optimizer="optimisers").train(run_of(data, initial, **config))
    diff = np.nonzero(torch_run.step_losses != ref.step_losses)[0]
    assert len(diff) == 0, f"first different step {diff[0]} of {len(ref.step_losses)}"
    for name, array in torch_run.final_params.arrays().items():
        np.testing.assert_array_equal(array, ref.final_params.arrays()[name], err_msg=name)
    np.testing.assert_array_equal(torch_run.probe_predictions, ref.probe_predictions)
    np.testing.assert_array_equal(torch_run.epoch_test_loss, ref.epoch_test_loss)
    np.testing.assert_array_equal(torch_run.epoch_train_loss, ref.epoch_train_loss)  # summed the same way


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_plain_path_with_optimisers_arithmetic_equals_the_reference(dtype):
    # the idiomatic nn.Module + autograd path, shorter run: the same equality
    data_seed, param_seed = seeds_for(1)
    data, initial = generate_dataset(500, data_seed), tutorial_chain(param_seed)
    config = dict(dtype=dtype, epochs=4)
    ref = ReferenceBackend().train(run_of(data, initial, **config))
    plain = TorchBackend(optimizer="optimisers", path="plain").train(run_of(data, initial, **config))
    np.testing.assert_array_equal(plain.step_losses, ref.step_losses)
    np.testing.assert_array_equal(plain.final_params.layers[0].Wh, ref.final_params.layers[0].Wh)
    np.testing.assert_array_equal(plain.epoch_train_loss, ref.epoch_train_loss)


def test_epoch_sums_add_in_training_order():
    # values where adding one after the other and NumPy's pairwise sum give different float64 results
    rng = np.random.default_rng(3)
    losses = rng.random(2 * 1000) * 40
    per_epoch = losses.reshape(2, -1)
    assert any(np.sum(row) != _sequential(row) for row in per_epoch)  # the distinction is real here
    np.testing.assert_array_equal(epoch_sums(losses, 2), [_sequential(row) for row in per_epoch])


def _sequential(values) -> float:
    total = 0.0
    for value in values:
        total += float(value)  # builtin sum() is compensated from Python 3.12 on: add by hand
    return total

"""A user's own run (issue 19): any Chain, data, loss, batch size and shuffle, trained alike in every leg.

float64: torch (autograd, batched, torch.optim or Optimisers.jl's arithmetic) and the reference (hand-written
backprop vectorised over the batch) agree at EVERY step within the report's rule (1e-9 of each quantity's
scale, docs/parity.md) — the same verdict ``compare`` gives.
"""

import numpy as np
import pytest

from fluxparity.backends import get_backend
from fluxparity.data import Dataset, load_npz_data, make_batches
from fluxparity.experiment import train_and_compare
from fluxparity.models import parse_flux
from fluxparity.optim import parse_spec
from fluxparity.run import RunSpec


def synthetic(n, length, n_in, n_out, *, seed=0, readout="last", classes=False, n_test=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + n_test, length, n_in))
    if classes:
        labels = (x[:, :, 0].sum(axis=1) > 0).astype(int) + (x[:, -1, -1] > 0.5)
        y = np.eye(n_out)[labels]
    elif readout == "last":
        y = np.tanh(x.sum(axis=1)[:, :n_out])
    else:
        y = np.tanh(np.cumsum(x, axis=1)[:, :, :n_out])
    return Dataset(tuple(x[:n]), tuple(y[:n]), tuple(x[n:]), tuple(y[n:]), tuple(x[n:n + 2]), tuple(y[n:n + 2]),
                   source="synthetic", targets="onehot" if classes else "values")


CASES = {
    "lstm+lstm+dense relu, mse": ("Chain(LSTM(3 => 5), LSTM(5 => 4), Dense(4 => 2, relu))", "last", "mse", False),
    "gru+dense, mse": ("Chain(GRU(3 => 6), Dense(6 => 2))", "last", "mse", False),
    "rnn relu, readout all, mse": ("Chain(RNN(3 => 4, relu), Dense(4 => 2))", "all", "mse", False),
    "classifier, logitcrossentropy": ("Chain(LSTM(3 => 6), Dense(6 => 3))", "last", "logitcrossentropy", True),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("torch_optimizer", ["torch", "optimisers"])
def test_float64_stacked_models_agree_at_every_step(case, torch_optimizer):
    expression, readout, loss, classes = CASES[case]
    data = synthetic(23, 6, 3, 3 if classes else 2, readout=readout, classes=classes)
    model = parse_flux(expression).init(seed=5, readout=readout)
    run = RunSpec(model, data, loss=loss, rule=parse_spec("adam:eta=0.01"), dtype="float64", epochs=3,
                  batch_size=5, shuffle=True, seed=1)
    experiment = train_and_compare([run], {"torch": get_backend("torch", optimizer=torch_optimizer),
                                           "reference": get_backend("reference")}, workers=1)
    (done,) = experiment.runs
    steps = next(c for c in done.parity.checks if c.quantity == "step_losses")
    assert done.parity.verdict == "pass", [(c.quantity, c.max_abs, c.rule) for c in done.parity.failed()]
    assert steps.judged and steps.first_divergent_step is None
    torch_run, reference = done.results["torch"], done.results["reference"]
    assert torch_run.step_losses.shape == (3 * 5,)  # 23 samples in batches of 5: 4 full and one of 3
    assert not np.array_equal(reference.final_params.layers[0].Wi, model.layers[0].Wi)  # it trained
    assert reference.probe_predictions.shape == ((2 * 6 * 2,) if readout == "all" else (2 * model.output_size,))


def test_batches_keep_the_last_partial_batch_and_shuffle_per_epoch_from_the_seed():
    b = make_batches(7, 3, 2, shuffle=True, seed=4)
    assert [len(i) for i in b.epoch(0)] == [3, 3, 1] and b.steps_per_epoch == 3 and b.total_steps == 6
    assert sorted(np.concatenate(b.epoch(1)).tolist()) == list(range(7))
    assert not np.array_equal(b.orders[0], b.orders[1])
    again = make_batches(7, 3, 2, shuffle=True, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(b.orders, again.orders))
    assert [i.tolist() for i in make_batches(5, 2, 1).epoch(0)] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="^shuffle needs a seed: every leg must see the same permutation$"):
        make_batches(5, 2, 1, shuffle=True)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        make_batches(5, 0, 1)
    with pytest.raises(ValueError, match="^n must be a positive integer, got 0$"):
        make_batches(0, 2, 1)
    with pytest.raises(ValueError, match="^epochs must be a positive integer, got True$"):
        make_batches(5, 2, True)


def test_the_description_refuses_data_that_do_not_fit_the_model():
    data = synthetic(4, 3, 3, 2)
    with pytest.raises(ValueError, match="data entry 'x' has 3 input"):
        RunSpec(parse_flux("Chain(LSTM(2 => 4), Dense(4 => 2))").init(seed=0), data, loss="mse")
    with pytest.raises(ValueError, match="data entry 'y' has 2 output"):
        RunSpec(parse_flux("Chain(LSTM(3 => 4), Dense(4 => 1))").init(seed=0), data, loss="mse")
    with pytest.raises(ValueError, match=r"readout last\), the model's readout is 'all'"):
        RunSpec(parse_flux("Chain(LSTM(3 => 4), Dense(4 => 2))").init(seed=0, readout="all"), data, loss="mse")
    with pytest.raises(ValueError, match="loss 'huber' is not one of"):
        RunSpec(parse_flux("Chain(LSTM(3 => 4), Dense(4 => 2))").init(seed=0), data, loss="huber")
    with pytest.raises(ValueError, match="needs one-hot rows"):
        RunSpec(parse_flux("Chain(LSTM(3 => 4), Dense(4 => 2))").init(seed=0), data, loss="logitcrossentropy")


def test_an_npz_file_is_read_header_first_and_integer_labels_become_one_hot(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.normal(size=(6, 4, 2)).astype(np.float32), y=np.array([0, 2, 1, 1, 0, 2]))
    data = load_npz_data(path, classes=3)
    assert data.targets == "onehot" and data.notes == {"test_is_train": True, "labels": "integer"}
    assert data.train_y[1].tolist() == [0, 0, 1] and data.train_x[0].shape == (4, 2)
    with pytest.raises(ValueError, match=r"entry 'y': expected class labels 0..1 \(the model has 2 outputs\)"):
        load_npz_data(path, classes=2)
    bad = tmp_path / "bad.npz"
    x = np.zeros((3, 4, 2))
    x[1, 2, 0] = np.nan
    np.savez(bad, x=x, y=np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"entry 'x': expected finite values, found 1 NaN or Inf"):
        load_npz_data(bad)
    np.savez(bad, x=np.zeros((3, 4)), y=np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"entry 'x': expected float32 or float64 of shape \(any, any, any\)"):
        load_npz_data(bad)
    np.savez(bad, x=np.zeros((3, 4, 2)), y=np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"entry 'y': expected \(N=3, out\)"):
        load_npz_data(bad)

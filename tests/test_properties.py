"""Rules that hold for every input, checked by hypothesis on random ones: packing sequences for Julia,
the weights file and the state_dict round trips at random shapes and values, and the layout conversions.
Deterministic (``derandomize``), a bounded number of examples each, so the default suite stays fast."""

import numpy as np
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from fluxparity import models
from fluxparity.data import length_groups, pack

from models_support import MODELS, float64_everywhere  # noqa: F401 (an autouse fixture)

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True)
# Any finite float64, -0.0 and subnormals included: a round trip must keep every bit.
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
SEQUENCES = st.lists(hnp.arrays(np.float64, st.integers(1, 7), elements=FINITE), min_size=1, max_size=12)


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(f"u{a.itemsize}")


@PROPERTY
@given(SEQUENCES)
def test_pack_concatenates_in_order_and_splitting_by_lengths_undoes_it(sequences):
    values, lengths = pack(sequences)
    assert values.dtype == np.float64 and lengths.dtype == np.int64
    assert lengths.tolist() == [len(s) for s in sequences] and values.shape == (lengths.sum(),)
    # the unpacking julia/FluxParity.jl `sequences` does: stops = cumsum(lengths), starts = stops - lengths + 1
    stops = np.cumsum(lengths)
    for s, start, stop in zip(sequences, stops - lengths, stops):
        np.testing.assert_array_equal(bits(values[start:stop]), bits(s))


@PROPERTY
@given(SEQUENCES)
def test_length_groups_put_every_sequence_in_the_group_of_its_length_once(sequences):
    groups = length_groups(sequences)
    assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(len(sequences)))
    for length, indices in groups.items():
        assert all(len(sequences[i]) == length for i in indices)
        assert list(indices) == sorted(indices)  # in the data's order


@st.composite
def random_models(draw):
    """A Chain of one or two recurrent layers of any kind and up to two Dense layers, at random sizes, every
    array replaced by arbitrary finite values."""
    n_in = draw(st.integers(1, 4))
    recurrent = [(kind, draw(st.integers(1, 5)), activation)
                 for kind, activation in draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=2))]
    dense = [(draw(st.integers(1, 3)), draw(st.sampled_from(models.DENSE_ACTIVATIONS)))
             for _ in range(draw(st.integers(0, 2)))]
    readout = draw(st.sampled_from(models.READOUTS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    params = models.init_chain(n_in, recurrent, dense, seed=0, dtype=np.float64, readout=readout)
    elements = st.floats(allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8)
    flat = {name: draw(hnp.arrays(dtype, a.shape, elements=elements)) for name, a in models.flat_params(params).items()}
    return models.with_flat_params(params, flat), dtype


def assert_bit_identical(actual, expected):
    a, e = models.flat_params(actual), models.flat_params(expected)
    assert list(a) == list(e)
    for name in a:
        assert a[name].dtype == e[name].dtype and a[name].shape == e[name].shape, name
        np.testing.assert_array_equal(bits(a[name]), bits(e[name]), err_msg=name)


@PROPERTY
@given(random_models())
def test_the_weights_file_round_trips_every_bit(tmp_path_factory, case):
    params, dtype = case
    path = tmp_path_factory.mktemp("npz") / "weights.npz"
    models.save_npz(path, params)
    loaded = models.load_npz(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in params.layers]
    assert [getattr(layer, "activation", "") for layer in loaded.layers] == [
        getattr(layer, "activation", "") for layer in params.layers] and loaded.readout == params.readout
    assert_bit_identical(loaded.astype(dtype), params)


@PROPERTY
@given(random_models())
def test_flux_to_state_dict_and_back_keeps_every_bit(case):
    params, dtype = case
    torch_dtype = torch.float32 if dtype == np.float32 else torch.float64
    state_dict = models.to_state_dict(params, dtype=torch_dtype)
    back = models.from_state_dict(state_dict, dtype=dtype, like=params)
    assert_bit_identical(back, params)


@PROPERTY
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=3, max_dims=3, max_side=6), elements=FINITE))
def test_layout_conversion_moves_element_in_t_b_to_t_b_in_and_back(x):
    y = models.flux_to_torch_layout(x, dtype=torch.float64)  # Flux (in, len, batch) -> torch (len, batch, in)
    n_in, length, batch = x.shape
    assert tuple(y.shape) == (length, batch, n_in)
    for i, t, b in np.ndindex(x.shape):
        assert bits(np.array(y[t, b, i].item())) == bits(np.array(x[i, t, b]))
    np.testing.assert_array_equal(bits(models.torch_to_flux_layout(y)), bits(x))

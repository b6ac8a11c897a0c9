"""Weights files layer by layer (issue 21): what each version's entries load as, which entry an error names, and
what is refused; plus the reader's error text (one short line naming what was expected and found).

Files are built here entry by entry with ``np.savez``; expected arrays are the ones written, compared with
what ``load_npz`` returns (never computed by the reader)."""

import numpy as np
import pytest

from fluxparity._npzio import Expect, NpzError, read_npz
from fluxparity.models import init_chain, load_npz, save_npz
from fluxparity.models._npz import file_entries

from npz_support import refused, write_npz


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8).copy()


def _chain(bias=True):
    """GRU(2 => 3), Dense(3 => 2, relu[, bias = false]), Dense(2 => 1)."""
    return init_chain(2, [("gru", 3)], [(2, "relu", bias), (1,)], seed=5, dtype=np.float64)


def _v1(**override):
    entries = {"format": _codes("fluxparity-weights/1"), "kind": _codes("rnn"), "activation": _codes("tanh"),
               "cell.Wi": np.arange(2.0).reshape(2, 1), "cell.Wh": np.eye(2), "cell.bias": np.array([0.5, -0.5])}
    entries.update(override)
    return {k: v for k, v in entries.items() if v is not None}


# ----------------------------------------------------------------------------------------------- what loads
def test_a_dense_without_bias_round_trips_without_one(tmp_path):
    chain = _chain(bias=False)
    save_npz(tmp_path / "w.npz", chain)
    loaded = load_npz(tmp_path / "w.npz")
    assert [getattr(layer, "has_bias", None) for layer in loaded.layers] == [None, False, True]
    assert loaded.arrays().keys() == chain.arrays().keys() and "layers[2].bias" not in loaded.arrays()
    for name, array in chain.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], array, err_msg=name)


def test_a_version_2_file_gives_every_dense_its_bias(tmp_path):
    chain = _chain()
    entries = {n: a for n, a in file_entries(chain).items() if not n.endswith(".use_bias")}
    entries["format"] = _codes("fluxparity-weights/2")
    loaded = load_npz(write_npz(tmp_path / "w2.npz", entries))
    assert [getattr(layer, "has_bias", None) for layer in loaded.layers] == [None, True, True]
    for name, array in chain.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], array, err_msg=name)


def test_a_version_1_file_without_head_is_a_lone_cell_read_at_every_step(tmp_path):
    loaded = load_npz(write_npz(tmp_path / "w1.npz", _v1()))
    assert len(loaded.layers) == 1 and loaded.readout == "all"
    (cell,) = loaded.layers
    assert cell.kind == "rnn" and cell.activation == "tanh"
    np.testing.assert_array_equal(cell.Wh, np.eye(2))
    np.testing.assert_array_equal(cell.bias, [0.5, -0.5])


# ---------------------------------------------------------------------------------------- what is refused
def test_a_use_bias_entry_where_none_belongs_is_refused(tmp_path):
    error = refused(load_npz, write_npz(tmp_path / "w1.npz", _v1(**{"layers[1].use_bias": _codes("true")})))
    assert error.entry == "layers[1].use_bias"
    entries = file_entries(_chain())
    entries["layers[4].use_bias"] = _codes("true")  # a three-layer chain
    assert refused(load_npz, write_npz(tmp_path / "w3.npz", entries)).entry == "layers[4].use_bias"


def test_a_use_bias_other_than_true_or_false_is_named_with_its_value(tmp_path):
    entries = file_entries(_chain())
    entries["layers[2].use_bias"] = _codes("yes")
    error = refused(load_npz, write_npz(tmp_path / "w.npz", entries))
    assert error.entry == "layers[2].use_bias" and "'yes'" in str(error)


def test_layer_numbers_with_a_gap_are_refused(tmp_path):
    entries = {n.replace("layers[3]", "layers[4]"): a for n, a in file_entries(_chain()).items()}
    error = refused(load_npz, write_npz(tmp_path / "w.npz", entries))
    assert "layer numbers [1, 2, 4]" in str(error)


@pytest.mark.parametrize("name, bad, entry", [
    ("layers[2].bias", np.zeros(3), "layers[2].bias"),  # 3 values for a Dense of 2 outputs
    ("layers[2].weight", np.zeros((2, 3, 1)), "layers[2].weight"),  # not a matrix
    ("layers[2].weight", np.full((2, 3), np.nan), "layers[2].weight"),
    ("layers[2].bias", np.array([0.0, np.inf]), "layers[2].bias"),
])
def test_a_bad_dense_array_is_named_by_its_entry(tmp_path, name, bad, entry):
    entries = file_entries(_chain())
    entries[name] = bad
    error = refused(load_npz, write_npz(tmp_path / "w.npz", entries))
    assert error.entry == entry


@pytest.mark.parametrize("gone", ["layers[2].weight", "layers[1].cell.Wh"])
def test_a_missing_weight_matrix_is_listed_as_missing(tmp_path, gone):
    entries = file_entries(_chain())
    del entries[gone]
    error = refused(load_npz, write_npz(tmp_path / "w.npz", entries))
    assert error.missing == (gone,) and f"missing key(s): '{gone}'" in str(error)


def test_layers_that_do_not_connect_name_the_file(tmp_path):
    entries = file_entries(_chain())
    entries["layers[2].weight"] = np.zeros((2, 5))  # the GRU before it has 3 outputs
    assert "fit together" in str(refused(load_npz, write_npz(tmp_path / "w.npz", entries)))
    head = {"head.weight": np.zeros((1, 5)), "head.bias": np.zeros(1)}  # the cell has 2 outputs
    assert "fit together" in str(refused(load_npz, write_npz(tmp_path / "w1.npz", _v1(**head))))


def test_a_version_1_cell_the_layer_refuses_is_named_cell(tmp_path):
    error = refused(load_npz, write_npz(tmp_path / "w1.npz", _v1(activation=_codes("softplus"))))
    assert error.entry == "cell" and "softplus" in str(error)


def test_stray_and_missing_entries_are_both_in_the_message(tmp_path):
    entries = file_entries(_chain())
    entries["notes"] = np.zeros(1)
    assert str(refused(load_npz, write_npz(tmp_path / "w.npz", entries))).endswith("found unexpected key(s): 'notes'")
    del entries["layers[3].bias"]
    assert str(refused(load_npz, write_npz(tmp_path / "w2.npz", entries))).endswith(
        "found unexpected key(s): 'notes'; missing key(s): 'layers[3].bias'")


# ------------------------------------------------------------------------------- the reader's error text
def test_the_expected_shape_and_dtypes_are_spelled_out(tmp_path):
    np.savez(tmp_path / "a.npz", a=np.zeros((2, 2), np.float32), t=np.float64(1.0))
    for expect, wanted in [(Expect((None, 3)), "expected float64 of shape (any, 3), found float32 of shape (2, 2)"),
                           (Expect((4,)), "expected float64 of shape (4,), found"),
                           (Expect(None, ("float64", "int8")), "expected float64 or int8 of any shape, found")]:
        with pytest.raises(NpzError) as error:
            read_npz(tmp_path / "a.npz", {"a": expect}, allow_unexpected=True)
        assert wanted in str(error.value)
    with pytest.raises(NpzError) as error:
        read_npz(tmp_path / "a.npz", {"t": Expect.text()}, allow_unexpected=True)
    assert "expected text (a NumPy str or bytes scalar), found float64 of shape ()" in str(error.value)


def test_long_name_lists_show_eight_names_of_at_most_80_characters(tmp_path):
    long = "x" * 100
    np.savez(tmp_path / "a.npz", a=np.zeros(1), **{f"s{i}": np.zeros(1) for i in range(9)}, **{long: np.zeros(1)})
    with pytest.raises(NpzError) as error:
        read_npz(tmp_path / "a.npz", {"a": Expect()})
    shown = ", ".join(f"'s{i}'" for i in range(8))
    assert str(error.value).endswith(f"found unexpected key(s): {shown} … and 2 more")
    with pytest.raises(NpzError) as error:
        read_npz(tmp_path / "a.npz", {"a": Expect(), **{f"s{i}": Expect() for i in range(9)}})
    assert str(error.value).endswith(f"found unexpected key(s): '{'x' * 80}'")  # cut at 80 characters


def test_an_error_text_over_400_characters_is_cut_in_the_middle():
    found = "a" * 200 + "b" + "c" * 200  # 401 characters
    message = str(NpzError("w.npz", None, "less", found))
    assert message == f"w.npz: expected less, found {'a' * 200} … {'c' * 200}"


# ------------------------------------------------------------------ activation entries (the format says who has one)
def _rnn_chain():
    """RNN(2 => 3, relu), LSTM(3 => 2), Dense(2 => 1, tanh): one layer of each activation rule."""
    return init_chain(2, [("rnn", 3, "relu"), ("lstm", 2)], [(1, "tanh")], seed=6, dtype=np.float64)


@pytest.mark.parametrize("layer", [1, 3], ids=["rnn", "dense"])
def test_an_rnn_or_dense_without_its_activation_is_refused_not_read_as_identity(tmp_path, layer):
    # docs: every RNN and Dense layer names its activation; Julia's load_weights refuses a missing one too
    entries = file_entries(_rnn_chain())
    del entries[f"layers[{layer}].activation"]
    error = refused(load_npz, write_npz(tmp_path / "w.npz", entries))
    assert error.entry == f"layers[{layer}].activation" and "no such entry" in str(error)


@pytest.mark.parametrize("name", ["layers[2].activation", "layers[4].activation", "activation"])
def test_an_activation_where_none_belongs_is_refused(tmp_path, name):
    # layer 2 is an LSTM (no activation in the format), layer 4 does not exist, "activation" is version 1's
    entries = {**file_entries(_rnn_chain()), name: _codes("tanh")}
    error = refused(load_npz, write_npz(tmp_path / "w.npz", entries))
    assert error.entry == name and "it present" in str(error)


def test_the_activations_written_are_the_ones_read(tmp_path):
    chain = _rnn_chain()
    save_npz(tmp_path / "w.npz", chain)
    back = load_npz(tmp_path / "w.npz")
    assert [getattr(layer, "activation", None) for layer in back.layers] == ["relu", None, "tanh"]

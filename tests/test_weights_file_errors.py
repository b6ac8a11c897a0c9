"""Bad weights files through ``models.load_npz``: one error type naming the file, the entry, expected and found,
and every header checked before any data is read (issue 9, item 8)."""

import io
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from fluxparity.models import init_chain, load_npz, save_npz
from fluxparity.models._npz import file_entries

from npz_support import refused, write_npz


def entries(**override):
    """A 2-layer Chain's entries (LSTM(2 => 3), Dense(3 => 1)), with some replaced or (None) removed."""
    chain = init_chain(2, [("lstm", 3)], [(1,)], seed=0, dtype=np.float64)
    found = dict(file_entries(chain))
    for name, value in override.items():
        name = name.replace("__", ".").replace("_L1_", "[1]").replace("_L2_", "[2]")
        if value is None:
            found.pop(name)
        else:
            found[name] = value
    return found


def test_a_good_file_round_trips(tmp_path):
    chain = init_chain(2, [("lstm", 3)], [(1,)], seed=0, dtype=np.float64)
    save_npz(tmp_path / "w.npz", chain)
    assert load_npz(tmp_path / "w.npz").arrays().keys() == chain.arrays().keys()


def test_a_missing_format_entry_is_named(tmp_path):
    error = refused(load_npz, write_npz(tmp_path / "w.npz", entries(format=None)))
    assert error.entry == "format" and "no such entry" in str(error)


def test_a_wrong_Wh_shape_is_reported_as_Wh(tmp_path):
    found = entries()
    found["layers[1].cell.Wh"] = np.zeros((12, 4))  # 4 columns = hidden 4, so 16 rows expected
    error = refused(load_npz, write_npz(tmp_path / "w.npz", found))
    assert error.entry == "layers[1].cell.Wh" and "(16, 4)" in str(error)


def test_a_transposed_dense_weight_is_reported_as_that_weight(tmp_path):
    found = entries()
    found["layers[2].weight"] = found["layers[2].weight"].T.copy()  # (3, 1) instead of (1, 3)
    error = refused(load_npz, write_npz(tmp_path / "w.npz", found))
    assert error.entry in ("layers[2].weight", "layers[2].bias", "layers[2]", None)
    assert "layers[2]" in str(error)


def test_text_stored_as_a_numpy_string_is_named(tmp_path):
    found = entries()
    found["layers[1].kind"] = np.array("lstm")
    error = refused(load_npz, write_npz(tmp_path / "w.npz", found))
    assert error.entry == "layers[1].kind" and "uint8" in str(error)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_weights_are_refused(tmp_path, bad):
    found = entries()
    found["layers[1].cell.bias"] = found["layers[1].cell.bias"].copy()
    found["layers[1].cell.bias"][0] = bad
    assert refused(load_npz, write_npz(tmp_path / "w.npz", found)).entry == "layers[1].cell.bias"


def test_float16_weights_are_refused(tmp_path):
    found = {n: (a.astype(np.float16) if a.dtype == np.float64 else a) for n, a in entries().items()}
    assert "float16" in str(refused(load_npz, write_npz(tmp_path / "w.npz", found)))


def test_stray_and_missing_entries_are_listed_together(tmp_path):
    found = entries(**{"layers[1].cell.bias": None})
    found["notes"] = np.zeros(1)
    error = refused(load_npz, write_npz(tmp_path / "w.npz", found))
    assert error.missing == ("layers[1].cell.bias",) and error.unexpected == ("notes",)


def test_mixed_float_dtypes_are_refused(tmp_path):
    found = entries()
    found["layers[2].bias"] = found["layers[2].bias"].astype(np.float32)
    assert "one float dtype" in str(refused(load_npz, write_npz(tmp_path / "w.npz", found)))


def test_an_unknown_kind_or_activation_is_named(tmp_path):
    found = entries()
    found["layers[1].kind"] = np.frombuffer(b"conv", dtype=np.uint8).copy()
    assert refused(load_npz, write_npz(tmp_path / "w.npz", found)).entry == "layers[1].kind"
    found = entries()
    found["layers[2].activation"] = np.frombuffer(b"softplus", dtype=np.uint8).copy()
    error = refused(load_npz, write_npz(tmp_path / "w.npz", found))
    assert error.entry == "layers[2]" and "softplus" in str(error)


def test_a_truncated_file_is_one_error(tmp_path):
    path = write_npz(tmp_path / "w.npz", entries())
    path.write_bytes(path.read_bytes()[:-200])
    refused(load_npz, path)


def test_a_huge_declared_array_fails_on_its_header(tmp_path):
    # LSTM(1 => 3): a Wi header declaring 5e8 rows in a file of a few kilobytes
    good = write_npz(tmp_path / "good.npz", entries())
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (500_000_000, 2)})
    header.write(b"\0" * 64)
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            lying = info.filename == "layers[1].cell.Wi.npy"
            archive.writestr(info.filename, header.getvalue() if lying else source.read(info))
    error = refused(load_npz, path)
    assert error.entry == "layers[1].cell.Wi"


def test_version_1_head_shapes_are_checked_too(tmp_path):
    v1 = {"format": np.frombuffer(b"fluxparity-weights/1", np.uint8).copy(),
          "kind": np.frombuffer(b"rnn", np.uint8).copy(), "activation": np.frombuffer(b"tanh", np.uint8).copy(),
          "cell.Wi": np.zeros((2, 1)), "cell.Wh": np.zeros((2, 2)), "cell.bias": np.zeros(2),
          "head.weight": np.zeros((2, 1)), "head.bias": np.zeros(1)}  # head.weight transposed: (2, 1) not (1, 2)
    error = refused(load_npz, write_npz(tmp_path / "w1.npz", v1))
    assert error.entry in ("head.bias", "head")


def test_a_golden_file_is_a_weights_file(tmp_path):
    from fluxparity.testing import record_golden

    chain = init_chain(2, [("gru", 3)], [(1,)], seed=4, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 5, 2))
    y = np.zeros((1, 2))
    record_golden(tmp_path / "g.npz", chain, x, y, loss="mse", rule="adam", steps=1)
    loaded = load_npz(tmp_path / "g.npz")
    for name, array in chain.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], array, err_msg=name)


def test_from_state_dict_names_the_missing_key_instead_of_a_bare_key_error():
    import torch

    from fluxparity import models

    module = torch.nn.Sequential(torch.nn.LSTM(2, 3), torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="missing key 'weight_hh_l0'") as error:
        models.from_state_dict(module.state_dict(), dtype=np.float64)
    assert "0.weight_hh_l0" in str(error.value)  # the names it was given are listed

"""Golden files: what the reference writes reads back, and every bad golden gets one message naming the file
and the entry (read through fluxparity._npzio: headers first, never a pickle)."""

import json
import zipfile

import numpy as np
import pytest

from fluxparity import models
from fluxparity._npzio import NpzError
from fluxparity.testing import load_golden

from golden_support import make_golden


@pytest.fixture
def golden_path(tmp_path):
    path = tmp_path / "g.npz"
    make_golden(path, [("lstm", 3)], ((2,),), steps=2, every_step=True)
    return path


def entries(path):
    with np.load(path, allow_pickle=False) as f:  # the test's own file, read to plant a fault
        return {n: f[n] for n in f.files}


def rewrite(path, **changes):
    e = entries(path)
    for name, value in changes.items():
        name = name.replace("__", ".")
        if value is None:
            del e[name]
        else:
            e[name] = value
    with open(path, "wb") as f:
        np.savez(f, **e)


def text(s):
    return np.frombuffer(s.encode(), dtype=np.uint8)


def test_what_the_reference_writes_reads_back(golden_path):
    g = load_golden(golden_path)
    e = entries(golden_path)
    assert bytes(e["golden.format"]).decode() == "fluxparity-golden/1"
    assert json.loads(bytes(e["golden.rule"]).decode()) == {"rule": "Adam", "eta": 0.01, "beta": [0.9, 0.999],
                                                           "epsilon": 1e-08}
    assert g.x.shape == (3, 5, 4) and g.y.shape == (2, 4) and g.output.shape == (2, 5, 4)
    assert g.steps == 2 and g.after_each["layers[1].cell.Wi"].shape == (2, 12, 3)
    np.testing.assert_array_equal(g.after_each["layers[2].bias"][-1], g.after_last["layers[2].bias"])
    assert set(g.grads) == set(g.chain.arrays())
    assert g.producer["name"] == "fluxparity NumPy reference"
    assert "Flux" not in g.producer_name


def test_the_golden_is_a_weights_file(golden_path):
    e = entries(golden_path)
    assert bytes(e["format"]).decode() == models.FORMAT
    g = load_golden(golden_path)
    for name, array in g.chain.arrays().items():
        np.testing.assert_array_equal(e[name], array)


def test_no_text_entry_is_a_string_dtype_or_zero_dimensional(golden_path):
    for name, a in entries(golden_path).items():
        assert a.dtype.kind in "uf" and a.ndim >= 1, name


def test_the_recorded_loss_is_flux_mse_of_the_output(golden_path):
    g = load_golden(golden_path)
    readout = models.outputs(g.chain, g.x)[:, -1, :]  # readout "last"
    assert g.loss_value == pytest.approx(np.mean((readout - g.y) ** 2), rel=1e-12)
    assert g.losses[0] == pytest.approx(g.loss_value, rel=1e-12)


def bad(path, entry):
    with pytest.raises(NpzError) as info:
        load_golden(path)
    message = str(info.value)
    assert str(path) in message and repr(entry) in message and "\n" not in message
    return message


def test_missing_entry(golden_path):
    rewrite(golden_path, **{"golden.grad.layers[1].cell.Wh": None})
    assert "missing" in bad(golden_path, "golden.grad.layers[1].cell.Wh")


def test_wrong_shape(golden_path):
    rewrite(golden_path, **{"golden.grad.layers[2].weight": np.zeros((3, 2))})
    assert "shape (2, 3)" in bad(golden_path, "golden.grad.layers[2].weight")


def test_wrong_format_version(golden_path):
    rewrite(golden_path, **{"golden.format": text("fluxparity-golden/2")})
    assert "'fluxparity-golden/1'" in bad(golden_path, "golden.format")


def test_a_weights_file_is_not_a_golden(tmp_path):
    path = tmp_path / "w.npz"
    models.save_npz(path, models.init_chain(2, [("rnn", 2)], seed=0, dtype=np.float64))
    assert "is this a golden file?" in bad(path, "golden.format")


def test_truncated_file(golden_path):
    data = golden_path.read_bytes()
    golden_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NpzError, match=str(golden_path)):
        load_golden(golden_path)


def test_truncated_entry(golden_path):
    e = entries(golden_path)
    with zipfile.ZipFile(golden_path, "w") as z:  # one member's data cut short, the archive itself intact
        for name, a in e.items():
            raw = np.lib.format.header_data_from_array_1_0(a)
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array_header_1_0(f, raw)
                f.write(a.tobytes()[: -8] if name == "golden.output" else a.tobytes())
    assert "truncated" in bad(golden_path, "golden.output")


def test_text_stored_as_a_numpy_string(golden_path):
    rewrite(golden_path, **{"golden.loss": np.array(["mse"])})
    assert "uint8" in bad(golden_path, "golden.loss")


def test_unknown_loss(golden_path):
    rewrite(golden_path, **{"golden.loss": text("huber")})
    assert "mse" in bad(golden_path, "golden.loss")


def test_pickled_object_array_is_never_loaded(golden_path):
    rewrite(golden_path, **{"golden.y": np.array([{"a": 1}], dtype=object)})
    assert "objects" in bad(golden_path, "golden.y")


def test_nan_in_a_gradient(golden_path):
    grad = entries(golden_path)["golden.grad.layers[2].bias"].copy()
    grad[0] = np.nan
    rewrite(golden_path, **{"golden.grad.layers[2].bias": grad})
    assert "NaN" in bad(golden_path, "golden.grad.layers[2].bias")


def test_an_unexpected_entry(golden_path):
    rewrite(golden_path, **{"golden.extra": np.zeros(2)})
    assert "no such entry" in bad(golden_path, "golden.extra")


def test_mixed_dtypes(golden_path):
    rewrite(golden_path, **{"golden.x": entries(golden_path)["golden.x"].astype(np.float32)})
    assert "float64" in bad(golden_path, "golden.x")

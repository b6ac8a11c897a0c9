"""`fluxparity record`: the golden file holds the chain asked for on the command line (read back with numpy,
not with fluxparity's reader), reproducibly for a seed, with targets fit for the loss; a malformed `--layers` or
`--dense` item is refused (exit 2, the bad item and examples named, no file)."""

import numpy as np
import pytest

from fluxparity.cli import main


def record(tmp_path, *argv, name="g.npz"):
    return main(["record", str(tmp_path / name), *argv])


def entries(path):
    """The golden's entries: text entries (stored as ASCII bytes) decoded, arrays as they are."""
    with np.load(path) as z:
        return {k: (bytes(z[k]).decode() if z[k].dtype == np.uint8 else z[k]) for k in z.files}


def test_layers_and_dense_items_become_the_golden_chain(tmp_path):
    assert record(tmp_path, "--layers", "rnn:3:relu,gru:2", "--dense", "4:relu:nobias,5:tanh,6:nobias,2",
                  "--input", "3", "--steps", "1") == 0
    g = entries(tmp_path / "g.npz")
    layers = {k: v for k, v in g.items() if k.startswith("layers[") and isinstance(v, str)}
    assert layers == {
        "layers[1].kind": "rnn", "layers[1].activation": "relu",
        "layers[2].kind": "gru",
        "layers[3].kind": "dense", "layers[3].activation": "relu", "layers[3].use_bias": "false",
        "layers[4].kind": "dense", "layers[4].activation": "tanh", "layers[4].use_bias": "true",
        "layers[5].kind": "dense", "layers[5].activation": "identity", "layers[5].use_bias": "false",
        "layers[6].kind": "dense", "layers[6].activation": "identity", "layers[6].use_bias": "true",
    }
    # Flux's layouts: RNN Wi (hidden, in); GRU Wi (3 hidden, in); Dense weight (out, in)
    assert g["layers[1].cell.Wi"].shape == (3, 3) and g["layers[2].cell.Wi"].shape == (6, 3)
    assert [g[f"layers[{i}].weight"].shape for i in (3, 4, 5, 6)] == [(4, 2), (5, 4), (6, 5), (2, 6)]
    assert sorted(k for k in g if k.startswith("layers[") and k.endswith("].bias")) == ["layers[4].bias",
                                                                                       "layers[6].bias"]


def test_one_of_everything_is_a_valid_golden(tmp_path):
    assert record(tmp_path, "--layers", "lstm:1", "--input", "1", "--length", "1", "--batch", "1", "--steps",
                  "1") == 0
    g = entries(tmp_path / "g.npz")
    assert g["golden.x"].shape == (1, 1, 1) and g["golden.train.losses"].shape == (1,)


def test_dtype_float32_records_float32(tmp_path):
    assert record(tmp_path, "--layers", "gru:2", "--dtype", "float32", "--steps", "1") == 0
    g = entries(tmp_path / "g.npz")
    assert g["golden.dtype"] == "float32"
    assert {g[k].dtype for k in ("golden.x", "golden.y", "golden.output", "layers[1].cell.Wi")} == {np.dtype(np.float32)}


def test_the_seed_makes_the_golden_reproducible(tmp_path):
    argv = ["--layers", "gru:2", "--steps", "1"]
    assert record(tmp_path, *argv, "--seed", "5", name="a.npz") == 0
    assert record(tmp_path, *argv, "--seed", "5", name="b.npz") == 0
    assert record(tmp_path, *argv, "--seed", "6", name="c.npz") == 0
    a, b, c = (entries(tmp_path / n) for n in ("a.npz", "b.npz", "c.npz"))
    for name in ("layers[1].cell.Wi", "golden.x", "golden.y"):
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name])


@pytest.mark.parametrize("readout, shape", [("last", (2, 4)), ("all", (2, 5, 4))])
def test_targets_have_the_readouts_shape(tmp_path, readout, shape):
    assert record(tmp_path, "--layers", "gru:3", "--dense", "2", "--readout", readout, "--steps", "1") == 0
    g = entries(tmp_path / "g.npz")
    assert g["readout"] == readout and g["golden.y"].shape == shape  # (out, [len,] batch); length 5, batch 4


@pytest.mark.parametrize("readout", ["last", "all"])
def test_logitcrossentropy_targets_are_probabilities_over_the_classes(tmp_path, readout):
    assert record(tmp_path, "--layers", "gru:3", "--dense", "4", "--readout", readout, "--loss", "logitcrossentropy",
                  "--steps", "1") == 0
    y = entries(tmp_path / "g.npz")["golden.y"]
    assert (y > 0).all()
    np.testing.assert_allclose(y.sum(axis=0), 1.0, rtol=0, atol=1e-15)  # each column: a distribution


def test_mse_targets_are_not_probabilities(tmp_path):
    # standard normal targets: 4 x 4 of them all positive has probability 2^-16
    assert record(tmp_path, "--layers", "gru:3", "--dense", "4", "--batch", "4", "--steps", "1") == 0
    assert (entries(tmp_path / "g.npz")["golden.y"] < 0).any()


@pytest.mark.parametrize("option, item, like", [
    ("--dense", "2:relu:tanh", "2, 8:relu, 2:nobias or 8:relu:nobias"),
    ("--dense", "2:nobias:nobias", "2, 8:relu, 2:nobias or 8:relu:nobias"),
    ("--dense", "2:relu:nobias:x", "2, 8:relu, 2:nobias or 8:relu:nobias"),
    ("--layers", "rnn:3:relu:junk", "lstm:8 or rnn:3:relu"),  # was accepted, "junk" dropped unread
])
def test_a_malformed_item_is_refused_naming_it(tmp_path, capsys, option, item, like):
    argv = ["--layers", "gru:2", "--dense", item] if option == "--dense" else ["--layers", item]
    assert record(tmp_path, *argv) == 2
    assert capsys.readouterr().err == f"fluxparity record: error: {option} {item!r}: expected items like {like}\n"
    assert not (tmp_path / "g.npz").exists()


def test_record_requires_layers(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        record(tmp_path)
    assert exc.value.code == 2 and "--layers" in capsys.readouterr().err
    assert not (tmp_path / "g.npz").exists()

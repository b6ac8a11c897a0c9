"""Golden files entry by entry (issue 21): what a reference golden records, what an older or hand-edited golden
reads as, what is refused (and named), and that nothing the reader would refuse is ever written.

Small model (GRU(2 => 3), Dense(3 => 2, no bias), Dense(2 => 1)), a few steps: fast. Expected values come
from docs/golden-format.md or from the entries written, never from the reader."""

import dataclasses

import numpy as np
import pytest

import fluxparity
from fluxparity._npzio import NpzError
from fluxparity.models import init_chain
from fluxparity.testing._golden import golden_entries, load_golden, record_golden, reference_golden, save_golden

from npz_support import refused, write_npz

X = np.random.default_rng(1).standard_normal((2, 4, 3))  # (in, len, batch)
Y = np.zeros((1, 3))  # (out, batch): readout last


def _chain(bias=False):
    return init_chain(2, [("gru", 3)], [(2, "tanh", bias), (1,)], seed=2, dtype=np.float64)


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8).copy()


@pytest.fixture(scope="module")
def golden():
    return reference_golden(_chain(), X, Y, steps=2)


# ------------------------------------------------------------------------------------------- what is recorded
def test_the_reference_records_who_computed_it_and_its_defaults(tmp_path):
    g = reference_golden(_chain(), X, Y)
    assert g.path == ""  # not read from a file
    assert g.producer == {"name": "fluxparity NumPy reference", "fluxparity": fluxparity.__version__,
                          "numpy": np.__version__}  # docs/golden-format.md
    assert g.steps == 3 and g.after_each is None  # the documented defaults: steps=3, every_step=False
    read = record_golden(tmp_path / "g.npz", _chain(), X, Y)
    assert read.steps == 3 and read.after_each is None and read.path == str(tmp_path / "g.npz")


def test_a_producer_with_non_ascii_text_is_stored_as_ascii_escapes(tmp_path, golden):
    g = dataclasses.replace(golden, producer={"name": "Flüx", "julia": "1.11"})
    save_golden(tmp_path / "g.npz", g)
    assert load_golden(tmp_path / "g.npz").producer == {"name": "Flüx", "julia": "1.11"}
    with np.load(tmp_path / "g.npz") as f:
        assert bytes(f["golden.producer"]).decode("ascii") == '{"julia": "1.11", "name": "Fl\\u00fcx"}'


def test_a_golden_the_reader_refuses_is_never_written(tmp_path, golden):
    path = tmp_path / "g.npz"
    save_golden(path, golden)
    before = path.read_bytes()
    for bad in (dataclasses.replace(golden, producer={"julia": "1.11"}),  # no "name"
                dataclasses.replace(golden, loss_value=float("nan")),
                dataclasses.replace(golden, losses=np.zeros(0))):  # no training step
        with pytest.raises(NpzError):
            save_golden(path, bad)
        assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]


# ------------------------------------------------------------------------------------------ what reads back
def test_a_golden_of_weights_version_2_gives_every_dense_its_bias(tmp_path):
    g = reference_golden(_chain(bias=True), X, Y, steps=1)
    entries = {n: a for n, a in golden_entries(g).items() if not n.endswith(".use_bias")}
    entries["format"] = _codes("fluxparity-weights/2")
    read = load_golden(write_npz(tmp_path / "g2.npz", entries))
    assert read.chain.layers[1].has_bias and read.chain.layers[2].has_bias
    np.testing.assert_array_equal(read.chain.layers[1].bias, g.chain.layers[1].bias)


# -------------------------------------------------------------------------------------------- what is refused
@pytest.mark.parametrize("value, found", [("maybe", "'maybe'"), (None, "no such entry")])
def test_a_dense_use_bias_that_is_not_true_or_false_is_named(tmp_path, golden, value, found):
    entries = golden_entries(golden)
    if value is None:
        del entries["layers[2].use_bias"]
    else:
        entries["layers[2].use_bias"] = _codes(value)
    error = refused(load_golden, write_npz(tmp_path / "g.npz", entries))
    assert error.entry == "layers[2].use_bias" and str(error).endswith(f"found {found}")


@pytest.mark.parametrize("producer", ['["name"]', '{"julia": "1.11"}', '"Flux"'])
def test_a_producer_that_is_not_an_object_with_a_name_is_refused(tmp_path, golden, producer):
    entries = golden_entries(golden)
    entries["golden.producer"] = _codes(producer)
    assert refused(load_golden, write_npz(tmp_path / "g.npz", entries)).entry == "golden.producer"


def test_layer_numbers_with_a_gap_are_refused(tmp_path, golden):
    entries = {n.replace("layers[3]", "layers[4]"): a for n, a in golden_entries(golden).items()}
    error = refused(load_golden, write_npz(tmp_path / "g.npz", entries))
    assert "layer numbers [1, 2, 4]" in str(error)


# ----------------------------------------------------------------------------------- what reference_golden refuses
@pytest.mark.parametrize("steps", [0, -1, 2.0])
def test_steps_must_be_a_positive_integer(steps):
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        reference_golden(_chain(), X, Y, steps=steps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_non_finite_input_is_named_by_its_value_and_place(dtype):
    x = X.astype(dtype)
    x.flat[5] = np.nan
    with pytest.raises(ValueError, match=r"^x must hold finite numbers only, got nan at flat index 5$"):
        reference_golden(_chain(), x, Y)


def test_an_input_of_text_is_refused_by_its_dtype():
    with pytest.raises(ValueError, match=r"^y must hold finite numbers only, got dtype <U1$"):
        reference_golden(_chain(), X, np.array([["a", "b", "c"]]))


# Every array entry of a golden (docs/golden-format.md): a non-finite number or a wrong shape is refused by the
# reader, naming that entry — a golden is the truth a port is checked against, so it must never hold NaN/inf or
# an array the comparison would broadcast.
ARRAY_ENTRIES = ["golden.x", "golden.y", "golden.output", "golden.loss_value", "golden.train.losses",
                 "layers[1].cell.Wi", "layers[1].cell.b", "layers[2].weight"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ARRAY_ENTRIES)
def test_a_non_finite_number_in_any_array_entry_is_refused_and_named(tmp_path, golden, name, bad):
    entries = golden_entries(golden)
    changed = np.array(entries[name], copy=True)
    changed.flat[-1] = bad
    entries[name] = changed
    assert refused(load_golden, write_npz(tmp_path / "g.npz", entries)).entry == name


@pytest.mark.parametrize("name", ARRAY_ENTRIES)
def test_an_array_entry_with_an_extra_axis_is_refused_and_named(tmp_path, golden, name):
    entries = golden_entries(golden)
    entries[name] = np.asarray(entries[name])[..., None]
    assert refused(load_golden, write_npz(tmp_path / "g.npz", entries)).entry == name


@pytest.mark.parametrize("name", ["golden.x", "layers[1].cell.Wi", "golden.train.losses"])
def test_a_missing_entry_is_refused_naming_it_and_the_file(tmp_path, golden, name):
    entries = golden_entries(golden)
    del entries[name]
    assert refused(load_golden, write_npz(tmp_path / "g.npz", entries)).entry == name  # _refused checks the path too


@pytest.mark.parametrize("name", ["golden.loss_value", "golden.train.losses"])
def test_the_losses_must_be_float64_whatever_the_models_dtype(tmp_path, golden, name):
    entries = golden_entries(golden)  # docs/golden-format.md: loss_value and train.losses are float64
    entries[name] = np.asarray(entries[name], dtype=np.float32)
    assert refused(load_golden, write_npz(tmp_path / "g.npz", entries)).entry == name


def test_every_stray_entry_is_listed_in_the_error(tmp_path, golden):
    entries = golden_entries(golden)
    entries["golden.notes"] = np.zeros(1)
    entries["golden.extra"] = np.zeros(1)
    error = refused(load_golden, write_npz(tmp_path / "g.npz", entries))
    assert error.entry == "golden.notes" and sorted(error.unexpected) == ["golden.extra", "golden.notes"]


@pytest.mark.parametrize("name, found", [("layers[2].activation", "no such entry"),  # a Dense without one
                                         ("layers[1].activation", "it present"),  # a GRU with one
                                         ("layers[7].activation", "it present")])  # no layer 7
def test_activation_entries_follow_the_weights_format(tmp_path, golden, name, found):
    # docs/golden-format.md: the weights part is a fluxparity-weights/3 file; a missing Dense activation is
    # never read as identity (the Julia reader refuses it too)
    entries = golden_entries(golden)
    if found == "no such entry":
        del entries[name]
    else:
        entries[name] = _codes("tanh")
    error = refused(load_golden, write_npz(tmp_path / "g.npz", entries))
    assert error.entry == name and str(error).endswith(f"found {found}")


def test_a_golden_read_back_knows_its_file(tmp_path, golden):
    path = tmp_path / "g.npz"
    save_golden(path, golden)
    assert load_golden(path).path == str(path)


def test_layers_that_do_not_fit_together_name_the_file(tmp_path, golden):
    entries = golden_entries(golden)
    for prefix in ("", "golden.grad.", "golden.train.after_last."):  # Dense(3 => 2) reads 4 inputs now
        entries[prefix + "layers[2].weight"] = np.zeros((2, 4))
    error = refused(load_golden, write_npz(tmp_path / "g.npz", entries))
    assert error.entry == "layers" and str(error).endswith("found layers[2] takes 4 inputs, layers[1] gives 3")

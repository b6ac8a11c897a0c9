"""Flux's ``Dense(in => out, σ; bias = false)`` everywhere a Chain goes: the parameters, the NumPy reference
(against torch autograd on ``nn.Linear(bias=False)``), state dicts both ways, the weights file (version 3,
with version 2 still read), golden files and ``fluxparity record --dense OUT[:ACT]:nobias``.

Tolerance of the reference-vs-torch comparison: ``FLOAT64_RTOL`` of tests/test_models_chain_parity.py
(1e-12 relative to the compared array's largest magnitude; float64 rounding of the same formulas summed in
another order, measured there ≤ 3.5e-15) — a bias-free Dense only removes a term.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from golden_support import make_golden
from test_models_chain_parity import FLOAT64_RTOL, _relative, _torch_value_and_grad

from fluxparity import models
from fluxparity._npzio import NpzError
from fluxparity.cli import main
from fluxparity.testing import load_golden

CHAINS = {
    "lstm-relu-nobias-then-bias": ([("lstm", 4)], [(5, "relu", False), (3, "identity", True)], "last"),
    "gru-sigmoid-nobias": ([("gru", 3)], [(2, "sigmoid", False)], "last"),
    "rnn-identity-nobias-all-steps": ([("rnn", 3, "tanh")], [(2, "identity", False)], "all"),
    "gruv3-tanh-nobias-twice": ([("gruv3", 3)], [(4, "tanh", False), (2, "identity", False)], "last"),
}
N_IN, LENGTH, BATCH = 2, 4, 3


def _case(name, loss, seed=0):
    recurrent, dense, readout = CHAINS[name]
    rng = np.random.default_rng(seed)
    chain = models.init_chain(N_IN, recurrent, dense, seed=rng, dtype=np.float64, readout=readout)
    chain = chain.replace_arrays({n: a + 0.3 * rng.standard_normal(a.shape) for n, a in chain.arrays().items()})
    x = rng.standard_normal((N_IN, LENGTH, BATCH))
    shape = (chain.output_size, BATCH) if readout == "last" else (chain.output_size, LENGTH, BATCH)
    y = rng.standard_normal(shape)
    if loss == "logitcrossentropy":
        y = np.exp(y) / np.exp(y).sum(axis=0, keepdims=True)
    return chain, x, y


def _flat_bias_free(recurrent=(("lstm", 3),), dense=((2, "relu", False),), dtype=np.float64, readout="last"):
    return models.init_chain(3, list(recurrent), list(dense), seed=1, dtype=dtype, readout=readout)


# ------------------------------------------------------------------------------------------------ parameters
def test_a_bias_free_dense_has_only_a_weight():
    layer = models.DenseParams(np.ones((2, 3)), None, "relu")
    assert layer.bias is None and not layer.has_bias
    assert list(layer.arrays()) == ["weight"]
    assert models.DenseParams(np.ones((2, 3)), False).bias is None  # Flux's spelling, stored as None
    assert layer.astype(np.float32).bias is None and layer.zeros_like().bias is None
    with pytest.raises(KeyError, match="unexpected \\['bias'\\]"):
        layer.replace_arrays({"weight": np.ones((2, 3)), "bias": np.ones(2)})


def test_init_chain_draws_the_same_weight_with_or_without_a_bias():
    with_bias = models.init_chain(3, [("lstm", 4)], [(2, "relu")], seed=5, dtype=np.float64)
    without = models.init_chain(3, [("lstm", 4)], [(2, "relu", False)], seed=5, dtype=np.float64)
    assert list(without.arrays()) == ["layers[1].cell.Wi", "layers[1].cell.Wh", "layers[1].cell.bias",
                                      "layers[2].weight"]
    for name, array in without.arrays().items():
        np.testing.assert_array_equal(array, with_bias.arrays()[name])


def test_init_dense_refuses_a_bias_that_is_not_a_bool():
    with pytest.raises(TypeError, match="bias must be True or False"):
        models.init_dense(3, 2, seed=0, dtype=np.float64, bias="false")


# ------------------------------------------------------------------------------------------------ reference vs torch
@pytest.mark.parametrize("loss", ["mse", "logitcrossentropy"])
@pytest.mark.parametrize("name", list(CHAINS))
def test_reference_backprop_matches_torch_autograd_in_float64(name, loss):
    chain, x, y = _case(name, loss)
    module = models.build_module(chain, dtype=torch.float64)
    for layer, dense in zip(module.layers, chain.layers):
        if isinstance(dense, models.DenseParams):
            assert (layer.bias is None) == (not dense.has_bias)
    assert _relative(models.run(module, x), models.outputs(chain, x, fast=False)) <= FLOAT64_RTOL
    ref_value, ref_grads = models.value_and_grad(chain, x, models.chain_loss(loss, y, chain.readout), fast=False)
    torch_value, torch_grads = _torch_value_and_grad(module, chain, x, y, loss)
    assert abs(ref_value - torch_value) <= FLOAT64_RTOL * abs(ref_value)
    ref_grads = models.flat_params(ref_grads)
    assert list(torch_grads) == list(ref_grads) == list(chain.arrays())
    for n in ref_grads:
        assert _relative(torch_grads[n], ref_grads[n]) <= FLOAT64_RTOL, n


def test_the_reference_adds_no_bias():
    """σ.(W*h) exactly: the Dense output is the weight times the recurrent layer's output, nothing added."""
    chain, x, _ = _case("rnn-identity-nobias-all-steps", "mse")
    hidden = models.outputs(models.Chain(chain.layers[:1], "all"), x)
    expected = np.einsum("oh,hlb->olb", chain.layers[1].weight, hidden)
    np.testing.assert_allclose(models.outputs(chain, x), expected, rtol=1e-13, atol=0)


# ------------------------------------------------------------------------------------------------ state dicts
def test_state_dict_round_trip_has_no_bias_on_either_side():
    chain = _flat_bias_free()
    sd = models.to_state_dict(chain, dtype=torch.float64)
    assert "layers.1.weight" in sd and "layers.1.bias" not in sd
    back = models.from_state_dict(sd, dtype=np.float64, like=chain)
    assert back.layers[1].bias is None
    for n, a in chain.arrays().items():
        np.testing.assert_array_equal(back.arrays()[n], a)
    from_module = models.from_module(models.build_module(chain, dtype=torch.float64), dtype=np.float64)
    assert from_module.layers[1].bias is None


def test_a_bias_on_one_side_only_names_both():
    chain = _flat_bias_free()
    with_bias = models.init_chain(3, [("lstm", 3)], [(2, "relu")], seed=1, dtype=np.float64)
    sd = models.to_state_dict(with_bias, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"layers\.1: the Flux layer is a Dense\(\.\.\.; bias = false\), the "
                                         r"state_dict has names \['bias', 'weight'\]"):
        models.from_state_dict(sd, dtype=np.float64, like=chain)
    sd = models.to_state_dict(chain, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"layers\.1: the Flux layer is a Dense with a bias, the state_dict has "
                                         r"nn\.Linear\(bias=False\)"):
        models.from_state_dict(sd, dtype=np.float64, like=with_bias)


def test_gradients_to_flux_reads_no_bias_gradient():
    chain = _flat_bias_free()
    module = models.build_module(chain, dtype=torch.float64)
    grads = {n: torch.ones_like(p) for n, p in module.named_parameters()}
    back = models.gradients_to_flux(grads, chain, dtype=np.float64)
    assert back.layers[1].bias is None


# ------------------------------------------------------------------------------------------------ weights file
def test_weights_file_round_trip_and_use_bias_entries(tmp_path):
    chain = _flat_bias_free(dense=((4, "tanh", True), (2, "relu", False)), dtype=np.float32)
    path = tmp_path / "w.npz"
    models.save_npz(path, chain)
    entries = models.read_entries(path)
    assert entries["format"] == "fluxparity-weights/3" == models.FORMAT
    assert entries["layers[2].use_bias"] == "true" and entries["layers[3].use_bias"] == "false"
    assert "layers[1].use_bias" not in entries and "layers[3].bias" not in entries
    back = models.load_npz(path)
    assert back.layers[2].bias is None and back.layers[1].has_bias and back.dtype == np.float32
    assert list(back.arrays()) == list(chain.arrays())
    for n, a in chain.arrays().items():
        np.testing.assert_array_equal(back.arrays()[n], a)


def _write(path, entries):
    with open(path, "wb") as f:
        np.savez(f, **entries)


def _text(s):
    return np.frombuffer(s.encode(), np.uint8).copy()


def _v3_entries(chain):
    return dict(models._npz.file_entries(chain))


def test_a_version_2_file_still_loads(tmp_path):
    """Version 2 as it was written before (no use_bias; every Dense has a bias), built entry by entry."""
    chain = models.init_chain(3, [("gru", 3)], [(2, "relu")], seed=2, dtype=np.float64)
    entries = {n: a for n, a in _v3_entries(chain).items() if not n.endswith(".use_bias")}
    entries["format"] = _text("fluxparity-weights/2")
    _write(tmp_path / "v2.npz", entries)
    back = models.load_npz(tmp_path / "v2.npz")
    assert back.layers[1].has_bias
    for n, a in chain.arrays().items():
        np.testing.assert_array_equal(back.arrays()[n], a)


@pytest.mark.parametrize("change, match", [
    (lambda e: e.pop("layers[2].use_bias"), r"layers\[2\]\.use_bias.*no such entry"),
    (lambda e: e.update({"layers[2].use_bias": _text("no")}), r"layers\[2\]\.use_bias.*'no'"),
    (lambda e: e.update({"layers[1].use_bias": _text("true")}), r"layers\[1\]\.use_bias.*a lstm layer"),
    (lambda e: e.update({"layers[7].use_bias": _text("true")}), r"layers\[7\]\.use_bias"),
    (lambda e: e.update({"layers[2].use_bias": _text("true")}), r"missing key\(s\): 'layers\[2\]\.bias'"),
    (lambda e: e.update({"layers[2].bias": np.zeros(2)}), r"unexpected key\(s\): 'layers\[2\]\.bias'"),
    (lambda e: e.update({"format": _text("fluxparity-weights/2")}), r"layers\[2\]\.use_bias.*'fluxparity-weights/2'"),
    (lambda e: e.update({"format": _text("fluxparity-weights/4")}), r"'fluxparity-weights/3' or "),
])
def test_a_bad_use_bias_is_one_error_naming_the_entry(tmp_path, change, match):
    entries = _v3_entries(_flat_bias_free())
    change(entries)
    _write(tmp_path / "bad.npz", entries)
    with pytest.raises(NpzError, match=match):
        models.load_npz(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------------------------ golden files
def test_golden_round_trip_of_a_bias_free_dense(tmp_path):
    g = make_golden(tmp_path / "g.npz", [("lstm", 4)], [(3, "relu", False), (2, "identity", True)])
    assert g.chain.layers[1].bias is None and g.chain.layers[2].has_bias
    assert "layers[2].bias" not in g.grads and "layers[2].weight" in g.grads
    with zipfile.ZipFile(tmp_path / "g.npz") as archive:
        names = {i.filename[:-4] for i in archive.infolist()}
    assert {"layers[2].use_bias", "layers[3].use_bias"} <= names
    assert not any(n.endswith("layers[2].bias") for n in names)


def test_a_golden_holding_a_version_2_weights_file_still_loads(tmp_path):
    make_golden(tmp_path / "g.npz", [("gru", 3)], [(2, "identity")])
    with np.load(tmp_path / "g.npz") as f:
        entries = {n: f[n] for n in f.files if not n.endswith(".use_bias")}
    entries["format"] = _text("fluxparity-weights/2")
    _write(tmp_path / "old.npz", entries)
    g = load_golden(tmp_path / "old.npz")
    assert g.chain.layers[1].has_bias and "layers[2].bias" in g.grads


def test_a_golden_dense_without_use_bias_is_refused(tmp_path):
    make_golden(tmp_path / "g.npz", [("gru", 3)], [(2, "identity", False)])
    with np.load(tmp_path / "g.npz") as f:
        entries = {n: f[n] for n in f.files if not n.endswith(".use_bias")}
    _write(tmp_path / "bad.npz", entries)
    with pytest.raises(NpzError, match=r"layers\[2\]\.use_bias.*no such entry"):
        load_golden(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------------------------ the CLI
def test_record_dense_nobias(tmp_path):
    path = tmp_path / "g.npz"
    assert main(["record", str(path), "--layers", "lstm:4", "--dense", "3:relu:nobias,2:nobias", "--steps", "1"]) == 0
    g = load_golden(path)
    assert [(d.activation, d.has_bias) for d in g.chain.dense] == [("relu", False), ("identity", False)]


@pytest.mark.parametrize("spec", ["2:nobias:relu", "2:relu:tanh", "2:nobias:nobias", "2:relu:nobias:x", "x:relu"])
def test_record_refuses_a_bad_dense_item(tmp_path, capsys, spec):
    assert main(["record", str(tmp_path / "g.npz"), "--layers", "lstm:4", "--dense", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"--dense {spec!r}" in err and "8:relu:nobias" in err
    assert not (tmp_path / "g.npz").exists()


# ------------------------------------------------------------------------------------------------ Julia sources
def test_julia_weights_reader_and_writer_name_the_same_versions_and_use_bias():
    """Checked as text (no Julia here; tests/test_golden_julia.py runs golden.jl where Julia exists)."""
    from fluxparity import juliaprobe

    source = (juliaprobe.repository_root() / "julia" / "weights.jl").read_text(encoding="utf-8")
    assert f'const FORMAT = "{models.FORMAT}"' in source
    assert 'const FORMAT_V2 = "fluxparity-weights/2"' in source and "found in (FORMAT, FORMAT_V2)" in source
    assert 'd[prefix * "use_bias"]' in source and 'prefix * "use_bias"' in source
    assert 'has_bias ? arr("bias") : false' in source  # Flux's own Bool false in Dense.bias

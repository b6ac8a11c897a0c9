"""Weight conversion Flux layout <-> PyTorch state_dict, and the .npz weights file Julia reads.

Round trips must be exact: compared bit for bit (so a -0.0 turning into +0.0 would fail too).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from fluxparity import models

from models_support import MODEL_IDS, MODELS, float64_everywhere  # noqa: F401 (an autouse fixture)

# Measured worst |torch - reference| over every FLOAT64_PARITY comparison of test_models_torch_parity.py and
# test_models_convert.py: 7.1e-15 (docs/parity.md, "Margins the tests pin"); 1e-13 is 14x that.
FLOAT64_PARITY = dict(rtol=0.0, atol=1e-13)

DTYPES = [(np.float32, torch.float32), (np.float64, torch.float64)]
DTYPE_IDS = ["float32", "float64"]



def _params(kind, activation, head, dtype, seed=0):
    rng = np.random.default_rng(seed)
    model = models.init_model(kind, 3, 4, 2 if head else None, seed=rng, dtype=np.float64, activation=activation)
    # arbitrary float64 values (not float32 numbers), and a -0.0 in the bias
    flat = {n: rng.standard_normal(a.shape, dtype=np.float64) for n, a in models.flat_params(model).items()}
    bias_name = next(n for n in flat if n in ("layers[1].cell.bias", "layers[1].cell.b"))
    flat[bias_name][0] = -0.0
    return models.with_flat_params(model, flat).astype(dtype)


def _assert_bitwise_equal(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for name, a in actual.items():
        e = expected[name]
        assert a.dtype == e.dtype and a.shape == e.shape, name
        np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), e.view(f"u{e.itemsize}"), err_msg=name)


@pytest.mark.parametrize("one_bias_rnn", [False, True], ids=["builtin", "one-bias"])
@pytest.mark.parametrize("head", [False, True], ids=["no-head", "dense-head"])
@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_state_dict_names_and_shapes_match_torch_modules(kind, activation, head, one_bias_rnn):
    params = _params(kind, activation, head, np.float64)
    module = models.empty_module(params, dtype=torch.float64, one_bias_rnn=one_bias_rnn)
    converted = models.to_state_dict(params, dtype=torch.float64, one_bias_rnn=one_bias_rnn)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in module.state_dict().items()
    }


@pytest.mark.parametrize("dtypes", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("head", [False, True], ids=["no-head", "dense-head"])
@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_flux_to_torch_to_flux_is_exact(kind, activation, head, dtypes):
    np_dtype, torch_dtype = dtypes
    params = _params(kind, activation, head, np_dtype)
    state_dict = models.to_state_dict(params, dtype=torch_dtype)
    assert {v.dtype for v in state_dict.values()} == {torch_dtype}
    back = models.from_state_dict(state_dict, dtype=np_dtype, activation=activation if kind == "rnn" else None,
                                  like=params if isinstance(params, models.Chain) else None)
    _assert_bitwise_equal(models.flat_params(back), models.flat_params(params))


@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_flux_to_module_to_flux_is_exact(kind, activation):
    params = _params(kind, activation, True, np.float64)
    module = models.build_module(params, dtype=torch.float64)
    _assert_bitwise_equal(models.flat_params(models.from_module(module, dtype=np.float64)), models.flat_params(params))


@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_torch_to_flux_to_torch_is_exact(kind, activation):
    torch.manual_seed(0)
    module = models.empty_module(_params(kind, activation, True, np.float64), dtype=torch.float64)  # torch's init
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "bias_hh" in name:
                p.zero_()  # Flux's one-bias model
    original = {k: v.numpy().copy() for k, v in module.state_dict().items()}
    params = models.from_module(module, dtype=np.float64)
    again = models.to_state_dict(params, dtype=torch.float64)
    _assert_bitwise_equal({k: v.numpy() for k, v in again.items()}, original)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_nonzero_hidden_bias_folds_into_flux_bias(kind):
    """RNN and LSTM add bias_ih and bias_hh before any nonlinearity: Flux's one bias is their sum."""
    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 4, dtype=torch.float64) if kind == "rnn" else torch.nn.LSTM(3, 4, dtype=torch.float64)
    assert torch.count_nonzero(rnn.bias_hh_l0) > 0  # PyTorch's default init
    params = models.from_module(rnn, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((3, 5, 2), dtype=np.float64)
    hidden, _ = rnn(models.flux_to_torch_layout(x, dtype=torch.float64))
    # every step's hidden state: the module with two biases vs the reference with their sum
    torch.testing.assert_close(
        models.torch_to_flux_layout(hidden), models.outputs(params, x, fast=False), **FLOAT64_PARITY
    )


def test_gru_nonzero_b_hn_is_refused():
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, dtype=torch.float64)  # default init: b_hn != 0, inside r ⊙ (W_hn h + b_hn)
    with pytest.raises(ValueError, match="b_hn"):
        models.from_module(gru, dtype=np.float64)


def test_gru_hidden_biases_of_the_gates_fold_into_flux_bias():
    # b_hr and b_hz add to b_ir and b_iz before the sigmoid (Flux's one bias holds the sum); only b_hn may not
    gru = torch.nn.GRU(3, 4, dtype=torch.float64)
    with torch.no_grad():
        gru.bias_hh_l0[8:].zero_()  # b_hn = 0, b_hr and b_hz as initialised (nonzero)
    params = models.from_module(gru, dtype=np.float64)
    expected = (gru.bias_ih_l0 + gru.bias_hh_l0).detach().numpy()
    np.testing.assert_array_equal(params.b, expected)


@pytest.mark.parametrize("np_dtype, torch_dtype", [(np.float64, torch.float32), (np.float32, torch.float64)])
def test_to_state_dict_gives_every_tensor_the_requested_dtype(np_dtype, torch_dtype):
    for kind, activation in MODELS:
        for one_bias_rnn in (False, True):
            params = _params(kind, activation, True, np_dtype)
            state_dict = models.to_state_dict(params, dtype=torch_dtype, one_bias_rnn=one_bias_rnn)
            assert {name: t.dtype for name, t in state_dict.items()} == {name: torch_dtype for name in state_dict}
            cell_only = models.to_state_dict(params.layers[0], dtype=torch_dtype, one_bias_rnn=one_bias_rnn)
            assert {t.dtype for t in cell_only.values()} == {torch_dtype}


def test_conversion_to_float32_rounds_explicitly():
    cell = _params("lstm", "tanh", False, np.float64).layers[0]
    state_dict = models.to_state_dict(cell, dtype=torch.float32)
    # float64 -> float32 happens here, once, by request: exactly NumPy's rounding of every weight
    _assert_bitwise_equal(
        {"Wi": state_dict["weight_ih_l0"].numpy(), "Wh": state_dict["weight_hh_l0"].numpy()},
        {"Wi": cell.Wi.astype(np.float32), "Wh": cell.Wh.astype(np.float32)},
    )


def test_freeze_hidden_biases_refuses_a_nonzero_bias():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="bias_hh_l0 is not zero"):
        models.freeze_hidden_biases(torch.nn.LSTM(2, 3, dtype=torch.float64))


@pytest.mark.parametrize(
    "rnn",
    [
        lambda: torch.nn.LSTM(2, 3, num_layers=2, dtype=torch.float64),
        lambda: torch.nn.GRU(2, 3, bidirectional=True, dtype=torch.float64),
        lambda: torch.nn.LSTM(2, 3, proj_size=2, dtype=torch.float64),
    ],
    ids=["two-layers", "bidirectional", "projection"],
)
def test_modules_with_no_flux_cell_are_refused(rnn):
    with pytest.raises(ValueError, match="single-layer"):
        models.from_module(rnn(), dtype=np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("head", [False, True], ids=["no-head", "dense-head"])
@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_npz_round_trip_is_exact(tmp_path, kind, activation, head, dtype):
    params = _params(kind, activation, head, dtype)
    path = tmp_path / "weights.npz"
    models.save_npz(path, params)
    loaded = models.load_npz(path)
    assert loaded.layers[0].kind == kind and getattr(loaded.layers[0], "activation", activation) == activation
    expected = models.as_chain(params)
    _assert_bitwise_equal(models.flat_params(loaded), models.flat_params(expected))


def _npzjl_read(raw: bytes) -> np.ndarray:
    """What NPZ.jl 0.4.3 (`_npzreadarray`) makes of one .npy member, written again in NumPy: read the data
    into a column-major array of the reversed shape, then `permutedims` it (reverse the axes) — unless the
    header says fortran_order, then read it column-major with the shape as is."""
    header_len = int.from_bytes(raw[8:10], "little")
    assert raw[:8] == b"\x93NUMPY\x01\x00"  # format version 1.0, which NPZ.jl reads
    header = ast.literal_eval(raw[10 : 10 + header_len].decode("latin1"))
    dtype = np.dtype(header["descr"])
    assert header["descr"] in ("<f4", "<f8", "|u1") and len(header["shape"]) >= 1  # no 0-d, no strings
    data = np.frombuffer(raw[10 + header_len :], dtype=dtype)
    shape = tuple(header["shape"])
    if header["fortran_order"]:
        return data.reshape(shape, order="F")
    return data.reshape(shape[::-1], order="F").transpose(range(len(shape))[::-1])


def test_npz_file_reads_in_julia_with_flux_shapes(tmp_path):
    params = _params("gruv3", "tanh", True, np.float32)
    path = tmp_path / "weights.npz"
    models.save_npz(path, params)
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            # ZipFile.jl 0.10: no data descriptors; stored members; 32-bit sizes in the central directory
            assert info.flag_bits & 0x08 == 0 and info.compress_type == zipfile.ZIP_STORED
            assert info.file_size < 0xFFFFFFFF and info.header_offset < 0xFFFFFFFF
        seen = {info.filename[: -len(".npy")]: _npzjl_read(archive.read(info)) for info in archive.infolist()}
    expected = {f"layers[1].cell.{n}": a for n, a in params.layers[0].arrays().items()}
    expected.update({f"layers[2].{n}": a for n, a in params.layers[1].arrays().items()})
    _assert_bitwise_equal({n: a for n, a in seen.items() if n in expected}, expected)
    assert bytes(seen["layers[1].kind"]) == b"gruv3" and bytes(seen["layers[2].kind"]) == b"dense"
    assert bytes(seen["format"]) == models.FORMAT.encode()


def _npzjl_member(a: np.ndarray) -> bytes:
    """One .npy member as NPZ.jl 0.4.3 `npzwritearray` writes it: version 1.0, fortran_order True,
    Julia's tuple syntax for the shape, padded to 16 bytes, then the column-major data."""
    descr = {"float32": "<f4", "float64": "<f8", "uint8": "<u1"}[a.dtype.name]
    shape = "(" + ", ".join(map(str, a.shape)) + (",)" if a.ndim == 1 else ")")
    header = f"{{'descr': '{descr}', 'fortran_order': True, 'shape': {shape}, }}"
    n = 6 + 2 + 2 + len(header)
    pad = (n + 15) // 16 * 16 - n
    if pad > 0:
        header += " " * (pad - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + a.tobytes(order="F")


def test_npz_written_by_julia_loads_with_flux_shapes(tmp_path):
    params = _params("lstm", "tanh", True, np.float64)
    path = tmp_path / "from_julia.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, a in models._npz.file_entries(params).items():
            archive.writestr(name + ".npy", _npzjl_member(a))
    _assert_bitwise_equal(models.flat_params(models.load_npz(path)), models.flat_params(params))


def test_models_package_works_without_importing_torch(tmp_path):
    """The Flux backend's process must never import torch (juliacall first, or not at all)."""
    script = (
        "import sys, numpy as np\n"
        "from fluxparity import models\n"
        "p = models.init_model('gru', 1, 2, 1, seed=0, dtype=np.float64)\n"
        f"models.save_npz({str(tmp_path / 'w.npz')!r}, p)\n"
        f"models.load_npz({str(tmp_path / 'w.npz')!r})\n"
        "models.value_and_grad(p, np.ones((1, 3), dtype=np.float64), models.abs_last_output_loss(2.0))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)


def test_npz_version_1_file_still_loads(tmp_path):
    """A file in the old layout (fluxparity-weights/1: kind, activation, cell.*, head.*), built here entry by
    entry as that format's documentation described it, loads as Chain((cell, Dense), readout="all")."""
    rng = np.random.default_rng(3)
    text = lambda s: np.frombuffer(s.encode("ascii"), dtype=np.uint8)  # noqa: E731
    arrays = {"cell.Wi": rng.standard_normal((4, 2)), "cell.Wh": rng.standard_normal((4, 4)),
              "cell.bias": rng.standard_normal(4), "head.weight": rng.standard_normal((3, 4)),
              "head.bias": rng.standard_normal(3)}
    path = tmp_path / "v1.npz"
    with open(path, "wb") as f:
        np.savez(f, format=text("fluxparity-weights/1"), kind=text("rnn"), activation=text("relu"), **arrays)
    loaded = models.load_npz(path)
    assert loaded.readout == "all" and len(loaded.layers) == 2
    assert loaded.layers[0].kind == "rnn" and loaded.layers[0].activation == "relu"
    assert loaded.layers[1].activation == "identity"
    renamed = {"layers[1].cell.Wi": arrays["cell.Wi"], "layers[1].cell.Wh": arrays["cell.Wh"],
               "layers[1].cell.bias": arrays["cell.bias"], "layers[2].weight": arrays["head.weight"],
               "layers[2].bias": arrays["head.bias"]}
    _assert_bitwise_equal(models.flat_params(loaded), renamed)


def test_npz_stores_a_stacked_chain_with_activations_and_readout(tmp_path):
    chain = models.init_chain(3, [("gru", 4), ("rnn", 2, "relu")], [(5, "sigmoid"), (2,)], seed=1,
                              dtype=np.float32, readout="all")
    models.save_npz(tmp_path / "w.npz", chain)
    loaded = models.load_npz(tmp_path / "w.npz")
    assert loaded.readout == "all"
    assert [type(layer).__name__ for layer in loaded.layers] == ["GRUParams", "RNNParams", "DenseParams", "DenseParams"]
    assert [getattr(layer, "activation", None) for layer in loaded.layers] == [None, "relu", "sigmoid", "identity"]
    _assert_bitwise_equal(models.flat_params(loaded), models.flat_params(chain))


def _stacked_chain(dtype):
    return models.init_chain(3, [("gru", 4), ("rnn", 2, "relu")], [(5, "sigmoid"), (2,)], seed=1,
                             dtype=dtype, readout="all")


def _layer_summary(chain):
    return [(type(layer).__name__, getattr(layer, "activation", None)) for layer in chain.layers], chain.readout


@pytest.mark.parametrize("np_dtype, torch_dtype", DTYPES, ids=DTYPE_IDS)
def test_a_stacked_chain_keeps_dtype_activations_and_readout_through_torch(np_dtype, torch_dtype):
    chain = _stacked_chain(np_dtype)
    module = models.build_module(chain, dtype=torch_dtype)
    via_module = models.from_module(module, dtype=np_dtype)
    via_state_dict = models.from_state_dict(module.state_dict(), dtype=np_dtype, like=chain)
    grads = {name: p.detach().clone() for name, p in module.named_parameters()}  # any tensors of the right names
    via_grads = models.gradients_to_flux(grads, chain, dtype=np_dtype)
    for back in (via_module, via_state_dict, via_grads):
        assert _layer_summary(back) == _layer_summary(chain)
        _assert_bitwise_equal(models.flat_params(back), models.flat_params(chain))


def test_gradients_of_a_lone_cell_come_back_in_its_flux_layout():
    cell = _params("lstm", "tanh", False, np.float32).layers[0]
    grads = {name: t.clone() for name, t in models.to_state_dict(cell, dtype=torch.float64).items()}
    grads["bias_hh_l0"] = None  # frozen: not read
    back = models.gradients_to_flux(grads, cell, dtype=np.float32)
    _assert_bitwise_equal(models.flat_params(back), models.flat_params(cell))


def test_a_missing_dense_gradient_is_refused():
    chain = _stacked_chain(np.float64)
    grads = dict(models.build_module(chain, dtype=torch.float64).named_parameters())
    grads["layers.3.bias"] = None
    with pytest.raises(ValueError, match=r"no gradient for layers\.3\.bias"):
        models.gradients_to_flux(grads, chain, dtype=np.float64)


@pytest.mark.parametrize("name", ["layers.x.weight", "rnn.0.weight", "layers.0"])
def test_a_state_dict_name_outside_layers_i_name_is_refused(name):
    state_dict = dict(models.to_state_dict(_stacked_chain(np.float64), dtype=torch.float64))
    state_dict[name] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected state_dict name"):
        models.from_state_dict(state_dict, dtype=np.float64, like=_stacked_chain(np.float64))


def test_a_folded_hidden_bias_keeps_the_requested_dtype():
    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 4, dtype=torch.float32)  # PyTorch's default init: bias_hh_l0 != 0, so it is added
    params = models.from_module(rnn, dtype=np.float32)
    assert params.bias.dtype == np.float32
    np.testing.assert_array_equal(params.bias, (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy())


def test_freeze_hidden_biases_names_what_it_froze():
    module = models.build_module(_stacked_chain(np.float64), dtype=torch.float64)  # bias_hh = 0 when built
    assert models.freeze_hidden_biases(module) == ["layers.0.bias_hh_l0", "layers.1.bias_hh_l0"]
    assert not module.layers[0].bias_hh_l0.requires_grad


def test_a_lone_cell_state_dict_comes_back_in_the_requested_dtype():
    cell = _params("gru", "tanh", False, np.float32).layers[0]
    back = models.from_state_dict(models.to_state_dict(cell, dtype=torch.float32), dtype=np.float32)
    _assert_bitwise_equal(models.flat_params(back), models.flat_params(cell))

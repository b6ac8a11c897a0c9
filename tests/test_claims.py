"""Claims of the project, each stated as a test that fails when the claim becomes false (issue 21: realistic
bugs that left the suite green). Every test goes through the public API (``fluxparity.testing``'s assert_*
functions and readers, ``models.load_npz``, ``compare_results``, the report's findings), not one line.

- Training parity compares the parameters after EVERY step of ``after_each`` and EVERY loss before a step.
- ``batch_first`` converts the port's input, output and last-step readout; a correct port passes either way.
- The gate-order diagnosis never reports the identity permutation (Flux's own order) as a finding.
- The weights and golden readers accept only their own format versions, not any ``fluxparity-weights/…``.
- float32 parity judges the whole first epoch, its last step too; the first divergent step is reported exactly.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from fluxparity import models
from fluxparity._npzio import NpzError
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.compare import compare_results
from fluxparity.testing import (ParityError, assert_forward_parity, assert_parity, assert_training_parity,
                                load_golden)
from fluxparity.testing._golden import golden_entries

from conftest import make_inputs, run_of, scales_of
from golden_support import make_golden

# ---------------------------------------------------------------------------------------------------
# Training parity: every step, every loss
# ---------------------------------------------------------------------------------------------------

STEPS = 4


@pytest.fixture
def every_step_golden(tmp_path):
    return make_golden(tmp_path / "g.npz", [("gru", 3)], ((2,),), steps=STEPS, every_step=True)


def module_of(golden):
    return models.build_module(golden.chain, dtype=torch.float64)


def test_the_golden_and_its_own_module_pass(every_step_golden):
    assert_training_parity(every_step_golden, module_of(every_step_golden))  # the premise of the tests below


@pytest.mark.parametrize("step", range(STEPS - 1))  # the last step is also after_last: the others are the claim
def test_training_parity_compares_the_parameters_after_every_step(every_step_golden, step):
    golden = every_step_golden
    name = "layers[1].cell.Wh"
    moved = {n: a.copy() for n, a in golden.after_each.items()}
    moved[name][step] *= 1 + 1e-6  # far beyond float64's tolerance, at one intermediate step only
    with pytest.raises(ParityError, match=re.escape(f"parameters after step {step + 1} of {name} ")):
        assert_training_parity(dataclasses.replace(golden, after_each=moved), module_of(golden))


@pytest.mark.parametrize("step", range(STEPS))
def test_training_parity_compares_every_loss(every_step_golden, step):
    golden = every_step_golden
    losses = golden.losses.copy()
    losses[step] *= 1 + 1e-6
    with pytest.raises(ParityError, match="loss before each step"):
        assert_training_parity(dataclasses.replace(golden, losses=losses), module_of(golden))


# ---------------------------------------------------------------------------------------------------
# batch_first
# ---------------------------------------------------------------------------------------------------


class BatchFirst(torch.nn.Module):
    """The module of ``models.build_module`` taking and returning batch-first tensors, as a user's port does."""

    def __init__(self, inner, readout):
        super().__init__()
        self.inner, self.readout = inner, readout

    def forward(self, x):  # (batch, len, in)
        y = self.inner(x.transpose(0, 1))  # (len, batch, out)
        return y.transpose(0, 1)  # (batch, len, out): every step, batch first


@pytest.mark.parametrize("readout", ["last", "all"])
def test_batch_first_converts_input_output_and_readout(tmp_path, readout):
    # length 5 and batch 3: a conversion done the seq-first way on batch-first tensors changes a shape
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),), readout=readout, length=5, batch=3)
    inner = models.build_module(dataclasses.replace(golden.chain, readout="all"), dtype=torch.float64)
    port = BatchFirst(inner, readout)
    assert_parity(golden, port, batch_first=True)
    with pytest.raises(ParityError):  # and the option matters: the same port read seq-first fails
        assert_parity(golden, BatchFirst(models.build_module(dataclasses.replace(golden.chain, readout="all"),
                                                             dtype=torch.float64), readout))


# ---------------------------------------------------------------------------------------------------
# Diagnosis: the identity permutation is no finding
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_slightly_wrong_weight_in_flux_order_is_no_gate_order_finding(tmp_path, kind):
    golden = make_golden(tmp_path / "g.npz", [(kind, 4)], ((2,),))
    module = module_of(golden)
    with torch.no_grad():
        module.layers[0].weight_ih_l0.mul_(1 + 1e-6)  # blocks in Flux's order, values off beyond tolerance
    with pytest.raises(ParityError) as caught:
        assert_forward_parity(golden, module, check_weights=True)
    assert "layers[1].cell.Wi" in str(caught.value)
    assert "gate order" not in str(caught.value).lower()


# ---------------------------------------------------------------------------------------------------
# Readers: only their own format versions
# ---------------------------------------------------------------------------------------------------

OTHER_VERSIONS = ["fluxparity-weights/4", "fluxparity-weights/20", "fluxparity-weights/2.1", "fluxparity-weights/"]


def _rewrite(path, entries, **changes):
    text = {k: np.frombuffer(v.encode("ascii"), np.uint8) for k, v in changes.items()}
    np.savez(path, **{**entries, **text})


@pytest.mark.parametrize("version", OTHER_VERSIONS)
def test_the_weights_reader_refuses_another_format_version(tmp_path, version):
    chain = models.init_chain(1, [("rnn", 2, "tanh")], [(1,)], seed=0, dtype=np.float64)
    models.save_npz(tmp_path / "w.npz", chain)
    with np.load(tmp_path / "w.npz") as npz:
        entries = dict(npz)
    _rewrite(tmp_path / "other.npz", entries, format=version)
    with pytest.raises(NpzError, match="format"):
        models.load_npz(tmp_path / "other.npz")


@pytest.mark.parametrize("version", OTHER_VERSIONS)
def test_the_golden_reader_refuses_another_weights_format_version(tmp_path, version):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 2)], ((1,),))
    entries = golden_entries(golden)
    _rewrite(tmp_path / "other.npz", entries, format=version)
    with pytest.raises(NpzError, match="format"):
        load_golden(tmp_path / "other.npz")


# ---------------------------------------------------------------------------------------------------
# compare: float32's first epoch, the first divergent step
# ---------------------------------------------------------------------------------------------------


def _with_step_losses(result, index, delta):
    losses = np.array(result.step_losses, dtype=np.float64)
    losses[index:] += delta  # from `index` on, as trajectories that separate
    return dataclasses.replace(result, step_losses=losses)


def test_float32_parity_judges_the_last_step_of_the_first_epoch():
    data, initial = make_inputs(20, seed=0)
    b = ReferenceBackend().train(run_of(data, initial, "float32", epochs=2))
    n = len(data.train_labels)
    a = dataclasses.replace(b, step_losses=np.array(b.step_losses, dtype=np.float64))
    a.step_losses[n - 1] += 1.0  # the first epoch's last step only: far beyond 1e-4 of any label
    parity = compare_results("float32", {"a": a, "b": b}, scales_of(data, 2, "float32"))
    assert [c.quantity for c in parity.failed()] == ["step_losses[epoch 1]"]
    check = parity.failed()[0]
    assert check.first_divergent_step == n - 1


@pytest.mark.parametrize("index", [0, 1, 7, 39])
def test_the_first_divergent_step_is_exact_in_the_check_and_the_findings(index):
    from fluxparity.report._tables import findings

    data, initial = make_inputs(20, seed=0)
    config = run_of(data, initial, "float32", epochs=2)
    b = ReferenceBackend().train(config)
    a = _with_step_losses(b, index, 1.0)
    parity = compare_results("float32", {"a": a, "b": b}, scales_of(data, 2, "float32"))
    steps = next(c for c in parity.checks if c.quantity == "step_losses")
    assert steps.first_divergent_step == index
    run = type("Run", (), {"parity": parity, "config": config, "results": {"a": a, "b": b}})()
    n = len(data.train_labels)
    text = "\n".join(findings(run, data))
    assert f"separate at step {index} (epoch {index // n + 1}, batch {index % n})" in text

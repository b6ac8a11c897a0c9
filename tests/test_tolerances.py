"""Each tolerance of fluxparity.compare pinned from both sides.

For every constant: an honest difference (two correct implementations) sits inside it with a margin
written down, and a known-wrong implementation falls outside it — outside by less than 10x for
RTOL_FLOAT64 and RTOL_FLOAT32 and less than 4x for OUTCOME_STEPS, so loosening any of them (1e-9 -> 1e-8,
1e-4 -> 1e-3, 5 -> 20 steps) lets the wrong one pass and fails a test here. The expected values are stated literally, from docs/parity.md;
nothing here imports a tolerance. Margins measured with these very runs (docs/parity.md, "Margins the
tests pin").
"""

from dataclasses import replace

import numpy as np

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.compare import adam_jitter, compare_results

from conftest import make_inputs, run_of, scales_of

RTOL_FLOAT64_DOC = 1e-9  # docs/parity.md: "float64: the whole trajectory must agree (rtol 1e-9)"
RTOL_FLOAT32_DOC = 1e-4  # docs/parity.md: float32 first epoch "at rtol = 1e-4, label-scaled"
OUTCOME_STEPS_DOC = 5  # docs/parity.md: "less than 5 steps of that jitter"


def scaled_step_difference(a, b, data, steps=None):
    """max |a - b| / (|label| + |b|) over the step losses: the rule of docs/parity.md, computed here."""
    labels = np.tile(np.abs(data.train_labels), len(a.epoch_train_loss))
    diff = np.abs(a.step_losses - b.step_losses) / (labels + np.abs(b.step_losses))
    return diff[: steps or len(diff)].max()


def honest_runs(samples: int, seed: int, dtype: str, epochs: int, path: str):
    """``(data, config, torch.optim.Adam run, reference run)``: two correct implementations of one run."""
    data, initial = make_inputs(samples, seed=seed)
    config = dict(dtype=dtype, epochs=epochs)
    torch_run = TorchBackend("torch", path=path).train(run_of(data, initial, **config))
    return data, config, torch_run, ReferenceBackend().train(run_of(data, initial, **config))


def failed(parity):
    return sorted({c.quantity for c in parity.failed()})


# float64 ---------------------------------------------------------------------------------------------

def test_float64_torch_adam_sits_far_inside_rtol_1e9():
    # Measured: 5.4e-15 label-scaled over 400 steps (identity, seed 0): 1e-9 is ~2e5 times that.
    data, config, torch_run, reference = honest_runs(100, 0, "float64", 4, "plain")
    assert scaled_step_difference(torch_run, reference, data) < RTOL_FLOAT64_DOC / 1e4
    assert compare_results("float64", {"torch": torch_run, "reference": reference}, scales_of(data, epochs=len(next(iter(({"torch": torch_run, "reference": reference}).values())).epoch_train_loss), dtype="float64")).verdict == "pass"


def test_float64_an_lr_wrong_by_1e9_relative_breaks_rtol_1e9():
    # A learning rate off by 1 part in 1e9 moves the float64 trajectory by 2.2e-9 of a label (2.2x the
    # tolerance): outside 1e-9, inside 1e-8, so a tolerance loosened 10x would pass this wrong run.
    data, initial = make_inputs(100, seed=0)
    right = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float64", epochs=4)))
    wrong = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float64", epochs=4, lr=1e-3 * (1 + 1e-9))))
    assert RTOL_FLOAT64_DOC < scaled_step_difference(wrong, right, data) < RTOL_FLOAT64_DOC * 10
    parity = compare_results("float64", {"wrong": wrong, "reference": right}, scales_of(data, epochs=len(next(iter(({"wrong": wrong, "reference": right}).values())).epoch_train_loss), dtype="float64"))
    assert parity.verdict == "fail" and "step_losses" in failed(parity)


# float32, first epoch --------------------------------------------------------------------------------

def test_float32_torch_adam_epoch_one_sits_inside_rtol_1e4():
    # Measured: 3.0e-7 label-scaled in epoch 1 (torch.optim.Adam vs Optimisers.jl arithmetic, 200
    # samples, seed 0); 1e-4 is ~330x that. (docs/parity.md: worst over 8 seeds of 1000 samples, 7.6e-6.)
    data, config, torch_run, reference = honest_runs(200, 0, "float32", 2, "plain")
    assert scaled_step_difference(torch_run, reference, data, steps=200) < RTOL_FLOAT32_DOC / 100
    assert compare_results("float32", {"torch": torch_run, "reference": reference}, scales_of(data, epochs=len(next(iter(({"torch": torch_run, "reference": reference}).values())).epoch_train_loss), dtype="float32")).verdict == "pass"


def test_float32_an_lr_wrong_by_a_tenth_of_a_percent_breaks_rtol_1e4():
    # lr 1.001e-3 instead of 1e-3: 3.0x the tolerance in epoch 1 — outside 1e-4, inside 1e-3, so a
    # tolerance loosened to 1e-3 would pass this wrong run.
    data, initial = make_inputs(200, seed=0)
    right = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float32", epochs=2)))
    wrong = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float32", epochs=2, lr=1.001e-3)))
    assert RTOL_FLOAT32_DOC < scaled_step_difference(wrong, right, data, steps=200) < RTOL_FLOAT32_DOC * 10
    parity = compare_results("float32", {"wrong": wrong, "reference": right}, scales_of(data, epochs=len(next(iter(({"wrong": wrong, "reference": right}).values())).epoch_train_loss), dtype="float32"))
    assert parity.verdict == "fail" and failed(parity) == ["step_losses[epoch 1]"]


# float32, outcome ------------------------------------------------------------------------------------

def outcome_steps(a, b, data):
    """The probe difference in Adam steps of jitter (docs/parity.md), computed here."""
    return (np.abs(a.probe_predictions - b.probe_predictions) / adam_jitter(data.probes, 1e-3)).max()


def test_float32_torch_adam_outcome_sits_inside_5_jitter_steps():
    # Measured: 0.72 steps (300 samples x 50 epochs, seed 1, torch.optim.Adam): 5 is ~7x that.
    # (docs/parity.md: worst over seeds 0-3 of the 1000 x 50 tutorial, 2.1 steps.)
    data, config, torch_run, reference = honest_runs(300, 1, "float32", 50, "fast")
    assert outcome_steps(torch_run, reference, data) < OUTCOME_STEPS_DOC / 5
    assert compare_results("float32", {"torch": torch_run, "reference": reference}, scales_of(data, epochs=len(next(iter(({"torch": torch_run, "reference": reference}).values())).epoch_train_loss), dtype="float32")).verdict == "pass"


def test_float32_an_unconverged_outcome_breaks_5_jitter_steps():
    # A port that reports its outcome after 14 of 30 epochs (its predictions still moving): 8.7 steps
    # of jitter from the converged run — outside 5, inside 20, so loosening to 20 would pass it.
    data, initial = make_inputs(200, seed=0)
    right = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float32", epochs=30)))
    early = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float32", epochs=14)))
    wrong = replace(right, probe_predictions=early.probe_predictions)
    assert OUTCOME_STEPS_DOC < outcome_steps(wrong, right, data) < 4 * OUTCOME_STEPS_DOC
    parity = compare_results("float32", {"wrong": wrong, "reference": right}, scales_of(data, epochs=len(next(iter(({"wrong": wrong, "reference": right}).values())).epoch_train_loss), dtype="float32"))
    assert parity.verdict == "fail" and failed(parity) == ["probe_predictions"]

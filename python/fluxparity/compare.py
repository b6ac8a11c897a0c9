"""Pairwise parity checks between backend results. Knows nothing about which framework made a result.

Every check compares two arrays element by element with the rule

    |a_i - b_i| <= atol_i + rtol * |b_i|,     atol_i = rtol * scale_i  (or an outcome tolerance)

where ``scale_i`` is the element's natural magnitude: a loss ``|y_hat - y|`` and a prediction ``y_hat``
are differences of / estimates of numbers of size ``|y|``, so their rounding error is relative to
``|y|``, not to the (possibly tiny) loss itself. Parameters scale with the largest parameter.
Where and why the tolerances are what they are: docs/parity.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Mapping, Optional

import numpy as np

from .backends.base import RunResult
from .models import flat_params

# float64: an autograd and an analytic implementation agree to ~1e-14 (label-scaled) after 50,000 steps (see
# docs/parity.md); 1e-9 leaves five orders of margin and still catches any real difference in the math.
RTOL_FLOAT64 = 1e-9
# float32 trajectory (first epoch, and the step where trajectories separate): measured worst
# label-scaled step-loss difference in epoch 1 was 7.6e-6 (torch.optim.Adam vs Optimisers.jl arithmetic,
# 8 seeds); 1e-4 is ~13x that and ~840 float32 ulps.
RTOL_FLOAT32 = 1e-4
# float32 outcome, judged after trajectories have separated: where a float32 trajectory ends is chance
# within the jitter of Adam's last steps, so two ports agree on the outcome when their predictions differ
# by less than OUTCOME_STEPS steps' worth of jitter (see adam_jitter). Measured worst: 2.1 steps (seeds 0-3,
# benchmarks/measure_tolerances.py); the 64-seed sweep's one excess is a run that had not converged.
OUTCOME_STEPS = 5
# The verdict of a run (or an experiment) in which no check was judged: fewer than two backends ran.
NOTHING_COMPARED = "nothing compared"


@dataclass(frozen=True)
class Scales:
    """What the checks of one run scale by (the run description computes them: ``fluxparity.experiment.scales_for``).

    ``step``: each step's natural magnitude ``(total steps,)`` (the tutorial: ``|label|``); ``train``/``test``:
    a whole set's (the tutorial: ``sum |label|``); ``probe``: each prediction's ``(n_predictions,)``;
    ``steps_per_epoch``: where epoch 1 ends. ``outcome_test``/``outcome_probe``: the float32 outcome
    tolerances (Adam's jitter) when they are derived for the run, else None; ``outcome_judged``: whether
    they are part of the verdict; ``outcome_why``: why not, when they are not.
    """

    step: np.ndarray
    train: float
    test: float
    probe: np.ndarray
    steps_per_epoch: int
    outcome_test: Optional[float] = None
    outcome_probe: Optional[np.ndarray] = None
    outcome_judged: bool = False
    outcome_why: str = ""


@dataclass
class Check:
    quantity: str
    a: str
    b: str
    max_abs: float
    max_rel: float  # max |a - b| / max(|a|, |b|) over elements (0/0 counts as 0)
    first_divergent_step: Optional[int]  # first element index breaking the rule; None if none does
    worst_index: int  # element with the largest |a - b| / allowed
    tolerance_used: float  # max |a - b| / allowed: 0.06 means the worst element used 6% of its tolerance
    rtol: float
    atol: float  # the largest atol_i used
    passed: bool
    judged: bool  # False: reported for information, not part of the verdict
    rule: str  # the tolerance rule in words

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Parity:
    verdict: str  # "pass" | "fail" | NOTHING_COMPARED
    checks: list[Check]

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "checks": [c.to_dict() for c in self.checks]}

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.judged and not c.passed]


def compare_arrays(quantity: str, a_name: str, a, b_name: str, b, *, rtol: float, scale=None,
                   atol=None, judged: bool = True, rule: str = "") -> Check:
    """One check. ``atol`` defaults to ``rtol * scale`` (per element); ``scale`` defaults to 0."""
    a, b = np.atleast_1d(np.asarray(a, dtype=np.float64)), np.atleast_1d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"{quantity}: {a_name} has shape {a.shape} but {b_name} has {b.shape}")
    if atol is None:
        atol = rtol * (np.zeros_like(a) if scale is None else np.broadcast_to(np.abs(scale), a.shape))
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), a.shape)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf of a diverged run is NaN: counted as bad
        diff = np.abs(a - b)
        allowed = atol + rtol * np.abs(b)
        bad = ~(diff <= allowed)  # NaN counts as bad
        denom = np.maximum(np.abs(a), np.abs(b))
        rel = np.divide(diff, denom, out=np.zeros_like(diff), where=denom > 0)
        ratio = np.divide(diff, allowed, out=np.where(diff > 0, np.inf, 0.0), where=allowed > 0)
    ratio[np.isnan(ratio)] = np.inf  # a NaN uses all of any tolerance
    return Check(
        quantity=quantity, a=a_name, b=b_name,
        max_abs=float(diff.max()) if diff.size else 0.0,  # NaN if any element is NaN: said, not hidden
        max_rel=float(rel.max()) if rel.size else 0.0,
        first_divergent_step=int(np.argmax(bad)) if bad.any() else None,
        worst_index=int(np.argmax(ratio)) if ratio.size else 0,
        tolerance_used=float(ratio.max()) if ratio.size else 0.0,
        rtol=rtol, atol=float(atol.max()) if atol.size else 0.0,
        passed=not bad.any(), judged=judged, rule=rule,
    )


def adam_jitter(sequences, lr: float) -> np.ndarray:
    """How far one Adam step can move each sequence's prediction near the learned solution, ``(n,)``.

    Adam's step moves each parameter by about ``lr`` whatever the gradient's size. At the solution
    ``Wi = Wh = 1, b = 0`` the identity RNN predicts ``sum_t Wh^(T-t) (Wi x_t + b)``, whose sensitivities are
    ``sum |x_t|`` (Wi), ``sum (T-t)|x_t|`` (Wh) and ``T`` (b); one step moves the prediction by at most
    ``lr`` times their sum.
    """
    out = []
    for x in sequences:
        x = np.abs(np.asarray(x, dtype=np.float64))
        lags = np.arange(len(x) - 1, -1, -1)
        out.append(lr * (x.sum() + (lags * x).sum() + len(x)))
    return np.array(out)


def outcome_not_judged_because(optimizer: str) -> str:
    """Why the float32 outcome is not judged for a run trained with ``optimizer`` (a rule's name) other than Adam."""
    return (f"not judged: the float32 outcome tolerance is {OUTCOME_STEPS} steps of Adam's jitter, and this run "
            f"trains with {optimizer}, for which no outcome tolerance is derived")


def _pair_checks(dtype: str, a_name: str, a: RunResult, b_name: str, b: RunResult, scales: Scales) -> list[Check]:
    n_train = scales.steps_per_epoch
    step_scale = scales.step
    sum_train, sum_test = scales.train, scales.test
    probe_scale = np.abs(scales.probe)
    final_a = np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in flat_params(a.final_params).values()])
    final_b = np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in flat_params(b.final_params).values()])
    param_scale = max(np.abs(final_a).max(), np.abs(final_b).max())

    def check(quantity, va, vb, rtol, scale=None, atol=None, judged=True, rule=""):
        return compare_arrays(quantity, a_name, va, b_name, vb, rtol=rtol, scale=scale, atol=atol,
                              judged=judged, rule=rule)

    if dtype == "float64":
        r = RTOL_FLOAT64
        loss_rule = f"|a-b| <= {r:g}*(|label| + |b|)"
        return [
            check("step_losses", a.step_losses, b.step_losses, r, step_scale, rule=loss_rule),
            check("train_loss_before", a.train_loss_before, b.train_loss_before, r, sum_train, rule=loss_rule),
            check("test_loss_before", a.test_loss_before, b.test_loss_before, r, sum_test, rule=loss_rule),
            check("epoch_train_loss", a.epoch_train_loss, b.epoch_train_loss, r, sum_train, rule=loss_rule),
            check("epoch_test_loss", a.epoch_test_loss, b.epoch_test_loss, r, sum_test, rule=loss_rule),
            check("test_loss_after", a.test_loss_after, b.test_loss_after, r, sum_test, rule=loss_rule),
            check("probe_predictions", a.probe_predictions, b.probe_predictions, r, probe_scale, rule=loss_rule),
            check("final_params", final_a, final_b, r, param_scale, rule=f"|a-b| <= {r:g}*(max|param| + |b|)"),
        ]
    r = RTOL_FLOAT32
    loss_rule = f"|a-b| <= {r:g}*(|label| + |b|)"
    if scales.outcome_test is None:  # no outcome tolerance derived for this run: reported, never judged by it
        why = scales.outcome_why
        outcome = [
            check("test_loss_after", a.test_loss_after, b.test_loss_after, 0.0, atol=0.0, judged=False,
                  rule=f"outcome: {why}"),
            check("probe_predictions", a.probe_predictions, b.probe_predictions, 0.0, atol=0.0, judged=False,
                  rule=f"outcome: {why}"),
        ]
    else:
        outcome = [
            check("test_loss_after", a.test_loss_after, b.test_loss_after, 0.0, judged=scales.outcome_judged,
                  atol=scales.outcome_test,
                  rule=f"outcome: |a-b| <= {OUTCOME_STEPS} Adam steps of jitter, summed over the test set"),
            check("probe_predictions", a.probe_predictions, b.probe_predictions, 0.0, judged=scales.outcome_judged,
                  atol=scales.outcome_probe,
                  rule=f"outcome: |a-b| <= {OUTCOME_STEPS} Adam steps of jitter per probe"),
        ]
    return [
        check("step_losses[epoch 1]", a.step_losses[:n_train], b.step_losses[:n_train], r, step_scale[:n_train],
              rule=loss_rule),
        check("train_loss_before", a.train_loss_before, b.train_loss_before, r, sum_train, rule=loss_rule),
        check("test_loss_before", a.test_loss_before, b.test_loss_before, r, sum_test, rule=loss_rule),
        *outcome,
        # Reported, not judged: float32 trajectories separate (docs/parity.md); where they do is the finding.
        check("step_losses", a.step_losses, b.step_losses, r, step_scale, judged=False, rule=loss_rule),
        check("epoch_test_loss", a.epoch_test_loss, b.epoch_test_loss, r, sum_test, judged=False, rule=loss_rule),
        check("final_params", final_a, final_b, r, param_scale, judged=False,
              rule=f"|a-b| <= {r:g}*(max|param| + |b|)"),
    ]


def compare_results(dtype: str, results: Mapping[str, RunResult], scales: Scales) -> Parity:
    """Every pair of backends, every quantity. The verdict fails if any judged check fails.

    ``scales``: each quantity's natural magnitude and the float32 outcome tolerances (:class:`Scales`): the
    outcome checks are judged only when ``scales.outcome_judged`` (their tolerance, ``adam_jitter``, is
    derived for the tutorial's one-unit RNN trained with Adam); otherwise they are reported, not judged.
    """
    checks: list[Check] = []
    for (a_name, a), (b_name, b) in combinations(results.items(), 2):
        checks.extend(_pair_checks(dtype, a_name, a, b_name, b, scales))
    if not any(c.judged for c in checks):
        return Parity(NOTHING_COMPARED, checks)  # one backend (or none): no check ran, so no pass either
    verdict = "fail" if any(c.judged and not c.passed for c in checks) else "pass"
    return Parity(verdict, checks)


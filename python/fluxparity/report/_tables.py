"""The content shared by the terminal and Markdown reports, as (title, header, rows) tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models import flat_params
from ..optim import from_dict as rule_from_dict

EPOCHS_SHOWN = (1, 2, 3, 5, 10, 20, 30, 40, 50)
SUMMARY_PREDICTIONS = 4  # predictions shown in the one-screen summary (report.md has them all)
NOT_CONVERGED = 0.01  # test loss after / before above this: the identity model has not learned the sum yet


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def _num(x: float) -> str:
    if x is None or not np.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
        return f"{x:.4e}"
    return f"{x:.6g}" if abs(x) >= 1000 else f"{x:.6f}".rstrip("0").rstrip(".") if "." in f"{x:.6f}" else f"{x:.6f}"


def _sci(x: float) -> str:
    return f"{x:.2e}"


def prediction_names(data) -> list[str]:
    """A name per predicted number (``RunResult.probe_predictions``' order): the probe's, then the output."""
    names = []
    for name, y in zip(data.probe_names, data.probe_y):
        if y.size == 1:
            names.append(name)
        elif y.ndim == 1:
            names += [f"{name}[{j}]" for j in range(y.size)]
        else:
            names += [f"{name}[t{t},{j}]" for t in range(y.shape[0]) for j in range(y.shape[1])]
    return names


def prediction_targets(data) -> np.ndarray:
    return np.concatenate([y.ravel() for y in data.probe_y]) if data.probe_y else np.zeros(0)


def _sample_loss(run) -> str:
    return "|error|" if run.config.loss == "abs_sum" else f"{run.config.loss} loss"


def _is_tutorial_tanh(run, data) -> bool:
    return data.source == "sum" and run.config.fits_tutorial_kernels and run.config.model.layers[0].activation == "tanh"


def run_tables(run, data) -> list[Table]:
    names = list(run.results)
    res = run.results
    n_test = len(data.test_x)
    tables = [Table(
        "Losses (the tutorial's numbers)",
        ["", *names],
        [
            ["train loss before", *(_num(res[n].train_loss_before) for n in names)],
            ["test loss before", *(_num(res[n].test_loss_before) for n in names)],
            ["test loss after", *(_num(res[n].test_loss_after) for n in names)],
            [f"mean {_sample_loss(run)} per test sample", *(_num(res[n].test_loss_after / n_test) for n in names)],
            ["seconds", *(f"{res[n].seconds:.2f}" for n in names)],
        ],
    )]
    epochs = len(next(iter(res.values())).epoch_test_loss)
    shown = [e for e in EPOCHS_SHOWN if e <= epochs] or [epochs]
    if shown[-1] != epochs:
        shown.append(epochs)
    tables.append(Table("Test loss after each epoch", ["epoch", *names],
                        [[str(e), *(_num(res[n].epoch_test_loss[e - 1]) for n in names)] for e in shown]))
    tables.append(Table(
        "Probe predictions after training",
        ["probe", "true sum" if data.source == "sum" else "target", *names],
        [[p, f"{y:g}", *(f"{res[n].probe_predictions[i]:.4f}" for n in names)]
         for i, (p, y) in enumerate(zip(prediction_names(data), prediction_targets(data)))],
    ))
    initial = flat_params(run.initial_params)
    finals = {n: flat_params(res[n].final_params) for n in names}
    if all(a.size == 1 for a in initial.values()):
        tables.append(Table("Final parameters", ["param", "initial", *names],
                            [[k, f"{float(a.ravel()[0]):.6g}", *(f"{float(finals[n][k].ravel()[0]):.8g}" for n in names)]
                             for k, a in initial.items()]))
    else:  # many numbers per array: their size (Frobenius norm) before and after, per backend
        tables.append(Table("Final parameters (Frobenius norm)", ["param", "shape", "initial", *names],
                            [[k, "x".join(map(str, a.shape)), f"{np.linalg.norm(a):.6g}",
                              *(f"{np.linalg.norm(finals[n][k]):.8g}" for n in names)] for k, a in initial.items()]))
    tables.append(Table(
        f"Parity checks: {run.parity.verdict.upper()}",
        ["pair", "quantity", "max abs", "max rel", "first divergent", "result", "rule"],
        [[f"{c.a} vs {c.b}", c.quantity, _sci(c.max_abs), _sci(c.max_rel),
          "-" if c.first_divergent_step is None else str(c.first_divergent_step),
          ("pass" if c.passed else "FAIL") if c.judged else ("info" if c.passed else "info: differs"), c.rule]
         for c in run.parity.checks],
    ))
    return tables


def training_words(settings: dict, lr_format: str) -> str:
    """How the runs were optimised: ``lr_format`` with the tutorial Adam's lr, or the rule given instead."""
    if settings.get("lr") is None and settings.get("optimizer"):
        return f"optimizer {rule_from_dict(settings['optimizer'])}"
    return lr_format.format(settings["lr"])


def findings(run, data, separation: bool = True) -> list[str]:
    """Plain sentences a reader needs: where float32 trajectories separated, whether each model learned."""
    lines = []
    for c in run.parity.checks:
        if separation and not c.judged and c.quantity == "step_losses" and c.first_divergent_step is not None:
            n = run.config.batches.steps_per_epoch
            step = c.first_divergent_step
            lines.append(f"{c.a} and {c.b}: step losses separate at step {step} (epoch {step // n + 1}, batch "
                         f"{step % n}) beyond {c.rule}; judged on epoch 1 and on the outcome instead.")
    if run.config.dtype == "float32" and not run.config.is_adam and len(run.results) > 1:
        lines.append(f"float32 outcome (test loss after, probe predictions) reported, not judged: its tolerance is "
                     f"Adam's step jitter, and this run trains with {run.config.rule}; float32 is judged on epoch 1 "
                     "and the losses before training.")
    for c in run.parity.failed():
        lines.append(f"FAIL {c.a} vs {c.b}: {c.quantity}[{c.worst_index}]: max abs {c.max_abs:.3e} breaks {c.rule}.")
        if c.quantity == "step_losses":
            lines.append(growth_diagnosis(run.results[c.a], run.results[c.b], run.config))
    labels = prediction_targets(data)
    res = run.results
    unconverged = [n for n, r in res.items() if r.test_loss_after > NOT_CONVERGED * r.test_loss_before]
    judged_outcome = any(c.judged for c in run.parity.checks if c.quantity == "probe_predictions")
    if judged_outcome and not _is_tutorial_tanh(run, data) and run.config.dtype == "float32" and unconverged:
        lines.append(f"{', '.join(unconverged)}: not converged on this seed (test loss after > {NOT_CONVERGED:.0%} of "
                     "before); the float32 outcome tolerance is derived at the learned solution, so an outcome "
                     "FAIL here says the runs are still moving apart, not that the port is wrong: read float64.")
    by = lambda values: ", ".join(f"{v} ({n})" for n, v in zip(res, values))  # noqa: E731
    if not _is_tutorial_tanh(run, data):
        lines.append("probe predictions within " + by(f"{np.abs(r.probe_predictions - labels).max():.3g}"
                                                      for r in res.values())
                     + (" of the true sums" if data.source == "sum" else " of their targets")
                     + f"; mean {_sample_loss(run)} per test sample "
                     + by(f"{r.test_loss_after / len(data.test_x):.3g}" for r in res.values()) + ".")
    else:
        expected = float(np.sum(data.test_labels) - len(data.test_labels))
        lines.append("tanh saturates: probe predictions within " + by(f"{np.abs(r.probe_predictions - 1.0).max():.2g}"
                                                                       for r in res.values())
                     + " of 1.0; test loss " + by(f"{r.test_loss_after:.6g}" for r in res.values())
                     + f" vs sum(test labels) - N = {expected:.6g}.")
    return lines


def growth_diagnosis(a, b, run) -> str:
    """How a step-loss difference grew: from the first steps (a difference in the math) or gradually
    (rounding amplified by the training dynamics; docs/parity.md). ``run``: the run's description."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # a diverged run: said just below
        scaled = np.abs(a.step_losses - b.step_losses) / np.abs(run.scales()["step"])
    non_finite = np.flatnonzero(~np.isfinite(scaled))
    if non_finite.size:
        return f"the step losses stop being finite at step {non_finite[0]}: a run diverged; look at the math first."
    marks = [f"{level:.0e} at step {np.flatnonzero(scaled > level)[0]}"
             for level in (1e-13, 1e-11, 1e-9, 1e-7, 1e-5) if (scaled > level).any()]
    first = int(np.flatnonzero(scaled > 1e-13)[0]) if (scaled > 1e-13).any() else 0
    early = max(1, run.batches.steps_per_epoch // 10)  # within the first tenth of epoch 1
    kind = ("it is there from the first steps: look for a difference in the math" if first < early else
            "it grew gradually from rounding-level differences: the dynamics amplify rounding, which is not a "
            "porting error (docs/parity.md, 'Where float64 stops agreeing')")
    return f"label-scaled step-loss difference first exceeds {', '.join(marks)}; {kind}."


def _short(label: str) -> str:
    return label.replace("float32", "f32").replace("float64", "f64")


def summary_tables(experiment) -> list[Table]:
    """One screen for the whole experiment: a row per (run, backend) in each table."""
    data = experiment.data
    first = experiment.runs[0]
    epochs = len(next(iter(first.results.values())).epoch_test_loss)
    shown = [e for e in EPOCHS_SHOWN if e <= epochs]
    if not shown or shown[-1] != epochs:
        shown.append(epochs)
    numbers, curves = [], []
    for run in experiment.runs:
        for i, (name, r) in enumerate(run.results.items()):
            label = _short(run.config.label) if i == 0 else ""
            numbers.append([label, name, _num(r.train_loss_before), _num(r.test_loss_before), _num(r.test_loss_after),
                            *(f"{p:.4f}" for p in r.probe_predictions[:SUMMARY_PREDICTIONS]), f"{r.seconds:.2f}"])
            curves.append([label, name, *(_num(r.epoch_test_loss[e - 1]) for e in shown)])
    probes = [f"{p}={y:g}" for p, y in zip(prediction_names(data), prediction_targets(data))][:SUMMARY_PREDICTIONS]
    return [
        Table("Loss sums before/after training, probe predictions (probe=target), seconds",
              ["run", "backend", "train before", "test before", "test after", *probes, "s"], numbers),
        Table("Test loss sum after each epoch", ["run", "backend", *(f"ep {e}" for e in shown)], curves),
    ]


def verdict_lines(run, data) -> list[str]:
    """The verdict of one run in a few lines: the worst judged check of each pair, where trajectories separate."""
    lines = [f"{_short(run.config.label)}: {run.parity.verdict.upper()}"]
    pairs = dict.fromkeys((c.a, c.b) for c in run.parity.checks)
    for a, b in pairs:
        checks = [c for c in run.parity.checks if (c.a, c.b) == (a, b)]
        judged = [c for c in checks if c.judged]
        worst = max(judged, key=lambda c: (not c.passed, c.tolerance_used))
        failed = [c.quantity for c in judged if not c.passed]
        text = (f"  {a} vs {b}: {len(judged) - len(failed)}/{len(judged)} judged checks pass"
                + (f" (FAILED: {', '.join(failed)})" if failed else "")
                + f"; closest to its tolerance: {worst.quantity}, max abs {worst.max_abs:.2e} = "
                  f"{worst.tolerance_used:.2g}x of ({worst.rule})")
        lines.append(text)
        steps = next((c for c in checks if c.quantity == "step_losses"), None)
        if steps is not None and not steps.judged and steps.first_divergent_step is not None:
            n = run.config.batches.steps_per_epoch
            s = steps.first_divergent_step
            lines.append(f"    trajectories separate at step {s} (epoch {s // n + 1}); reported, not judged in "
                         f"{run.config.dtype}")
    return lines

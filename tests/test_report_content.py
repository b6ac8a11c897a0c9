"""What the report's tables and sentences say, stated from how each experiment was built (issue 21 item 4).

The numbers in a table must be the run's numbers (read back from the run's results or from report.json), the
sentences must name what the comparison found and nothing it did not: where a trajectory separates, which
check is closest to its tolerance, whether an outcome is judged, how a difference grew. Small runs of the NumPy
reference (no numba) against itself, a few steps each."""

import dataclasses
import io
import json
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from report_files_support import SEPARATE_AT, pinned_experiment

from fluxparity.backends.reference import ReferenceBackend
from fluxparity.data import load_npz_data
from fluxparity.experiment import run_experiment, shorthand_runs, train_and_compare
from fluxparity.models import parse_flux
from fluxparity.optim import rule as make_rule
from fluxparity.report import format_experiment, write_reports
from fluxparity.report._json import experiment_to_dict
from fluxparity.report._markdown import experiment_markdown
from fluxparity.report._tables import _num, findings, growth_diagnosis, run_tables, summary_tables, verdict_lines
from fluxparity.run import RunSpec

N_TRAIN = 12  # pinned_experiment: 12 training sequences, 24 test sequences, 2 epochs, seed 3


def two_references():
    return {"reference": ReferenceBackend(jit=False), "again": ReferenceBackend(jit=False)}


def file_experiment(tmp_path, readout="last", epochs=4, dtypes=("float32", "float64")):
    """An RNN(2 => 3, tanh) + Dense(3 => 2) on 6 random samples of 3 steps from a .npz file, loss mse."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=(6, 3, 2) if readout == "all" else (6, 2))
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.normal(size=(6, 3, 2)), y=y)
    data = load_npz_data(path)
    model = parse_flux("Chain(RNN(2 => 3, tanh), Dense(3 => 2))").init(seed=0, readout=readout)
    runs = [RunSpec(model, data, loss="mse", dtype=d, epochs=epochs, label=f"rnn/{d}") for d in dtypes]
    return train_and_compare(runs, two_references(), workers=1), path


def close(cell: str, value: float) -> bool:
    """A table cell shows ``value``: 6 decimals (or 5 significant digits in scientific notation)."""
    return float(cell) == pytest.approx(value, rel=1e-4, abs=5e-7)


def words(line: str) -> str:
    return " ".join(line.split())


# --- numbers ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x, text", [
    (0.5, "0.5"), (0.001, "0.001"), (1e-5, "1.0000e-05"), (999999.0, "999999"), (1e6, "1.0000e+06"),
    (2.5e7, "2.5000e+07"), (1234.5678, "1234.57"), (0.0, "0"), (-0.25, "-0.25"), (float("nan"), "nan"),
    (float("inf"), "inf"),
])
def test_a_loss_is_shown_with_six_decimals_between_a_thousandth_and_a_million_else_in_scientific_notation(x, text):
    assert _num(x) == text


def test_the_summary_shows_each_runs_own_numbers_and_every_epoch_up_to_the_last(tmp_path):
    for experiment, epochs in ((pinned_experiment(), 2), (file_experiment(tmp_path)[0], 4)):
        numbers, curves = summary_tables(experiment)
        assert curves.header == ["run", "backend", *(f"ep {e}" for e in range(1, epochs + 1))]
        assert numbers.header[:5] == ["run", "backend", "train before", "test before", "test after"]
        assert numbers.header[-1] == "s"
        rows, curve_rows = iter(numbers.rows), iter(curves.rows)
        for run in experiment.runs:
            for i, r in enumerate(run.results.values()):
                row, curve = next(rows), next(curve_rows)
                label = run.config.label.replace("float", "f") if i == 0 else ""
                assert row[0] == curve[0] == label  # the run's name on its first backend's row only
                assert all(close(c, v) for c, v in zip(row[2:5], (r.train_loss_before, r.test_loss_before,
                                                                   r.test_loss_after)))
                assert [float(c) for c in row[5:-1]] == pytest.approx(r.probe_predictions[:4], abs=5e-5)  # 4 decimals
                assert [float(c) for c in curve[2:]] == pytest.approx(list(r.epoch_test_loss), rel=1e-4, abs=5e-7)
        # the terminal shows those tables, titled, header and cells
        lines = format_experiment(experiment).splitlines()
        for table in (numbers, curves):
            at = lines.index(table.title)
            assert words(lines[at + 1]) == words(" ".join(table.header))
            for k, row in enumerate(table.rows):
                assert words(lines[at + 3 + k]) == words(" ".join(row))


# --- one run's tables ---------------------------------------------------------------------------------------

def test_a_file_runs_tables_name_its_targets_each_output_and_the_parameters_norms(tmp_path):
    experiment, path = file_experiment(tmp_path)
    report = json.loads(json.dumps(experiment_to_dict(experiment)))  # report.json's numbers
    for run, saved in zip(experiment.runs, report["runs"]):
        losses, curve, probes, params, _ = run_tables(run, experiment.data)
        assert [row[0] for row in curve.rows] == ["1", "2", "3", "4"]
        assert probes.header == ["probe", "target", "reference", "again"]
        # 4 probes (the first four test samples), two outputs each
        assert [row[0] for row in probes.rows] == [f"test[{i}][{j}]" for i in range(4) for j in range(2)]
        assert params.title == "Final parameters (Frobenius norm)"
        assert params.header == ["param", "shape", "initial", "reference", "again"]
        for row in params.rows:
            name = row[0]
            initial = np.asarray(saved["initial_params"][name], dtype=float)
            assert row[1] == "x".join(map(str, initial.shape))
            assert close(row[2], np.sqrt((initial ** 2).sum()))
            for cell, backend in zip(row[3:], ("reference", "again")):
                final = np.asarray(saved["backends"][backend]["final_params"][name], dtype=float)
                assert close(cell, np.sqrt((final ** 2).sum()))
        assert [row[0] for row in params.rows] == list(saved["initial_params"])


def test_the_report_files_of_an_experiment_built_from_run_descriptions_alone(tmp_path):
    # train_and_compare's experiment with no settings: the plot's title once read settings["samples"] (KeyError)
    experiment, _ = file_experiment(tmp_path, epochs=1, dtypes=("float64",))
    write_reports(experiment, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["loss_curves.png", "losses.csv", "report.json",
                                                                     "report.md"]


def test_a_readout_all_run_names_each_step_of_each_probe(tmp_path):
    experiment, _ = file_experiment(tmp_path, readout="all", epochs=1, dtypes=("float64",))
    probes = run_tables(experiment.runs[0], experiment.data)[2]
    names = [row[0] for row in probes.rows]
    assert names[:6] == ["test[0][t0,0]", "test[0][t0,1]", "test[0][t1,0]", "test[0][t1,1]", "test[0][t2,0]",
                         "test[0][t2,1]"]
    assert len(names) == 4 * 3 * 2
    text = format_experiment(experiment)  # a bracketed name in a header is text, not markup
    assert "test[0][t0,0]=" in text and "test[0][t0,1]=" in text


# --- sentences ----------------------------------------------------------------------------------------------

def test_a_file_run_is_described_in_its_own_words_and_its_findings_name_targets(tmp_path):
    experiment, path = file_experiment(tmp_path)
    own = (f"6 test sequences of {path}, model Chain(RNN(2 => 3, tanh), Dense(3 => 2)) read at 'last', loss mse, "
           "batch 1, 4 epochs")
    assert own in format_experiment(experiment).splitlines()[0]
    assert own in experiment_markdown(experiment)
    for run in experiment.runs:
        lines = findings(run, experiment.data)
        assert lines[-1].startswith("probe predictions within ") and " of their targets; mean mse loss" in lines[-1]
        # float32, not converged, but its outcome is not judged (not the tutorial's task): no "not converged"
        assert not any("not converged" in s for s in lines)


def test_the_sum_task_with_another_loss_is_described_in_its_own_words():
    spec = shorthand_runs(N_TRAIN, 3, 1, make_rule("Adam", eta=1e-3), "rnn", 1, ("identity",), ("float64",))[0]
    experiment = train_and_compare([dataclasses.replace(spec, loss="mse")], two_references(), workers=1)
    assert ("sequences of sum, model Chain(RNN(1 => 1, identity)) read at 'last', loss mse, batch 1, 1 epochs"
            in format_experiment(experiment).splitlines()[0])


def test_the_tutorial_tanh_run_is_said_to_saturate_against_the_sum_of_the_test_labels_less_n(tmp_path):
    experiment = run_experiment(samples=N_TRAIN, seed=3, epochs=1, lr=1e-3, activations=("tanh",),
                                dtypes=("float64",), backends=two_references(), workers=1)
    labels = json.loads(json.dumps(experiment_to_dict(experiment)))["data"]["test_labels"]
    expected = sum(labels) - len(labels)
    last = findings(experiment.runs[0], experiment.data)[-1]
    assert last.startswith("tanh saturates: probe predictions within ")
    assert last.endswith(f" vs sum(test labels) - N = {expected:.6g}.")


def test_a_float32_outcome_trained_with_another_rule_is_said_to_be_reported_not_judged():
    def experiment(backends):
        return run_experiment(samples=N_TRAIN, seed=3, epochs=1, lr=1e-3, activations=("identity",),
                              dtypes=("float32", "float64"), backends=backends, workers=1,
                              optimizer=make_rule("Descent", eta=0.01))
    sentence = ("float32 outcome (test loss after, probe predictions) reported, not judged: its tolerance is Adam's "
                "step jitter, and this run trains with Descent(eta=0.01); float32 is judged on epoch 1 and the "
                "losses before training.")
    both = experiment(two_references())
    f32, f64 = both.runs
    assert sentence in findings(f32, both.data)
    assert not any("float32 outcome" in s for s in findings(f64, both.data))
    one = experiment({"reference": ReferenceBackend(jit=False)})  # nothing compared: nothing to say
    assert not any("float32 outcome" in s for s in findings(one.runs[0], one.data))
    # the header names the rule (there is no lr)
    header = format_experiment(both).splitlines()[0]
    assert ", optimizer Descent(eta=0.01), seed 3," in header and "lr" not in header
    assert ", optimizer Descent(eta=0.01), seed 3." in experiment_markdown(both)


@pytest.mark.parametrize("ratio, unconverged", [(0.005, False), (0.01, False), (0.02, True)])
def test_a_float32_tutorial_run_is_unconverged_when_its_test_loss_is_above_one_percent_of_before(ratio,
                                                                                                  unconverged):
    experiment = pinned_experiment()
    run = experiment.runs[0]  # identity/float32, the tutorial's run: its outcome is judged
    for r in run.results.values():
        r.test_loss_after = ratio * r.test_loss_before
    said = [s for s in findings(run, experiment.data) if "not converged" in s]
    assert said == ([said[0]] if unconverged else [])
    if unconverged:
        assert said[0].startswith("reference, again: not converged on this seed (test loss after > 1% of before)")


def test_verdict_lines_name_the_failed_check_and_where_the_float32_trajectories_separate():
    experiment = pinned_experiment(separating=True)
    f32, f64 = (verdict_lines(run, experiment.data) for run in experiment.runs)
    epoch = SEPARATE_AT // N_TRAIN + 1
    assert f32[0] == "identity/f32: PASS"
    assert f32[2:] == [f"    trajectories separate at step {SEPARATE_AT} (epoch {epoch}); reported, not judged in "
                       "float32"]
    assert f64[0] == "identity/f64: FAIL"
    assert len(f64) == 2 and "trajectories separate" not in f64[1]  # judged in float64: a FAIL, not a report
    assert " (FAILED: step_losses); closest to its tolerance: step_losses, max abs 5.00e-01 = " in f64[1]


def test_the_terminal_says_each_sentence_once_and_shows_the_judged_checks_with_the_separation(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    experiment = pinned_experiment(separating=True)
    header = ("fluxparity compare: 12 train / 24 test sequences, 2 epochs, lr 0.001, seed 3, backends reference, "
              "again")
    summary = format_experiment(experiment)
    assert summary.splitlines()[0] == header and summary.splitlines()[-1] == "Overall verdict: FAIL"
    assert summary.endswith("Overall verdict: FAIL")
    assert "step losses separate at step" not in summary  # the summary says it in the verdict lines instead
    assert summary.count(f"trajectories separate at step {SEPARATE_AT}") == 1
    verbose = format_experiment(experiment, verbose=True)
    lines = verbose.splitlines()
    assert lines[0] == header and lines[-1] == "Overall verdict: FAIL"
    assert [s for s in lines if "step losses separate at step" in s] == [
        f"* reference and again: step losses separate at step {SEPARATE_AT} (epoch 2, batch 2) beyond |a-b| <= "
        "0.0001*(|label| + |b|); judged on epoch 1 and on the outcome instead."]
    f32 = lines[lines.index("=== identity/float32: PASS ==="):lines.index("=== identity/float64: FAIL ===")]
    quantities = [c.quantity for c in experiment.runs[0].parity.checks]
    shown = [next(q for q in quantities if s[len("reference vs again"):].lstrip().startswith(q + " "))
             for s in f32 if s.startswith("reference vs again")]
    judged = [c.quantity for c in experiment.runs[0].parity.checks if c.judged]
    assert "epoch_test_loss" in quantities and "epoch_test_loss" not in judged  # an unjudged check: not shown
    assert shown == judged + ["step_losses"]  # report.md has every check
    md = experiment_markdown(experiment)
    assert md.count("| reference vs again | ") == 2 * 8 and "| reference vs again | epoch_test_loss |" in md


def test_a_rule_longer_than_a_cell_ends_in_an_ellipsis_on_the_terminal():
    verbose = format_experiment(pinned_experiment(), verbose=True)
    rows = [s for s in verbose.splitlines() if s.startswith("reference vs again") and "test_loss_after" in s]
    assert len(rows) == 2  # float32's rule (the outcome's) is longer than a cell, float64's is whole
    assert rows[0].endswith("…") and rows[1].endswith("|a-b| <= 1e-09*(|label| + |b|)")
    assert "summed over the test set" not in verbose  # the whole rule is in report.md
    cell = rows[0][rows[0].index("outcome:"):]
    assert len(cell) == 40


# --- growth diagnosis ---------------------------------------------------------------------------------------

def diagnose(differences, steps_per_epoch, scale=None):
    d = np.asarray(differences, dtype=float)
    run = SimpleNamespace(scales=lambda: {"step": np.ones(d.size) if scale is None else np.asarray(scale)},
                          batches=SimpleNamespace(steps_per_epoch=steps_per_epoch))
    return growth_diagnosis(SimpleNamespace(step_losses=np.zeros(d.size)), SimpleNamespace(step_losses=d), run)


@pytest.mark.parametrize("steps_per_epoch, first, from_the_start", [
    (100, 9, True), (100, 10, False),  # the first tenth of epoch 1: steps 0..9
    (15, 0, True), (15, 1, False), (10, 1, False),  # at least the first step
])
def test_a_difference_is_from_the_first_steps_within_the_first_tenth_of_epoch_1(steps_per_epoch, first,
                                                                                  from_the_start):
    d = np.zeros(2 * steps_per_epoch)
    d[first:] = 1e-3
    text = diagnose(d, steps_per_epoch)
    levels = ", ".join(f"{level} at step {first}" for level in ("1e-13", "1e-11", "1e-09", "1e-07", "1e-05"))
    kind = ("it is there from the first steps: look for a difference in the math." if from_the_start else
            "it grew gradually from rounding-level differences: the dynamics amplify rounding, which is not a "
            "porting error (docs/parity.md, 'Where float64 stops agreeing').")
    assert text == f"label-scaled step-loss difference first exceeds {levels}; {kind}"


def test_a_difference_equal_to_a_level_does_not_exceed_it():
    d = np.zeros(200)
    d[0], d[50:] = 1e-13, 1e-5  # 1e-13 exactly at step 0, 1e-5 exactly from step 50: above neither
    assert diagnose(d, 100) == ("label-scaled step-loss difference first exceeds 1e-13 at step 50, 1e-11 at step 50, "
                                "1e-09 at step 50, 1e-07 at step 50; it grew gradually from rounding-level "
                                "differences: the dynamics amplify rounding, which is not a porting error "
                                "(docs/parity.md, 'Where float64 stops agreeing').")


@pytest.mark.parametrize("case", ["inf - inf", "overflow", "zero scale"])
def test_a_diverged_run_is_diagnosed_without_a_numpy_warning(case):
    d, scale = np.full(20, 1e-3), np.ones(20)
    a = np.zeros(20)
    if case == "inf - inf":
        a[7], d[7] = np.inf, np.inf
    elif case == "overflow":
        d[7], scale[7] = 1e300, 1e-300
    else:
        scale[7] = 0.0
    run = SimpleNamespace(scales=lambda: {"step": scale}, batches=SimpleNamespace(steps_per_epoch=10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = growth_diagnosis(SimpleNamespace(step_losses=a), SimpleNamespace(step_losses=d), run)
    assert text == "the step losses stop being finite at step 7: a run diverged; look at the math first."


# --- colour -------------------------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_colour_terminal_pass_is_green_fail_red_and_the_text_fits_the_width(monkeypatch):
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "100")
    text = format_experiment(pinned_experiment(separating=True), verbose=True, terminal=Terminal())
    codes = lambda word: set(re.findall(r"\x1b\[([0-9;]*)m" + word + r"\x1b\[0m", text))  # noqa: E731
    assert codes("PASS") and all("32" in c.split(";") for c in codes("PASS"))  # green
    assert codes("FAIL") and all("31" in c.split(";") for c in codes("FAIL"))  # red
    assert codes("pass") and all("32" in c.split(";") for c in codes("pass"))  # a result cell too
    visible = re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()
    tables = [s for s in visible[1:] if not s.startswith("* ")]  # a sentence is left to the terminal to wrap
    assert any("outcome: |a-b|" in s for s in tables) and max(len(s) for s in tables) <= 100

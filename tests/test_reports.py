"""What the reports say: one screen in the terminal, and a diagnosis when float64 trajectories part."""

import copy

import numpy as np

from fluxparity.backends import get_backend
from fluxparity.experiment import run_experiment
from fluxparity.report import format_experiment
from fluxparity.report._tables import growth_diagnosis


def small_experiment():
    return run_experiment(samples=30, seed=0, epochs=3, lr=1e-3, activations=("identity", "tanh"),
                          dtypes=("float32", "float64"),
                          backends={"torch": get_backend("torch"), "reference": get_backend("reference")})


def test_default_terminal_report_fits_one_screen_and_names_every_run():
    experiment = small_experiment()
    text = format_experiment(experiment)
    assert len(text.splitlines()) <= 60
    for label in ("identity/f32", "identity/f64", "tanh/f32", "tanh/f64"):
        assert f"{label}: PASS" in text
    assert "Overall verdict: PASS" in text
    assert len(format_experiment(experiment, verbose=True).splitlines()) > 100  # every table of every run


def test_diagnosis_tells_gradual_growth_from_a_difference_in_the_math():
    experiment = run_experiment(samples=100, seed=0, epochs=2, lr=1e-3, activations=("identity",),
                                dtypes=("float64",), backends={"reference": get_backend("reference")})
    data, a = experiment.data, experiment.runs[0].results["reference"]
    gradual = copy.deepcopy(a)
    steps = np.arange(len(a.step_losses))
    gradual.step_losses = a.step_losses + np.tile(data.train_labels, 2) * 1e-16 * 10.0 ** (steps / 15)
    assert "grew gradually" in growth_diagnosis(a, gradual, experiment.runs[0].config)
    broken = copy.deepcopy(a)
    broken.step_losses = a.step_losses * (1 + 1e-3)
    assert "from the first steps" in growth_diagnosis(a, broken, experiment.runs[0].config)


def test_diagnosis_with_few_samples_and_non_finite_losses():
    experiment = run_experiment(samples=9, seed=0, epochs=2, lr=1e-3, activations=("identity",),
                                dtypes=("float64",), backends={"reference": get_backend("reference")})
    a = experiment.runs[0].results["reference"]
    broken = copy.deepcopy(a)
    broken.step_losses = a.step_losses * (1 + 1e-3)
    assert "from the first steps" in growth_diagnosis(a, broken, experiment.runs[0].config)
    broken.step_losses[5] = np.nan
    assert "stop being finite at step 5" in growth_diagnosis(a, broken, experiment.runs[0].config)

"""benchmarks/run.py runs end to end (--quick) and reports the keys issue 4 asks for (speed values are not
judged: benchmarks print ratios, tests do not time). The torch.compile row costs a ~30 s cold compile, so it
is a test of its own behind the opt-in ``compile`` marker: ``pytest --run-compile -m compile``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
COMPILED = ("torch_compiled_seconds", "torch_compiled_compile_seconds", "torch_compiled_over_reference")


def quick_benchmark(tmp_path, *options) -> dict:
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--json", *options], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(tmp_path.iterdir())  # the compare report went to a temporary folder
    return json.loads(done.stdout)


def test_quick_benchmark_prints_one_json_object_with_the_keys(tmp_path):
    result = quick_benchmark(tmp_path, "--skip-compiled")
    assert {"torch_fast_over_reference", "reference_seconds", "compare_default_seconds",
            "sweep64_over_one_seed"} <= set(result)
    assert {"torch_plain_seconds", "torch_fast_seconds", "compare_plain_seconds", "peak_rss_mb",
            "targets", "targets_met"} <= set(result)
    assert result["quick"] is True
    assert result["fast_equals_plain_float64"] is True
    for key in ("torch_fast_over_reference", "reference_seconds", "compare_default_seconds", "sweep64_over_one_seed"):
        assert isinstance(result[key], float) and result[key] > 0
    # the compiled row is left out, and says so
    assert result["torch_compiled_error"] == "skipped (--skip-compiled)"
    assert all(result[key] is None for key in COMPILED)


@pytest.mark.compile
def test_the_compiled_training_program_compiles_runs_and_matches_the_eager_fast_path(tmp_path):
    # Fails if torch.compile cannot build the program here, or if its steps differ from the eager fast
    # path's once that path takes Julia's correctly rounded sqrt (benchmarks/_torch_compiled.py, parity).
    result = quick_benchmark(tmp_path)
    assert result["torch_compiled_error"] is None
    for key in COMPILED:
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["compiled_equals_eager_with_ieee_sqrt"] is True
    step = result["compiled_first_difference_step"]
    assert step is None or (isinstance(step, int) and 0 <= step < 100 * 5)


def test_the_compiled_rows_bit_identity_check_runs_on_todays_chain():
    # The check behind "compiled_equals_eager_*" without a compile (the row failed with "'Chain' object has no
    # attribute 'items'" when Chain changed): a run equals itself, and one changed weight is told apart.
    sys.path.insert(0, str(RUN.parent))
    try:
        import _torch_compiled as compiled
    finally:
        sys.path.remove(str(RUN.parent))
    from fluxparity.backends.pytorch_fast import train_batch
    from conftest import run_of
    from fluxparity.data import generate_dataset
    from fluxparity.experiment import seeds_for
    from fluxparity.models import tutorial_chain, tutorial_weights, with_tutorial_weights

    data_seed, param_seed = seeds_for(0)
    data = generate_dataset(8, data_seed)
    eager = train_batch([run_of(data, tutorial_chain(param_seed, "identity"), "float64", epochs=1)])[0]
    run = compiled.CompiledRun(step_losses=eager.step_losses, final_params=eager.final_params, compile_seconds=0.0,
                               run_seconds=0.0, loop_seconds=0.0, unroll=1)
    assert compiled._same(run, eager)
    wi, wh, b = tutorial_weights(eager.final_params)
    run.final_params = with_tutorial_weights(eager.final_params, wi, wh, b + 1e-12)
    assert not compiled._same(run, eager)


OWN_MODEL_SECONDS = ("own_model_torch_seconds", "own_model_torch_training_seconds", "own_model_bare_seconds",
                     "own_model_reference_seconds", "own_model_reference_training_seconds")


def test_the_own_model_rows_run_alone_and_their_ratios_come_from_the_measured_times(tmp_path):
    # issue 19 items 9-10: the torch leg of compare on a user's LSTM over a bare PyTorch loop, the reference leg over
    # the torch leg, in one run; --only runs them without the tutorial's rows. No speed is judged here.
    result = quick_benchmark(tmp_path, "--only", "own-model")
    assert result["groups"] == ["own-model"]
    assert "compare_default_seconds" not in result and "assert_parity_over_bare_torch" not in result
    for key in OWN_MODEL_SECONDS + ("own_model_torch_evaluation_seconds", "own_model_reference_evaluation_seconds"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["own_model_torch_over_bare"] == result["own_model_torch_seconds"] / result["own_model_bare_seconds"]
    assert result["own_model_reference_over_torch"] == (result["own_model_reference_seconds"]
                                                        / result["own_model_torch_seconds"])
    assert result["own_model_torch_training_over_bare"] == (result["own_model_torch_training_seconds"]
                                                            / result["own_model_bare_seconds"])
    assert result["own_model_torch_training_seconds"] < result["own_model_torch_seconds"]  # evaluation subtracted
    assert result["targets"] == {"own_model_torch_over_bare": 1.5, "own_model_reference_over_torch": 3.0}
    assert set(result["targets_met"]) == set(result["targets"])
    # the bare loop trains what the leg trains (the same step losses, bit for bit), and the leg used torch.optim.Adam
    assert result["own_model_bare_equals_torch_leg"] is True
    assert result["own_model_torch_optimizer"].startswith("torch.optim.Adam(")
    assert "--model Chain(LSTM(3 => 16), Dense(16 => 2))" in result["own_model_case"]
    assert "--batch-size 32" in result["own_model_case"] and "--dtype float32" in result["own_model_case"]


def test_an_unknown_group_is_refused():
    done = subprocess.run([sys.executable, str(RUN), "--only", "tutorial,speedy"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "'tutorial,speedy'" in done.stderr and "tutorial, assert-parity, own-model" in done.stderr

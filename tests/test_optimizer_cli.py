"""``--optimizer SPEC`` on the command line (issue 12): one rule for every backend, or a one-line refusal."""

import json
import os
import subprocess
import sys

import pytest

SMALL = ["--samples", "50", "--epochs", "2", "--quiet"]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fluxparity", *args], capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


def test_compare_trains_torch_and_reference_with_momentum_and_records_the_rule(tmp_path):
    # tanh: with the identity RNN, Momentum(0.01, 0.9) diverges within 10 steps in both legs (the step losses
    # become inf/NaN there; the report says so and fails), so the agreement is shown where training is stable.
    proc = run_cli("compare", "--optimizer", "momentum:eta=0.01,rho=0.9", "--activation", "tanh",
                   "--backends", "torch,reference", *SMALL, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "optimizer Momentum(eta=0.01, rho=0.9)" in proc.stdout and "Overall verdict: PASS" in proc.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["optimizer"] == {"rule": "Momentum", "eta": 0.01, "rho": 0.9}
    assert report["config"]["lr"] is None and report["config"]["torch_path"] == "plain"
    for run in report["runs"]:
        assert run["optimizer"] == {"rule": "Momentum", "eta": 0.01, "rho": 0.9} and run["lr"] is None
        assert run["backends"]["torch"]["notes"]["path"] == "plain"
    f32 = next(r for r in report["runs"] if r["dtype"] == "float32")
    outcome = [c for c in f32["parity"]["checks"] if c["quantity"] in ("test_loss_after", "probe_predictions")]
    assert outcome and all(not c["judged"] and "Adam's jitter" in c["rule"] for c in outcome)
    assert "reported, not judged: its tolerance is Adam's step jitter" in (tmp_path / "report.md").read_text()


def test_compare_with_a_chain_spec_agrees_in_float64_with_optimisers_arithmetic(tmp_path):
    proc = run_cli("compare", "--optimizer", "chain:clipnorm=1,adamw", "--torch-optimizer", "optimisers",
                   "--backends", "torch,reference", *SMALL, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Overall verdict: PASS" in proc.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert [m["rule"] for m in report["config"]["optimizer"]["opts"]] == ["ClipNorm", "AdamW"]
    for run in report["runs"]:
        # identity, float64: FluxOptimiser and the reference do the same arithmetic on the same gradients, so bit
        # for bit (tanh runs differ in the last bits of tanh itself; compare judges them within RTOL_FLOAT64)
        if run["dtype"] == "float64" and run["activation"] == "identity":
            assert run["backends"]["torch"]["step_losses"] == run["backends"]["reference"]["step_losses"]


def test_auto_without_julia_says_flux_was_skipped_and_still_compares(tmp_path):
    proc = run_cli("compare", "--optimizer", "momentum:eta=0.001", "--activation", "tanh", "--dtype", "float64",
                   "--samples", "10", "--epochs", "1", "--quiet", "--out", str(tmp_path),
                   env={"PYTHON_JULIACALL_EXE": str(tmp_path / "no-julia-here"), "PATH": os.path.dirname(sys.executable)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "flux not run" in proc.stdout
    assert "flux" in json.loads((tmp_path / "report.json").read_text())["skipped_backends"]


@pytest.mark.parametrize("args,message", [
    (["--optimizer", "momentum", "--lr", "0.01"], "--lr does not apply with --optimizer Momentum"),
    (["--optimizer", "amsgrad"], "--optimizer AMSGrad has no torch.optim equivalent for --torch-optimizer torch: "),
    (["--optimizer", "momentum", "--torch-path", "fast"], "--torch-path fast spells out Adam only"),
    (["--optimizer", "momentom:eta=0.1"], "unknown rule 'momentom'"),
    (["--optimizer", "momentum:eta=-1"], "Momentum.eta (the learning rate) cannot be negative"),
])
def test_optimizer_refusals_exit_2_with_one_line(tmp_path, args, message):
    proc = run_cli("compare", "--backends", "torch,reference", *args, *SMALL, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out").exists()


def test_no_torch_equivalent_suggests_optimisers_arithmetic_which_then_runs(tmp_path):
    refused = run_cli("compare", "--optimizer", "amsgrad", "--backends", "torch,reference", *SMALL,
                      "--out", str(tmp_path / "a"))
    assert refused.returncode == 2 and "use --torch-optimizer optimisers" in refused.stderr
    ran = run_cli("compare", "--optimizer", "amsgrad", "--torch-optimizer", "optimisers", "--activation", "tanh",
                  "--dtype", "float64", "--backends", "torch,reference", *SMALL, "--out", str(tmp_path / "b"))
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_sweep_accepts_an_optimizer(tmp_path):
    proc = run_cli("sweep", "--optimizer", "momentum:eta=0.001", "--activation", "tanh", "--seeds", "2",
                   "--samples", "10", "--epochs", "1", "--quiet", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "optimizer Momentum(eta=0.001, rho=0.9)" in proc.stdout
    settings = json.loads((tmp_path / "sweep.json").read_text())["settings"]
    assert settings["optimizer"] == {"rule": "Momentum", "eta": 0.001, "rho": 0.9} and settings["torch_path"] == "plain"


def test_sweep_refuses_lr_beside_an_optimizer(tmp_path):
    proc = run_cli("sweep", "--optimizer", "descent", "--lr", "0.1", "--seeds", "1", "--quiet",
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "--lr does not apply with --optimizer Descent" in proc.stderr

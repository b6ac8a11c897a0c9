"""Faults at the command line and in the files: every one ends with a documented exit code and one line.

Issue 9, items 2, 3, 4, 5, 9 and 10. File tests check that an earlier report stays byte-identical when a
later run fails.
"""

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures.process import BrokenProcessPool

import pytest

import fluxparity.cli as cli
from faults_support import CEILING, marked_env, new_marker, snapshot
from fluxparity.cli import main

TINY = ["--samples", "12", "--epochs", "2", "--quiet", "--activation", "identity", "--dtype", "float64"]
PAIR = ["--backends", "torch,reference"]


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "fluxparity", *args], capture_output=True, text=True,
                          env=marked_env(new_marker()), timeout=CEILING, **kwargs)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------------------- 2: nothing compared is no PASS


def test_a_run_with_one_backend_says_nothing_compared_and_exits_4(tmp_path):
    proc = run_cli("compare", "--backends", "torch", *TINY, "--out", str(tmp_path / "r"))
    assert proc.returncode == 4
    assert "Overall verdict: NOTHING COMPARED" in proc.stdout and "PASS" not in proc.stdout
    assert json.loads((tmp_path / "r" / "report.json").read_text())["verdict"] == "nothing compared"


def test_auto_with_only_one_backend_importable_exits_4(tmp_path, monkeypatch, capsys):
    real = cli.get_backend

    def only_reference(name, **options):
        if name != "reference":
            raise ImportError(f"No module named {name!r} (simulated)")
        return real(name, **options)

    monkeypatch.setattr(cli, "get_backend", only_reference)
    assert main(["compare", *TINY, "--out", str(tmp_path / "r")]) == 4
    assert "Overall verdict: NOTHING COMPARED" in capsys.readouterr().out


# ---------------------------------------------------------------------------- 3: numba cannot write a cache


NUMBA_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numba, kernel
    try:
        numba.njit(cache=True)(kernel.twice)
        print("numba-could-cache")
    except RuntimeError as exc:
        print("numba-cannot-cache" if "cannot cache" in str(exc) else exc)
    from fluxparity._numba_cache import njit_cached
    print(njit_cached(kernel.twice)(21.0))
""")


@pytest.mark.parametrize("temp_writable", [True, False], ids=["private-dir", "no-cache"])
def test_numba_falls_back_when_no_cache_place_is_writable(tmp_path, temp_writable):
    blocker = tmp_path / "a-file"  # nothing can be created below a file, not even by root
    blocker.write_text("")
    source = tmp_path / "src"
    source.mkdir()
    (source / "kernel.py").write_text("def twice(x):\n    return 2 * x\n")
    (source / "__pycache__").write_text("")  # numba's in-tree cache place cannot be made
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = marked_env(new_marker(), HOME=str(blocker / "home"), XDG_CACHE_HOME=str(blocker / "cache"),
                     NUMBA_CACHE_DIR="")
    env.pop("NUMBA_CACHE_DIR")
    if temp_writable:
        env["TMPDIR"] = str(temp)
    else:  # every temporary directory Python would try: made unusable by pointing them below the file
        env.update(TMPDIR=str(blocker / "t"), TEMP=str(blocker / "t"), TMP=str(blocker / "t"))
    script = NUMBA_SCRIPT if temp_writable else NUMBA_SCRIPT.replace(
        "from fluxparity._numba_cache import njit_cached",
        "import fluxparity._numba_cache as m; m.private_cache_dir = lambda: None; njit_cached = m.njit_cached")
    done = subprocess.run([sys.executable, "-c", script, str(source)], env=env, capture_output=True, text=True,
                          timeout=CEILING)
    assert done.stdout.split() == ["numba-cannot-cache", "42.0"], done.stderr
    cached = list(temp.rglob("*.nbi"))
    assert bool(cached) == temp_writable


# --------------------------------------------------------------------- 4: every unexpected error: one line, 3


@pytest.mark.parametrize("args,named", [
    (["--samples", "1000000000"], "--samples 1000000000"),
    (["--model", "lstm", "--hidden", "100000", "--activation", "tanh"], None),
    (["--model", "rnn", "--hidden", "100000"], "--hidden 100000"),
])
def test_a_run_too_big_for_memory_is_refused_before_training(tmp_path, args, named):
    proc = run_cli("compare", *PAIR, "--quiet", *args, "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    if named:
        assert "memory" in line and named in line
    assert not (tmp_path / "r").exists()


def test_an_out_name_longer_than_the_file_system_allows_is_exit_2(tmp_path):
    proc = run_cli("compare", *PAIR, *TINY, "--out", str(tmp_path / ("x" * 300)))
    assert proc.returncode == 2 and "too long" in one_line(proc.stderr)


def test_lr_float32_cannot_hold_is_one_line_without_numpy_warnings(tmp_path):
    proc = run_cli("compare", *PAIR, "--lr", "1e39", "--dtype", "float32", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "--lr 1e+39" in one_line(proc.stderr)


def test_an_unexpected_exception_is_one_line_and_exit_3(tmp_path, monkeypatch, capsys):
    import fluxparity.experiment as experiment

    def broken(**kwargs):
        raise ZeroDivisionError("something nobody foresaw")

    monkeypatch.setattr(experiment, "run_experiment", broken)
    assert main(["compare", *PAIR, *TINY, "--out", str(tmp_path / "r")]) == 3
    line = one_line(capsys.readouterr().err)
    assert line.startswith("fluxparity compare: unexpected error: ZeroDivisionError: something nobody foresaw")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("signum, code, last", [(15, 143, "terminated (SIGTERM)"), (2, 130, "interrupted")])
def test_an_error_while_stopping_after_a_signal_still_ends_as_the_signal(tmp_path, monkeypatch, capsys, signum,
                                                                         code, last):
    # The signal's exception can be replaced by one raised while the run stops (a pool that breaks as its
    # workers are stopped): the exit code is still the signal's, and the other error is named, not hidden.
    import signal

    import fluxparity.experiment as experiment

    def stopped(**kwargs):
        try:
            signal.raise_signal(signum)  # the CLI's handler raises here
        finally:
            raise BrokenProcessPool("a worker ended while the pool stopped (simulated)")

    monkeypatch.setattr(experiment, "run_experiment", stopped)
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:  # after a signal main() leaves the handled signals ignored until the process exits: put them back
        assert main(["compare", *PAIR, *TINY, "--out", str(tmp_path / "r")]) == code
    finally:
        for s, handler in kept.items():
            signal.signal(s, handler)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-2:] == ["fluxparity compare: while stopping: BrokenProcessPool: a worker ended while the pool "
                          "stopped (simulated)", last]
    assert not (tmp_path / "r").exists()


def test_a_broken_process_pool_at_submit_is_exit_3(tmp_path, monkeypatch, capsys):
    import fluxparity.parallel as parallel

    class Broken:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def submit(self, *args, **kwargs):
            raise BrokenProcessPool("a worker died while starting (simulated)")

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(parallel, "spawn_pool", lambda workers: Broken())
    args = ["compare", *PAIR, "--samples", "1000", "--epochs", "10", "--quiet", "--out", str(tmp_path / "r")]
    assert main(args) == 3
    assert "BrokenProcessPool" in one_line(capsys.readouterr().err)


def test_closed_stderr_still_writes_the_report(tmp_path):
    out = tmp_path / "r"
    command = [sys.executable, "-m", "fluxparity", "compare", *PAIR, *TINY, "--out", str(out)]
    done = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *command], capture_output=False,
                          stdout=subprocess.PIPE, env=marked_env(new_marker()), timeout=CEILING)
    assert done.returncode == 0 and (out / "report.json").is_file()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_device_is_one_line_and_the_verdicts_exit_code(tmp_path):
    # issue 17, item 11: the report is written and the exit is the verdict's (it was 3 before)
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "fluxparity", "compare", *PAIR, *TINY, "--out",
                               str(tmp_path / "r")], stdout=full, stderr=subprocess.PIPE, text=True,
                              env=marked_env(new_marker()), timeout=CEILING)
    assert done.returncode == 0 and (tmp_path / "r" / "report.json").is_file()
    assert "No space left on device" in one_line(done.stderr)


def test_a_non_utf8_julia_project_is_a_reason_not_a_crash(tmp_path, monkeypatch):
    from fluxparity import juliaprobe

    julia = tmp_path / "julia"
    julia.write_text("#!/bin/sh\necho 'julia version 1.10.4'\n")
    julia.chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    (project / "Project.toml").write_bytes(b"[deps]\nFlux = \"\xff\xfe\"\n")
    env = {"PYTHON_JULIACALL_EXE": str(julia), "PYTHON_JULIACALL_PROJECT": str(project), "PATH": ""}
    environment = juliaprobe.probe_flux_environment(env, julia_without_juliacall=True)
    assert environment.julia.found and "UTF-8" in environment.project.reason
    done = subprocess.run([sys.executable, "-m", "fluxparity", "doctor"], capture_output=True, text=True,
                          env=marked_env(new_marker(), **{k: v for k, v in env.items() if k != "PATH"}), timeout=CEILING)
    assert done.returncode == 0 and "UTF-8" in done.stdout


# --------------------------------------------------------------- 5: the report folder is replaced as a whole


@pytest.fixture
def earlier_report(tmp_path):
    out = tmp_path / "report"
    assert main(["compare", *PAIR, *TINY, "--seed", "1", "--out", str(out)]) == 0
    return out


def _no_scratch(folder) -> bool:
    return not [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_a_run_failing_while_writing_leaves_the_earlier_report_byte_identical(earlier_report, monkeypatch):
    import fluxparity.report._files as files

    before = snapshot(earlier_report)

    def full_disk(experiment, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "plot_loss_curves", full_disk)
    assert main(["compare", *PAIR, *TINY, "--seed", "2", "--out", str(earlier_report)]) == 2
    assert snapshot(earlier_report) == before and _no_scratch(earlier_report)


def test_a_signal_while_writing_leaves_the_earlier_report_and_no_scratch(earlier_report, monkeypatch):
    import fluxparity.report._files as files

    before = snapshot(earlier_report)

    def terminated(experiment, path):
        raise cli.Terminated(15)

    monkeypatch.setattr(files, "plot_loss_curves", terminated)
    assert main(["compare", *PAIR, *TINY, "--seed", "2", "--out", str(earlier_report)]) == 143
    assert snapshot(earlier_report) == before and _no_scratch(earlier_report)


def test_a_failing_backend_leaves_the_earlier_report_byte_identical(earlier_report, monkeypatch):
    from fluxparity.backends.reference import ReferenceBackend

    before = snapshot(earlier_report)

    def crash(self, *args, **kwargs):
        raise FloatingPointError("simulated")

    monkeypatch.setattr(ReferenceBackend, "train", crash)
    assert main(["compare", *PAIR, *TINY, "--seed", "2", "--out", str(earlier_report)]) == 3
    assert snapshot(earlier_report) == before and _no_scratch(earlier_report)


def test_an_odd_earlier_report_is_replaced_whole(earlier_report):
    (earlier_report / "loss_curves.png").unlink()
    (earlier_report / "loss_curves.png").mkdir()  # the case: a directory where the plot was
    assert main(["compare", *PAIR, *TINY, "--seed", "2", "--out", str(earlier_report)]) == 0
    assert sorted(p.name for p in earlier_report.iterdir()) == ["loss_curves.png", "losses.csv", "report.json",
                                                                "report.md"]
    assert (earlier_report / "loss_curves.png").is_file()
    assert json.loads((earlier_report / "report.json").read_text())["config"]["seed"] == 2
    assert _no_scratch(earlier_report)


def test_scratch_an_older_version_left_inside_the_report_goes_with_the_swap(earlier_report):
    (earlier_report / ".fluxparity-k2j4x9").mkdir()  # what a killed run of an older version left
    assert main(["compare", *PAIR, *TINY, "--seed", "2", "--out", str(earlier_report)]) == 0
    assert not (earlier_report / ".fluxparity-k2j4x9").exists()


def test_a_second_writer_to_the_same_out_is_refused(earlier_report, capsys):
    from fluxparity.report._files import FILES, OutLock

    before = snapshot(earlier_report)
    with OutLock(earlier_report):  # another run holds the folder
        assert main(["compare", *PAIR, *TINY, "--seed", "2", "--out", str(earlier_report)]) == 2
    assert "being written by another fluxparity run" in one_line(capsys.readouterr().err)
    assert snapshot(earlier_report) == before and _no_scratch(earlier_report)
    assert FILES == tuple(sorted(FILES, key=FILES.index))


def test_a_folder_with_other_files_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert main(["compare", *PAIR, *TINY, "--out", str(out)]) == 2
    assert "notes.txt" in one_line(capsys.readouterr().err)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# ----------------------------------------------------------------------- 9: options that do not apply


@pytest.mark.parametrize("args,named", [
    (["--model", "lstm", "--activation", "identity"], "--activation"),
    (["--model", "gru", "--hidden", "2", "--torch-path", "fast"], "--torch-path fast"),
    (["--backends", "reference", "--torch-optimizer", "optimisers"], "--torch-optimizer"),
    (["--activation", "identity", "--reference-tanh", "fast"], "--reference-tanh"),
])
def test_options_that_do_not_apply_are_refused(tmp_path, args, named, capsys):
    base = ["--samples", "12", "--epochs", "2", "--quiet"]
    if "--backends" not in args:
        base += PAIR
    base += ["--out", str(tmp_path / "r")]
    assert main(["compare", *base, *args]) == 2
    assert named in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_an_empty_out_is_refused(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["compare", *PAIR, *TINY, "--out", ""])
    assert exit.value.code == 2 and "argument --out: expected a folder name, got ''" in one_line(capsys.readouterr().err)


def test_report_json_says_the_torch_path_a_model_run_used(tmp_path):
    assert main(["compare", *PAIR, "--model", "gru", "--hidden", "2", "--samples", "12", "--epochs", "1",
                 "--dtype", "float64", "--quiet", "--out", str(tmp_path / "r")]) in (0, 1)
    assert json.loads((tmp_path / "r" / "report.json").read_text())["config"]["torch_path"] == "plain"


def test_a_sweep_too_big_for_memory_is_refused_and_a_small_one_says_its_size(tmp_path, capsys):
    assert main(["sweep", "--seeds", "100000000", "--out", str(tmp_path / "big")]) == 2
    assert "memory" in one_line(capsys.readouterr().err)
    assert main(["sweep", "--seeds", "2", "--samples", "10", "--epochs", "1", "--activation", "identity",
                 "--dtype", "float64", "--out", str(tmp_path / "small")]) == 0
    assert "sweep: 2 seeds x 1 runs, 20 Adam steps per run and backend" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- 10: set-up


def test_juliacall_is_a_core_dependency():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("juliacall==") for d in project["dependencies"])


def test_the_flux_not_run_message_is_whole_sentences():
    from fluxparity.juliaprobe import FluxEnvironment, JuliaProbe, ProjectProbe

    environment = FluxEnvironment(JuliaProbe(False, reason="No usable Julia."), ProjectProbe(None, None, False),
                                  None, "/x/julia/FluxParity.jl")
    assert ": To enable" not in environment.reason and ". To enable the Flux backend: run" in environment.reason


@pytest.mark.parametrize("openssl,accepted", [((3, 0, 13), False), ((3, 5, 0), True)])
def test_julia_1_12_needs_openssl_3_5_in_python_whatever_the_project(openssl, accepted):
    # docs/flux-semantics §6: 1.10.3 <= v < 1.12, or < 2 with OpenSSL >= 3.5 — for juliapkg's project and a
    # repository project alike (the rule depends on Python's OpenSSL only, not on where the project is).
    from fluxparity.juliaprobe import version_problem

    assert (version_problem((1, 12, 0), openssl) is None) == accepted
    assert version_problem((1, 11, 5), openssl) is None


def test_the_ci_workflow_installs_cpu_torch_without_naming_an_index_host():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / ".github" / "workflows" / "ci.yml").read_text()
    assert "actions: write" in text and "--torch-backend cpu" in text
    assert "download." not in text and "://" not in text.replace("${{", "")

"""`fluxparity check`, in this process (so that mutation testing sees every line it runs): what a user relies
on — the exit code, the report files written or not, `--timeout` enforced and leaving no alarm behind, the
options doing what they say (`--rtol`/`--atol`/`--steps`/`--check-weights`/`--out`), the user's module
imported from the current folder first, its forward run as the user set it, and the one line that names what
failed. (The watchdog for code stuck in C ends the process: tests/test_check_user_code.py runs it in a
subprocess.)"""

import json
import signal
import sys
import textwrap

import pytest

from fluxparity.cli import main

PORT = textwrap.dedent('''
    import sys, time
    import torch

    class Port(torch.nn.Module):
        def __init__(self, device=None, nudge=0.0):
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, batch_first=True, dtype=torch.float64, device=device)
            self.head = torch.nn.Linear(4, 2, dtype=torch.float64, device=device)
            self.nudge = nudge

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1]) + self.nudge

    def good():
        return Port()

    def nudged():  # every output 1e-8 off: fails float64's default tolerance, passes a looser one
        return Port(nudge=1e-8)

    not_a_module = 42

    def broken():
        raise RuntimeError("no weights here")

    def on_meta():
        return Port(device="meta")

    class RaisingForward(Port):
        def forward(self, x):
            raise RuntimeError("bad shapes")

    class DictForward(Port):
        def forward(self, x):
            return {"y": super().forward(x)}

    class TupleForward(Port):  # (output, something else): the first item is the output
        def forward(self, x):
            return super().forward(x), None

    class InstanceLambdaForward(Port):  # the instance's own forward, set before fluxparity sees the module
        def __init__(self):
            super().__init__()
            self.forward = lambda x: Port.forward(self, x)

        def forward(self, x):
            raise RuntimeError("the class forward must not run")

    class InstanceMethodForward(Port):  # self.forward = self.<method>: a pattern picking the implementation at init
        def __init__(self):
            super().__init__()
            self.forward = self.real_forward

        def real_forward(self, x):
            return Port.forward(self, x)

        def forward(self, x):
            raise RuntimeError("the class forward must not run")

    import signal, threading
    WATCHDOG_DONE = threading.Event()

    def deaf():  # blocks SIGALRM (as a C library might) until the watchdog has acted, then lets the alarm in
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            WATCHDOG_DONE.wait(60)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return Port()

    def slow():  # 3 s (interruptible), then a right module: a --timeout of 0.3 s must end it first
        time.sleep(3)
        return Port()

    UNWOUND = []

    def slow_to_unwind():  # needs 1.5 s after the deadline to clean up, then lets it go
        try:
            time.sleep(3)
        except BaseException:
            time.sleep(1.5)  # the deadline fires once: no second alarm cuts this short
            UNWOUND.append(True)
            raise
        return Port()
''')


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    """A folder with the port module (scli_port) and two goldens of a GRU(3->4) + Dense(2): gru.npz (2 steps,
    every step kept) and gru_last.npz (2 steps, the parameters after the last only)."""
    folder = tmp_path_factory.mktemp("check_claims")
    (folder / "scli_port.py").write_text(PORT)
    for name, extra in (("gru.npz", ["--every-step"]), ("gru_last.npz", [])):
        assert main(["record", str(folder / name), "--layers", "gru:4", "--dense", "2", "--steps", "2", *extra]) == 0
    sys.path.insert(0, str(folder))
    import scli_port  # noqa: F401 - imported (with torch) before any --timeout: an alarm must not cut torch's import
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("scli_port", None)


def check(here, out, module="scli_port:good", *extra, golden="gru.npz", batch_first=True):
    argv = ["check", str(here / golden), "--module", module, *(["--batch-first"] if batch_first else []), *extra]
    return main(argv + (["--out", str(out)] if out is not None else []))


def report(out):
    return json.loads((out / "parity.json").read_text())


def alarm_state():
    return signal.getitimer(signal.ITIMER_REAL), signal.getsignal(signal.SIGALRM)


# ---------------------------------------------------------------------------------------------- --timeout
def test_timeout_ends_a_slow_factory_with_exit_2_and_the_report(here, tmp_path, capsys):
    before = alarm_state()
    assert check(here, tmp_path / "r", "scli_port:slow", "--timeout", "0.3") == 2
    said = "--module 'scli_port:slow': gave up after --timeout 0.3 s"
    err = capsys.readouterr().err
    assert err == f"fluxparity check: error: {said}\n"
    assert report(tmp_path / "r")["error"] == said
    assert f"**Not checked:** {said}" in (tmp_path / "r" / "parity.md").read_text()
    assert alarm_state() == before  # no alarm left armed, the previous SIGALRM handler back


def test_timeout_gives_code_a_grace_to_unwind_before_ending_the_process(here, tmp_path, capsys):
    # the deadline raises in the user's code; it takes 1 s to unwind: that is the timeout the report names
    # (not the watchdog's "stuck in C code", which would end this process)
    assert check(here, tmp_path / "r", "scli_port:slow_to_unwind", "--timeout", "0.3") == 2
    assert report(tmp_path / "r")["error"] == "--module 'scli_port:slow_to_unwind': gave up after --timeout 0.3 s"
    assert sys.modules["scli_port"].UNWOUND == [True]  # its cleanup ran to the end


def test_a_check_that_ends_in_time_passes_and_leaves_no_alarm(here, tmp_path):
    before = alarm_state()
    assert check(here, tmp_path / "r", "scli_port:good", "--timeout", "600") == 0
    assert report(tmp_path / "r")["summary"] == {"passed": 3, "failed": 0}
    assert alarm_state() == before


# ---------------------------------------------------------------------------------------------- --out
def test_out_defaults_to_fluxparity_check_in_the_current_folder(here, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check(here, None) == 0
    assert report(tmp_path / "fluxparity-check")["summary"] == {"passed": 3, "failed": 0}
    assert (tmp_path / "fluxparity-check" / "parity.md").is_file()


def test_out_folders_that_do_not_exist_yet_are_created(here, tmp_path):
    out = tmp_path / "a" / "b" / "c"
    assert check(here, out) == 0
    assert report(out)["summary"] == {"passed": 3, "failed": 0}


# ---------------------------------------------------------------------------------------------- the checks
def test_check_weights_compares_the_modules_own_weights_in_the_first_check_only(here, tmp_path):
    # the port's own (random) weights are not the golden's: the first check fails on them; the gradient and
    # training checks load the golden's weights and pass
    assert check(here, tmp_path / "r", "scli_port:good", "--check-weights") == 1
    records = report(tmp_path / "r")["assertions"]
    assert [(r["assertion"], r["passed"]) for r in records] == [
        ("assert_forward_parity", False), ("assert_gradient_parity", True), ("assert_training_parity", True)]
    assert records[0]["mismatches"] and all(m["quantity"] == "weights before loading" for m in records[0]["mismatches"])


def test_a_module_failing_every_check_has_every_check_in_the_report(here, tmp_path):
    # without --batch-first the module reads the input the wrong way round: all three checks run and fail
    assert check(here, tmp_path / "r", batch_first=False) == 1
    records = report(tmp_path / "r")["assertions"]
    assert [(r["assertion"], r["passed"]) for r in records] == [
        ("assert_forward_parity", False), ("assert_gradient_parity", False), ("assert_training_parity", False)]


@pytest.mark.parametrize("options, verdicts", [
    # float64's default tolerance (rtol 1e-9 and atol 1e-12, docs/parity.md) sees the 1e-8 nudge of outputs O(0.1)
    ([], (False, False, False)),
    # 1e-3 of values O(0.1..1) is far above the nudge and what it does to the gradients and the 2 updates
    (["--rtol", "1e-3"], (True, True, True)),
    # 1e-4 absolute: 10^4 times the nudge. The updates are judged relative to themselves (rtol only,
    # docs/parity.md), so training still fails; 0 is an allowed rtol (finite, >= 0)
    (["--atol", "1e-4"], (True, True, False)),
    (["--rtol", "0", "--atol", "1e-4"], (True, True, False)),
])
def test_rtol_and_atol_change_the_verdict(here, tmp_path, options, verdicts):
    assert check(here, tmp_path / "r", "scli_port:nudged", *options) == (0 if all(verdicts) else 1)
    assert tuple(r["passed"] for r in report(tmp_path / "r")["assertions"]) == verdicts


@pytest.mark.parametrize("golden, steps", [("gru.npz", "1"), ("gru.npz", "2"), ("gru_last.npz", "2")])
def test_steps_from_1_to_all_the_golden_has_are_accepted(here, tmp_path, golden, steps):
    assert check(here, tmp_path / "r", "scli_port:good", "--steps", steps, golden=golden) == 0
    assert report(tmp_path / "r")["summary"] == {"passed": 3, "failed": 0}


# ---------------------------------------------------------------------------------------------- bad usage
def test_a_spec_without_a_module_name_is_refused_before_anything_is_written(here, tmp_path, capsys):
    assert check(here, tmp_path / "r", ":good") == 2
    assert "--module ':good' is not PKG.MOD:FACTORY" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_mapping_whose_values_are_not_text_is_refused_before_anything_is_written(here, tmp_path, capsys):
    mapping = tmp_path / "map.json"
    mapping.write_text('{"layers[1].cell.Wi": 3}')
    assert check(here, tmp_path / "r", "scli_port:good", "--mapping", str(mapping)) == 2
    assert "expected golden name = module parameter name pairs (all text)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_check_requires_module(here, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", str(here / "gru.npz"), "--out", str(tmp_path / "r")])
    assert exc.value.code == 2 and "--module" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------- the user's code
@pytest.mark.parametrize("module, said", [
    ("scli_port:nothing", "--module 'scli_port:nothing': 'scli_port' has no attribute 'nothing'"),
    ("scli_port:not_a_module", "--module 'scli_port:not_a_module' gave a int, not a torch.nn.Module"),
    ("scli_port:broken", "--module 'scli_port:broken': calling it raised RuntimeError: no weights here"),
    ("scli_port:on_meta", "--module 'scli_port:on_meta': the module's rnn.weight_ih_l0 is on the meta device (no "
                          "values); build it on the CPU, or call .to_empty(device='cpu') and initialise it"),
    ("scli_port:RaisingForward", "--module 'scli_port:RaisingForward': the forward pass raised RuntimeError: "
                                 "bad shapes"),
    ("scli_port:DictForward", "--module 'scli_port:DictForward': the forward pass returned a dict, expected a "
                              "tensor (or a tuple/list whose first item is one)"),
])
def test_the_users_code_failing_is_exit_2_and_one_line_naming_the_module(here, tmp_path, capsys, module, said):
    assert check(here, tmp_path / "r", module) == 2
    assert capsys.readouterr().err == f"fluxparity check: error: {said}\n"
    assert report(tmp_path / "r")["error"] == said


@pytest.mark.parametrize("module", ["scli_port:TupleForward", "scli_port:InstanceLambdaForward",
                                    "scli_port:InstanceMethodForward"])
def test_the_forward_the_user_set_runs_and_its_first_output_is_checked(here, tmp_path, module):
    assert check(here, tmp_path / "r", module) == 0
    assert report(tmp_path / "r")["summary"] == {"passed": 3, "failed": 0}


# ---------------------------------------------------------------------------------------------- the current folder
def test_the_module_in_the_current_folder_wins_as_with_python_m(here, tmp_path, monkeypatch):
    """As the console script has it: sys.path starts at another folder (here one holding a same-named module
    that fails) and has neither "" nor the current folder; the current folder's module must be the one run."""
    shadow, cwd = tmp_path / "shadow", tmp_path / "cwd"
    shadow.mkdir()
    cwd.mkdir()
    (shadow / "scli_here.py").write_text("def good():\n    raise RuntimeError('the shadowing module ran')\n")
    (cwd / "scli_here.py").write_text("from scli_port import good\n")
    monkeypatch.setattr(sys, "path", [str(shadow), str(here)] + [p for p in sys.path if p not in ("", str(cwd))])
    monkeypatch.chdir(cwd)
    sys.modules.pop("scli_here", None)
    try:
        assert check(here, tmp_path / "r", "scli_here:good") == 0
    finally:
        sys.modules.pop("scli_here", None)
    assert report(tmp_path / "r")["summary"] == {"passed": 3, "failed": 0}


# ---------------------------------------------------------------------------------------------- the watchdog
# For code that SIGALRM cannot reach (stuck in one C call, or blocking the signal), a watchdog thread writes the
# report and ends the process with exit 2 (docs/testing.md). Here ``os._exit`` is replaced, so that this process
# goes on; tests/test_check_user_code.py ends a real one.
def test_the_watchdog_reports_and_ends_code_that_blocks_the_alarm(monkeypatch):
    import threading

    from fluxparity.testing import _cli

    ended, fired = [], threading.Event()
    monkeypatch.setattr(_cli.os, "_exit", lambda code: (ended.append(code), fired.set()))
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # the watchdog thread inherits it
    try:
        with pytest.raises(_cli._TimedOut):  # the alarm, pending while blocked, raises once the block is lifted
            with _cli._Deadline(0.1, lambda: ended.append("report written"), grace=0.2):
                fired.wait(10)
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                signal.pthread_sigmask(signal.SIG_BLOCK, set())  # a call into C: the pending handler runs after it
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    assert ended == ["report written", 2]


def test_outside_the_main_thread_the_watchdog_alone_keeps_the_deadline(monkeypatch):
    """No SIGALRM there (handlers are the main thread's): the watchdog fires at the deadline itself, not
    ``grace`` later (here 1000 s later, which the 10 s wait below would not see)."""
    import threading

    from fluxparity.testing import _cli

    ended, fired = [], threading.Event()
    monkeypatch.setattr(_cli.os, "_exit", lambda code: (ended.append(code), fired.set()))
    seen = []

    def body():
        with _cli._Deadline(0.1, lambda: ended.append("report written"), grace=1000):
            seen.append(fired.wait(10))

    worker = threading.Thread(target=body)
    worker.start()
    worker.join(30)
    assert seen == [True] and ended == ["report written", 2]


def test_check_with_the_alarm_blocked_the_watchdog_writes_the_report_then_ends(here, tmp_path, monkeypatch):
    import os

    import scli_port

    out, seen = tmp_path / "r", []

    def exit_(code):  # what the process would leave behind at its end: the report as written, and the code
        seen.append((code, report(out) if (out / "parity.json").exists() else None))
        scli_port.WATCHDOG_DONE.set()

    monkeypatch.setattr(os, "_exit", exit_)
    assert check(here, out, "scli_port:deaf", "--timeout", "0.3") == 2  # (here the process goes on: 2 again)
    assert len(seen) == 1 and seen[0][0] == 2
    assert seen[0][1] is not None and seen[0][1]["error"] == (
        "--module 'scli_port:deaf': still running after --timeout 0.3 s (stuck in C code; ended)")

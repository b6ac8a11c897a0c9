"""`fluxparity check --module` and the user's code (issue 17, item 9): the module is imported from the current
folder also by the console script; whatever the user's code does (sys.exit, raise, hang, a module on the meta
device), the exit is 2 with one line on stderr and the report files saying why — never 0 with nothing
written, never 3 (that is for fluxparity's own bugs). Each run is a real process, as a user starts it."""

import json
import subprocess
import sys
import textwrap

import pytest

from faults_support import marked_env, new_marker
from fluxparity.cli import main

PORT = textwrap.dedent('''
    import signal, sys, time
    import torch

    if __import__("os").environ.get("PORT_EXIT_ON_IMPORT"):
        sys.exit(0)

    class Port(torch.nn.Module):
        def __init__(self, device=None):
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, batch_first=True, dtype=torch.float64, device=device)
            self.head = torch.nn.Linear(4, 2, dtype=torch.float64, device=device)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    class ExitingForward(Port):
        def forward(self, x):
            sys.exit(0)

    class RaisingForward(Port):
        def forward(self, x):
            return x @ torch.zeros(7, 7, dtype=x.dtype)

    class DictForward(Port):
        def forward(self, x):
            return {"y": super().forward(x)}

    class SpinningForward(Port):
        def forward(self, x):
            while True:
                pass

    def good():
        return Port()

    def exits():
        sys.exit(0)

    def sleeps():
        time.sleep(1000)

    def swallows():  # an `except Exception` must not swallow the timeout
        while True:
            try:
                time.sleep(1000)
            except Exception:
                pass

    def deaf():  # SIGALRM blocked here, as a C library might: the watchdog ends the run
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(1000)

    def on_meta():
        return Port(device="meta")
''')

# A stand-in for the `fluxparity` console script: started from its own folder, so that (as for the real
# script) sys.path[0] is that folder and not the current one.
SCRIPT = "import sys\nfrom fluxparity.cli import main\nsys.exit(main())\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    here = tmp_path_factory.mktemp("check")
    (here / "myport.py").write_text(PORT)
    (here / "bin").mkdir()
    (here / "bin" / "fluxparity_script.py").write_text(SCRIPT)
    assert main(["record", str(here / "gru.npz"), "--layers", "gru:4", "--dense", "2", "--steps", "2"]) == 0
    return here


def run(workdir, module, *extra, env=None):
    out = workdir / f"out-{new_marker()}"
    done = subprocess.run([sys.executable, str(workdir / "bin" / "fluxparity_script.py"), "check", "gru.npz",
                           "--module", module, "--batch-first", "--out", out.name, *extra], cwd=workdir,
                          env=marked_env(new_marker(), **(env or {})), capture_output=True, text=True, timeout=600)
    return done, out


def report(out):
    return json.loads((out / "parity.json").read_text())


def test_the_console_script_imports_the_module_from_the_current_folder(workdir):
    done, out = run(workdir, "myport:good")
    assert done.returncode == 0, done.stderr
    assert report(out)["summary"] == {"passed": 3, "failed": 0}


@pytest.mark.parametrize("module, env, said", [
    ("myport:good", {"PORT_EXIT_ON_IMPORT": "1"}, "importing 'myport' called sys.exit(0)"),
    ("myport:exits", None, "calling it called sys.exit(0)"),
    ("myport:ExitingForward", None, "the forward pass called sys.exit(0)"),
    ("myport:RaisingForward", None, "the forward pass raised RuntimeError"),
    ("myport:DictForward", None, "the forward pass returned a dict"),
    ("myport:on_meta", None, "is on the meta device"),
])
def test_the_users_code_failing_is_exit_2_one_line_and_the_report(workdir, module, env, said):
    done, out = run(workdir, module, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and said in done.stderr, done.stderr
    assert said in report(out)["error"]
    assert said in (out / "parity.md").read_text()


@pytest.mark.parametrize("module", ["myport:sleeps", "myport:swallows", "myport:SpinningForward", "myport:deaf"])
def test_timeout_bounds_a_hanging_factory_or_forward(workdir, module):
    done, out = run(workdir, module, "--timeout", "2")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "--timeout 2 s" in done.stderr, done.stderr
    assert "--timeout 2 s" in report(out)["error"]


@pytest.mark.parametrize("value", ["-1", "0", "abc", "nan", "1e9"])
def test_timeout_must_be_a_positive_number(workdir, value):
    done, out = run(workdir, "myport:good", "--timeout", value)
    assert done.returncode == 2 and f"expected a positive number of seconds, got '{value}'" in done.stderr
    assert not out.exists()

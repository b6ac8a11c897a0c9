"""The terminal summary: PASS/FAIL in colour on a colour terminal, plain text everywhere else."""

import io
import re

from report_files_support import pinned_experiment

from fluxparity.report import format_experiment

COLOURED = re.compile(r"\x1b\[[0-9;]*m(PASS|FAIL|FAILED)\x1b\[0m")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def colour_env(monkeypatch):
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def failing_experiment():
    experiment = pinned_experiment()
    run = experiment.runs[1]
    check = next(c for c in run.parity.checks if c.judged)
    check.passed, run.parity.verdict = False, "fail"
    return experiment, check.quantity


def test_verdicts_are_coloured_on_a_colour_terminal(monkeypatch):
    colour_env(monkeypatch)
    experiment, quantity = failing_experiment()
    text = format_experiment(experiment, terminal=Terminal())
    # two runs, a failed check, the finding that names it ("* run: FAIL a vs b: ..."), overall
    assert COLOURED.findall(text) == ["PASS", "FAIL", "FAILED", "FAIL", "FAIL"]
    finding = next(line for line in text.splitlines() if line.startswith("* ") and " vs " in line)
    assert COLOURED.search(finding).group(1) == "FAIL"
    verbose = format_experiment(experiment, verbose=True, terminal=Terminal())
    finding = next(line for line in verbose.splitlines() if line.startswith("* ") and f": {quantity}[" in line)
    assert COLOURED.match(finding[2:]).group(1) == "FAIL"  # "* FAIL a vs b: ..." in the run's own section
    # a FAIL inside a sentence ("an outcome FAIL here says ...") is not a verdict
    assert "an outcome FAIL here" in text


def test_no_color_or_no_terminal_gives_the_plain_text(monkeypatch):
    colour_env(monkeypatch)
    experiment, _ = failing_experiment()
    plain = format_experiment(experiment)
    assert "\x1b" not in plain and "Overall verdict: FAIL" in plain
    assert plain.isascii()  # whatever the encoding of the stdout it goes to
    assert format_experiment(experiment, terminal=io.StringIO()) == plain  # a file, a pipe
    monkeypatch.setenv("NO_COLOR", "1")
    assert format_experiment(experiment, terminal=Terminal()) == plain


def test_plain_text_is_never_wrapped_and_keeps_its_rows():
    experiment, _ = failing_experiment()
    lines = format_experiment(experiment, verbose=True).splitlines()
    assert any(len(line) > 150 for line in lines)  # the wide parity-check rows stay on one line each
    assert "identity/f64: FAIL" in format_experiment(experiment)
    assert all(line == line.rstrip() for line in lines)

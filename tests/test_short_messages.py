"""Messages stay short and stderr stays quiet with --quiet (issue 17, item 16): a huge bad value or a golden
with 30,000 stray entries (the bound does not depend on the count) gives one line of bounded length; the
out-of-memory hint names the options of the command that ran; --quiet keeps matplotlib's font-cache notice
and a diverging run's NumPy warnings off stderr (the warnings are in report.json, notes.warnings)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from faults_support import marked_env, new_marker
from fluxparity import cli
from fluxparity._npzio import NpzError
from fluxparity.cli import main
from fluxparity.testing import load_golden

TINY = ["--samples", "20", "--epochs", "1", "--backends", "torch,reference", "--dtype", "float64",
        "--activation", "identity", "--workers", "1"]
LONG = "x" * 100_000


def exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's refusals
        return exc.code


@pytest.mark.parametrize("argv, said", [
    (["compare", "--optimizer", "adam:eta=" + LONG], "is not a number"),
    (["compare", "--optimizer", LONG], "unknown rule"),
    (["compare", "--backends", LONG], "unknown backend"),
    (["record", "g.npz", "--layers", "lstm:" + LONG], "expected items like lstm:8"),
    (["check", "g.npz", "--module", LONG], "is not PKG.MOD:FACTORY"),
])
def test_a_huge_bad_value_gives_one_short_line(tmp_path, monkeypatch, capsys, argv, said):
    monkeypatch.chdir(tmp_path)
    assert exit_code(argv + ["--out", str(tmp_path / "o")] if argv[0] == "compare" else argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 1200 and said in err, err[:300]


def test_a_golden_with_30k_stray_entries_is_one_short_line(tmp_path):
    from golden_support import make_golden

    path = tmp_path / "g.npz"
    make_golden(path, [("rnn", 3, "tanh")])
    entries = dict(np.load(path))
    entries.update({f"stray{i}": np.zeros(1) for i in range(30_000)})
    with open(path, "wb") as f:
        np.savez(f, **entries)
    with pytest.raises(NpzError) as error:
        load_golden(path)
    text = str(error.value)
    assert "\n" not in text and len(text) < 1500 and "and 29991 more" in text, text[:300]
    assert len(error.value.unexpected) == 30_000  # the full list stays on the error


@pytest.mark.parametrize("command, argv, hint", [
    ("compare", ["compare", *TINY], "fewer --samples or --epochs, or a smaller --hidden"),
    ("sweep", ["sweep", "--seeds", "1", "--samples", "5", "--epochs", "1"], "fewer --seeds, --samples or --epochs"),
    ("record", ["record", "g.npz", "--layers", "lstm:2"], "a smaller --length, --batch or --steps"),
])
def test_the_out_of_memory_hint_names_the_commands_own_options(tmp_path, monkeypatch, capsys, command, argv, hint):
    def out_of_memory(args):
        raise MemoryError()

    monkeypatch.chdir(tmp_path)
    if command == "record":
        monkeypatch.setattr("fluxparity.testing._cli.run_record", out_of_memory)
    else:
        monkeypatch.setattr(cli, f"_{command}", out_of_memory)
    assert main([*argv, *(["--out", str(tmp_path / "o")] if command != "record" else [])]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"fluxparity {command}: error: out of memory (try ") and hint in err
    assert err.count("\n") == 1


def run_quiet(tmp_path, *args):
    """``fluxparity compare --quiet`` in a fresh process whose matplotlib has no font cache yet."""
    env = marked_env(new_marker(), MPLCONFIGDIR=str(tmp_path / "mpl"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "fluxparity", "compare", *args, "--quiet", "--out",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=900)


def test_quiet_keeps_matplotlibs_font_cache_notice_off_stderr(tmp_path):
    done = run_quiet(tmp_path, *TINY)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert (tmp_path / "out" / "loss_curves.png").exists()


def test_quiet_keeps_a_diverging_runs_warnings_off_stderr_and_in_the_report(tmp_path):
    done = run_quiet(tmp_path, *TINY, "--optimizer", "descent:eta=1e30", "--torch-optimizer", "optimisers")
    assert done.returncode == 1, done.stderr  # diverged: NaN on both sides never passes
    assert done.stderr == ""
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    warnings = report["runs"][0]["backends"]["reference"]["notes"]["warnings"]
    assert any(w.startswith("RuntimeWarning: overflow encountered") for w in warnings), warnings

"""The side-by-side report printed at the end of ``fluxparity compare``, laid out by rich.

The tables and sentences are those of ``_tables`` (report.md has the same content); rich lays out the
tables and, on a colour terminal, marks PASS green and FAIL red. Anywhere else (a pipe, a file,
``NO_COLOR``) the text has no escape code and no line is wrapped.
"""

from __future__ import annotations

import io
import re
from typing import Optional, TextIO

from rich import box
from rich.console import Console, Group
from rich.table import Table as RichTable
from rich.text import Text

from .._console import colour_terminal
from ._markdown import _own_words
from ._tables import Table, _short, findings, run_tables, summary_tables, training_words, verdict_lines

MAX_CELL = 40  # a longer cell (a rule in --verbose) ends in "…": report.md has it whole
UNWRAPPED = 10_000  # the width of text that is not for a terminal: no line is ever wrapped
# a verdict word: ending a line ("tanh/f32: PASS", "=== ...: FAIL ==="), starting one ("FAIL a vs b: ..."), or
# "(FAILED: ...)"; never inside a sentence ("an outcome FAIL here says ...")
_VERDICT = re.compile(r"^(FAIL)\b|\b(PASS|FAIL)(?=(?: ===)?$)|\((FAILED):")
# rich's SIMPLE_HEAD with an ASCII rule under the header: the text stays ASCII, for any stdout encoding
_HEAD_RULE = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)
_STYLE = {"PASS": "bold green", "pass": "green", "FAIL": "bold red", "FAILED": "bold red"}


def _marked(line: str, style: str = "") -> Text:
    """``line`` with its verdict words coloured."""
    text = Text(line, style=style)
    for match in _VERDICT.finditer(line):
        group = next(g for g in range(1, 4) if match.group(g))
        text.stylize(_STYLE[match.group(group)], match.start(group), match.end(group))
    return text


def _finding(prefix: str, line: str) -> Text:
    """A finding after its bullet (``"* "``, ``"* run: "``): a finding's leading FAIL is a verdict word too."""
    return Text(prefix).append_text(_marked(line))


def rich_table(table: Table) -> RichTable:
    """One of ``_tables``' tables as a rich table: first column left, numbers right, a result column coloured."""
    out = RichTable(title=Text(table.title, style="bold"), title_justify="left", box=_HEAD_RULE,
                    pad_edge=False, show_edge=False, header_style="bold", padding=(0, 1, 0, 0))
    for i, name in enumerate(table.header):
        out.add_column(name, justify="left" if i == 0 else "right", max_width=MAX_CELL, no_wrap=True,
                       overflow="ellipsis")
    for row in table.rows:
        out.add_row(*(Text(cell, style=_STYLE.get(cell, "")) for cell in row))
    return out


def _run(run, data, checks: str = "judged") -> list:
    tables = run_tables(run, data)
    if checks == "judged":  # the terminal shows judged checks and the separation point; the files have all
        t = tables[-1]
        t.rows = [row for row, c in zip(t.rows, run.parity.checks) if c.judged or c.quantity == "step_losses"]
    head = _marked(f"=== {run.config.label}: {run.parity.verdict.upper()} ===", "bold")
    return [head, *(rich_table(t) for t in tables), *(_finding("* ", s) for s in findings(run, data))]


def _experiment(experiment, verbose: bool) -> list:
    s = experiment.settings
    parts = [Text(f"fluxparity compare: {len(experiment.data.train_x)} train / {len(experiment.data.test_x)} test "
                  f"sequences{_own_words(experiment)}, {s['epochs']} "
                  f"epochs, {training_words(s, 'lr {:g}')}, seed {s['seed']}, backends {', '.join(s['backends'])}")]
    for name, why in experiment.skipped.items():
        parts.append(Text(f"{name} not run: {why}", style="yellow"))
    if verbose:
        parts += [part for run in experiment.runs for part in _run(run, experiment.data)]
    else:
        parts += [rich_table(t) for t in summary_tables(experiment)]
        parts.append(Group(*(_marked(line) for run in experiment.runs for line in verdict_lines(run, experiment.data))))
        parts.append(Group(*(_finding(f"* {_short(run.config.label)}: ", line) for run in experiment.runs
                             for line in findings(run, experiment.data, separation=False))))
    parts.append(_marked(f"Overall verdict: {experiment.verdict.upper()}", "bold"))
    return parts


def format_experiment(experiment, verbose: bool = False, terminal: Optional[TextIO] = None) -> str:
    """One screen: every run side by side, then each run's verdict. ``verbose``: every table of every run.

    ``terminal``: the stream the text is for; when it is a colour terminal
    (:func:`fluxparity._console.colour_terminal`) the text is coloured and fits its width. Otherwise plain.
    """
    colour = terminal is not None and colour_terminal(terminal)
    width = Console(file=terminal).width if colour else UNWRAPPED
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=colour, no_color=not colour,
                      color_system="standard" if colour else None, highlight=False, markup=False, emoji=False,
                      legacy_windows=False)
    for i, part in enumerate(_experiment(experiment, verbose)):
        if i:
            console.print()
        console.print(part, soft_wrap=isinstance(part, Text))
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n"))

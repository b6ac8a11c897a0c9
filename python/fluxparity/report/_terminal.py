"""The side-by-side report printed at the end of ``fluxparity compare``."""

from __future__ import annotations

from ._tables import Table, findings, run_tables, summary_tables, verdict_lines, _short


def format_table(table: Table, max_rule: int = 40) -> str:
    rows = [table.header] + [[cell if len(cell) <= max_rule else cell[: max_rule - 1] + "…" for cell in row]
                             for row in table.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(table.header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([table.title, fmt(rows[0]), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows[1:])])


def format_run(run, data, checks: str = "judged") -> str:
    tables = run_tables(run, data)
    if checks == "judged":  # the terminal shows judged checks and the separation point; the files have all
        t = tables[-1]
        t.rows = [row for row, c in zip(t.rows, run.parity.checks) if c.judged or c.quantity == "step_losses"]
    head = f"=== {run.config.label}: {run.parity.verdict.upper()} ==="
    return "\n\n".join([head, *(format_table(t) for t in tables), "\n".join("* " + s for s in findings(run, data))])


def format_experiment(experiment, verbose: bool = False) -> str:
    """One screen: every run side by side, then each run's verdict. ``verbose``: every table of every run."""
    s = experiment.settings
    parts = [f"fluxparity compare: {s['samples']} train / {2 * s['samples']} test sequences, {s['epochs']} epochs, "
             f"lr {s['lr']:g}, seed {s['seed']}, backends {', '.join(s['backends'])}"]
    for name, why in experiment.skipped.items():
        parts.append(f"{name} not run: {why}")
    if verbose:
        parts += [format_run(run, experiment.data) for run in experiment.runs]
    else:
        parts += [format_table(t) for t in summary_tables(experiment)]
        parts.append("\n".join(line for run in experiment.runs for line in verdict_lines(run, experiment.data)))
        parts.append("\n".join(f"* {_short(run.config.label)}: {line}" for run in experiment.runs
                               for line in findings(run, experiment.data, separation=False)))
    parts.append(f"Overall verdict: {experiment.verdict.upper()}")
    return "\n\n".join(parts)

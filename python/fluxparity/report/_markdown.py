"""report.md: the same tables as the terminal report, every check included, as Markdown."""

from __future__ import annotations

from ._tables import Table, findings, run_tables, training_words


def _md_table(table: Table) -> str:
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    lines = [f"### {table.title}", "", "| " + " | ".join(map(esc, table.header)) + " |",
             "|" + "|".join("---" for _ in table.header) + "|"]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in table.rows]
    return "\n".join(lines)


def _own_words(experiment) -> str:
    """For a run beyond the tutorial's: its model, data, loss and batches (the tutorial's header stays as it was)."""
    run = experiment.runs[0].config
    if experiment.data.source == "sum" and run.loss == "abs_sum" and run.batch_size == 1 and not run.shuffle:
        return ""
    return (f" of {experiment.data.source}, model {run.to_dict()['model']} read at {run.readout!r}, loss {run.loss}, "
            f"batch {run.batch_size}{' shuffled' if run.shuffle else ''}")


def experiment_markdown(experiment) -> str:
    s = experiment.settings
    out = [f"# fluxparity report: {experiment.verdict.upper()}", "",
           f"{len(experiment.data.train_x)} training and {len(experiment.data.test_x)} test sequences"
           f"{_own_words(experiment)}, {s['epochs']} epochs, "
           f"{training_words(s, 'learning rate {}')}, seed {s['seed']}. Backends: {', '.join(s['backends'])}.", ""]
    for name, why in experiment.skipped.items():
        out += [f"*{name} was not run:* {why}", ""]
    out += ["Versions: " + ", ".join(f"{k} {v}" for k, v in experiment.versions.items() if k != "backends"), ""]
    for run in experiment.runs:
        out += [f"## {run.config.label}: {run.parity.verdict.upper()}", ""]
        out += ["\n\n".join(_md_table(t) for t in run_tables(run, experiment.data)), ""]
        out += [f"- {line}" for line in findings(run, experiment.data)] + [""]
    out += ["How to read the checks: docs/parity.md. Curves: loss_curves.png. Every number: report.json.", ""]
    return "\n".join(out)

"""report.json: a self-contained record of an experiment (settings, versions, data, every run).

The contract is docs/report-format.md: ``schema_version`` 2 (this writer); :func:`read_report` also reads
version 1 (the tutorial-shaped report before run descriptions) and brings it to version 2's field names.
"""

from __future__ import annotations

import json
import math

from ..models import flat_params

REPORT_SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


def finite_json(value):
    """JSON has no NaN/Infinity; a diverged run writes null instead of invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def _separations(run) -> dict:
    """Per backend pair ``"a vs b"``: the first step whose loss breaks the step-loss rule, or None."""
    return {f"{c.a} vs {c.b}": c.first_divergent_step for c in run.parity.checks if c.quantity == "step_losses"}


def experiment_to_dict(experiment) -> dict:
    return finite_json({
        "schema_version": REPORT_SCHEMA_VERSION,
        "verdict": experiment.verdict,
        "config": experiment.settings,
        "versions": experiment.versions,
        "skipped_backends": experiment.skipped,
        "data": experiment.data.to_dict(),
        "runs": [
            {
                **run.config.to_dict(),
                "activation": run.config.notes.get("activation"),
                "lr": run.config.lr,
                "first_separating_step": _separations(run),
                "initial_params": {k: v.tolist() for k, v in flat_params(run.initial_params).items()},
                "backends": {name: result.to_dict() for name, result in run.results.items()},
                "parity": run.parity.to_dict(),
            }
            for run in experiment.runs
        ],
    })


def _upgrade_v1(report: dict) -> dict:
    """A version-1 report with version 2's run fields (the values a version-1 run implied)."""
    out = dict(report)
    runs = []
    for run in report.get("runs", []):
        r = dict(run)
        shorthand, hidden = r.get("model", "rnn"), r.get("hidden", 1)
        r["notes"] = {"activation": r.get("activation"), "model": shorthand, "hidden": hidden}
        r["label"] = (f"{r.get('activation')}/{r.get('dtype')}" if (shorthand, hidden) == ("rnn", 1)
                      else f"{shorthand}-h{hidden}/{r.get('activation')}/{r.get('dtype')}")
        r.update(model=None, readout="last", loss="abs_sum", batch_size=1, shuffle=False, seed=report.get(
            "config", {}).get("seed"), steps_per_epoch=len(report.get("data", {}).get("train_labels", [])))
        checks = r.get("parity", {}).get("checks", [])
        r["first_separating_step"] = {f"{c['a']} vs {c['b']}": c.get("first_divergent_step")
                                      for c in checks if c.get("quantity") == "step_losses"}
        runs.append(r)
    out["runs"] = runs
    out["data"] = {"source": "sum", **report.get("data", {})}
    out["read_from_schema_version"] = 1
    out["schema_version"] = REPORT_SCHEMA_VERSION
    return out


def read_report(path) -> dict:
    """A report.json of any readable version as a version-2 dict (see docs/report-format.md). A version-1
    report's runs gain ``label``, ``loss``, ``readout``, ``batch_size``, ``shuffle``, ``seed``,
    ``steps_per_epoch``, ``notes`` and ``first_separating_step`` (``model`` is None: version 1 named the
    shorthand only, now in ``notes``); ``read_from_schema_version`` says it was upgraded. Raises ValueError
    for a version this reader does not know."""
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    version = report.get("schema_version") if isinstance(report, dict) else None
    if version not in READABLE_VERSIONS:
        raise ValueError(f"{path}: report schema_version {version!r} is not one of {READABLE_VERSIONS}")
    return _upgrade_v1(report) if version == 1 else report

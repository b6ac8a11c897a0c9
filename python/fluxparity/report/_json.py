"""report.json: a self-contained record of an experiment (config, versions, data, every run).

Contract (names kept stable): top level ``config``, ``versions``, ``data``, ``runs``; each run has
``activation``, ``dtype``, ``initial_params``, ``backends`` (name -> result) and ``parity``.
"""

from __future__ import annotations

import math

from ..models import flat_params

REPORT_SCHEMA_VERSION = 1


def finite_json(value):
    """JSON has no NaN/Infinity; a diverged run writes null instead of invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


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
                "activation": run.config.activation,
                "dtype": run.config.dtype,
                "epochs": run.config.epochs,
                "lr": run.config.lr if run.config.optimizer is None else None,
                "optimizer": run.config.to_dict()["optimizer"],
                "model": run.config.model,
                "hidden": run.config.hidden,
                "initial_params": {k: v.tolist() for k, v in flat_params(run.initial_params).items()},
                "backends": {name: result.to_dict() for name, result in run.results.items()},
                "parity": run.parity.to_dict(),
            }
            for run in experiment.runs
        ],
    })

"""read_report upgrades a version-1 report.json as docs/report-format.md says: the label and notes from the
shorthand the run recorded (or the tutorial's RNN(1 => 1) when it recorded none: version-1 reports written
before ``--model``), the first separating step from the step-loss check; a file that is not a report is refused."""

import copy
import json
from pathlib import Path

import pytest

from fluxparity.report._json import read_report

V1 = json.loads((Path(__file__).parent / "data" / "report_v1" / "report.json").read_text())


def read(tmp_path, report):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return read_report(path)


def test_a_version_1_shorthand_run_is_labelled_by_its_model_hidden_size_and_activation(tmp_path):
    old = copy.deepcopy(V1)
    old["runs"][0].update(model="lstm", hidden=2, activation="gated")
    run = read(tmp_path, old)["runs"][0]
    assert run["label"] == "lstm-h2/gated/float32"
    assert run["notes"] == {"activation": "gated", "model": "lstm", "hidden": 2} and run["model"] is None


def test_a_version_1_run_without_model_or_hidden_is_the_tutorials_rnn_with_one_unit(tmp_path):
    old = copy.deepcopy(V1)
    for run in old["runs"]:
        del run["model"], run["hidden"]
    runs = read(tmp_path, old)["runs"]
    assert [r["label"] for r in runs] == ["identity/float32", "identity/float64"]
    assert all(r["notes"] == {"activation": "identity", "model": "rnn", "hidden": 1} for r in runs)


def test_a_version_1_runs_first_separating_step_is_its_step_loss_checks(tmp_path):
    old = copy.deepcopy(V1)
    checks = old["runs"][0]["parity"]["checks"]
    assert [c["quantity"] for c in checks][0] == "step_losses[epoch 1]" and checks[-1]["quantity"] == "final_params"
    for c in checks:  # every other check of the pair names another step
        c["first_divergent_step"] = {"step_losses": 14}.get(c["quantity"], 3)
    pair = f"{checks[0]['a']} vs {checks[0]['b']}"
    assert read(tmp_path, old)["runs"][0]["first_separating_step"] == {pair: 14}


@pytest.mark.parametrize("content", [[1, 2], "report", 1])
def test_a_json_file_that_is_not_a_report_is_refused_by_name(tmp_path, content):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"report.json: report schema_version None is not one of \(1, 2\)"):
        read_report(path)

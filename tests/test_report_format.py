"""report.json's contract (docs/report-format.md): version 2 is written, version 1 is still read."""

import json
from pathlib import Path

import pytest
from report_files_support import pinned_experiment

from fluxparity.report import write_reports
from fluxparity.report._json import REPORT_SCHEMA_VERSION, read_report

DATA = Path(__file__).parent / "data"
V1 = DATA / "report_v1" / "report.json"
V2 = DATA / "report_files" / "report.json"
RESULT_FIELDS = ("step_losses", "epoch_train_loss", "epoch_test_loss", "train_loss_before", "test_loss_before",
                 "test_loss_after", "final_params", "probe_predictions")
RUN_FIELDS = ("label", "model", "readout", "loss", "optimizer", "dtype", "epochs", "batch_size", "shuffle", "seed",
              "steps_per_epoch", "notes", "activation", "lr", "first_separating_step", "initial_params", "backends",
              "parity")


def test_the_writer_writes_version_2_with_every_documented_run_field(tmp_path):
    write_reports(pinned_experiment(), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["schema_version"] == REPORT_SCHEMA_VERSION == 2
    doc = (Path(__file__).parents[1] / "docs" / "report-format.md").read_text()
    for run in report["runs"]:
        assert tuple(run) == RUN_FIELDS
        for field in RUN_FIELDS + RESULT_FIELDS:
            assert f"`{field}`" in doc, f"docs/report-format.md does not document {field}"
        assert run["model"] == "Chain(RNN(1 => 1, identity))" and run["first_separating_step"] == {
            "reference vs again": None}
    for key in ("source", "n_train", "n_test", "input_size", "output_size", "targets", "probe_names"):
        assert key in report["data"] and f"`{key}`" in doc


def test_a_version_1_report_is_read_with_version_2_field_names_and_the_same_numbers():
    old, new = read_report(V1), read_report(V2)
    assert json.loads(V1.read_text())["schema_version"] == 1
    assert old["schema_version"] == 2 and old["read_from_schema_version"] == 1 and "read_from_schema_version" not in new
    assert [r["label"] for r in old["runs"]] == [r["label"] for r in new["runs"]] == ["identity/float32",
                                                                                      "identity/float64"]
    for a, b in zip(old["runs"], new["runs"]):
        for key in ("loss", "readout", "batch_size", "shuffle", "seed", "steps_per_epoch", "dtype", "epochs",
                    "initial_params", "first_separating_step", "activation"):
            assert a[key] == b[key], key
        assert a["model"] is None and a["notes"] == {"activation": "identity", "model": "rnn", "hidden": 1}
        for name in b["backends"]:
            for field in RESULT_FIELDS:
                assert a["backends"][name][field] == b["backends"][name][field], (name, field)
        assert a["parity"] == b["parity"]
    for key in ("train_sequences", "train_labels", "test_sequences", "test_labels", "probes"):
        assert old["data"][key] == new["data"][key]
    assert old["data"]["source"] == "sum"


def test_an_unknown_version_is_refused_by_name(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"schema_version": 3}))
    with pytest.raises(ValueError, match=r"schema_version 3 is not one of \(1, 2\)"):
        read_report(path)

"""benchmarks/measure_optimisers.py runs end to end on a few steps, prints its table and writes its JSON."""

import json
import subprocess
import sys
from pathlib import Path

from fluxparity.optim._trajectory import CASES

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "measure_optimisers.py"


def test_measure_optimisers_prints_a_row_per_rule_and_writes_json(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--steps", "2", "--problem", "tutorial", "--dtype", "float64",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tutorial, float64, 2 steps" in done.stdout
    rows = json.loads(out.read_text())
    assert [r["case"] for r in rows] == list(CASES)
    assert all(r["ours_max_abs_diff"] == 0 for r in rows)
    by_case = {r["case"]: r for r in rows}
    assert by_case["Rprop"]["forced_budgets"] == 0 and by_case["Lion"]["torch_exact"] is None
    assert "forced_budgets" not in by_case["AccumGrad"]


def test_measure_optimisers_refuses_a_bad_step_count(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--steps", "0"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode != 0 and "--steps must be >= 1, got 0" in done.stderr
    assert list(tmp_path.iterdir()) == []

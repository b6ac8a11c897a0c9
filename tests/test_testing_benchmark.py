"""benchmarks/parity_assert.py (hooked into benchmarks/run.py) reports assert_parity's cost over bare torch."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "parity_assert.py"


def test_quick_run_reports_the_ratio(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json"], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    for key in ("assert_parity_seconds", "assert_parity_bare_torch_seconds", "assert_parity_over_bare_torch"):
        assert isinstance(result[key], float) and result[key] > 0
    assert "LSTM(32 => 128)" in result["assert_parity_case"]
    assert not list(tmp_path.iterdir())

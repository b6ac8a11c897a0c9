"""julia/optimisers.jl: the same rule names and fields as fluxparity.optim (checked without Julia), and, with
Julia, dicts -> Optimisers.jl rules -> dicts round trips and Optimisers.jl's own update against the reference."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest

from fluxparity import juliaprobe
from fluxparity.optim import RULE_NAMES, ReferenceOptimiser, defaults, from_dict, parse_spec, to_julia
from fluxparity.optim._trajectory import CASES
from julia_support import julia_with_repository_project  # noqa: F401  (fixture)

ROOT = juliaprobe.repository_root()
SOURCE = (ROOT / "julia" / "optimisers.jl").read_text(encoding="utf-8")


def julia_field_table() -> dict[str, tuple[str, ...]]:
    body = SOURCE[SOURCE.index("const OPTIMISERS_RULE_FIELDS"):]
    body = body[: body.index("\n)\n")]
    return {name: tuple(re.findall(r":(\w+)", fields)) for name, fields in re.findall(r'"(\w+)" => \(([^)]*)\)', body)}


def test_julia_field_table_matches_the_python_descriptions():
    assert julia_field_table() == {name: tuple(defaults(name)) for name in RULE_NAMES}


def test_julia_builds_every_rule_by_its_optimisers_name():
    built = set(re.findall(r"Optimisers\.(\w+)\(", SOURCE))
    assert built == set(RULE_NAMES)


def test_every_rule_is_listed_in_julia_names_doc():
    doc = (ROOT / "docs" / "julia-names.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Optimisers rules (julia/optimisers.jl)"):]
    for name in RULE_NAMES:
        assert f"`Optimisers.{name}" in section, name


X0 = [0.5, -1.0, 2.0, 0.25]
GRADS = [[0.3, -2.0, 1e-4, 0.0], [-0.1, -1.0, 3e-4, 5.0], [0.2, 0.7, -3e-4, 4.0]] * 3


def julia_script(dtype: str) -> str:
    lines = [f'include({json.dumps(str(ROOT / "julia" / "optimisers.jl"))})', "import Optimisers",
             "function run_case(d, T, x0, gs)",
             "    rule = optimisers_rule(d)",
             "    x = T.(x0)",
             "    state = Optimisers.setup(rule, x)",
             "    for g in gs",
             "        state, x = Optimisers.update(state, x, T.(g))",
             "    end",
             "    return x",
             "end"]
    T = {"float64": "Float64", "float32": "Float32"}[dtype]
    cast = (lambda v: float(np.float32(v))) if dtype == "float32" else float
    x0 = "[" + ", ".join(repr(cast(v)) for v in X0) + "]"
    gs = "[" + ", ".join("[" + ", ".join(repr(cast(v)) for v in g) + "]" for g in GRADS) + "]"
    for spec in CASES.values():
        d = to_julia(parse_spec(spec))
        lines.append(f"println(rule_json(describe_rule(optimisers_rule({d}))))")
        lines.append(f'println(join(repr.(Float64.(run_case({d}, {T}, {x0}, {gs}))), " "))')
    return "\n".join(lines) + "\n"


@pytest.mark.julia
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optimisers_jl_agrees_with_the_reference(julia_with_repository_project, tmp_path, dtype):  # noqa: F811
    script = tmp_path / "optimisers_check.jl"
    script.write_text(julia_script(dtype), encoding="utf-8")
    completed = subprocess.run([julia_with_repository_project, "--startup-file=no", f"--project={ROOT}", str(script)],
                               capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    out = completed.stdout.splitlines()
    assert len(out) == 2 * len(CASES)
    np_dtype = np.dtype(dtype)
    for (case, spec), described, values in zip(CASES.items(), out[0::2], out[1::2]):
        rule = parse_spec(spec)
        assert from_dict(json.loads(described)) == rule, case
        opt = ReferenceOptimiser(rule, {"x": np.array(X0, dtype=np_dtype)})
        for g in GRADS:
            opt.step({"x": np.array(g, dtype=np_dtype)})
        julia = np.array([float(v) for v in values.split()], dtype=np_dtype)
        if case == "ClipNorm":  # LinearAlgebra.norm's summation order may move the norm by an ulp
            np.testing.assert_allclose(julia, opt.params["x"], rtol=8 * np.finfo(np_dtype).eps, atol=0)
        else:
            np.testing.assert_array_equal(julia, opt.params["x"], err_msg=case)

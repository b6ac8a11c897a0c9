"""Rule descriptions: Optimisers.jl v0.4.8 names, fields and defaults; the spec grammar; the dict form."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from fluxparity.optim import RULE_NAMES, defaults, from_dict, parse_spec, rule, to_dict

# Read off Optimisers.jl v0.4.8 src/rules.jl by hand (docs/julia-names.md has the lines).
OPTIMISERS_DEFAULTS = {
    "Descent": {"eta": float(np.float32(0.1))},  # the Float32 literal 1f-1
    "Momentum": {"eta": 0.01, "rho": 0.9},
    "Nesterov": {"eta": 0.001, "rho": 0.9},
    "RMSProp": {"eta": 0.001, "rho": 0.9, "epsilon": 1e-8, "centred": False},
    "Rprop": {"eta": 1e-3, "ell": (0.5, 1.2), "gamma": (1e-6, 50.0)},
    "Adam": {"eta": 0.001, "beta": (0.9, 0.999), "epsilon": 1e-8},
    "Lion": {"eta": 0.001, "beta": (0.9, 0.999)},
    "RAdam": {"eta": 0.001, "beta": (0.9, 0.999), "epsilon": 1e-8},
    "AdaMax": {"eta": 0.001, "beta": (0.9, 0.999), "epsilon": 1e-8},
    "AdaGrad": {"eta": 0.1, "epsilon": 1e-8},
    "AdaDelta": {"rho": 0.9, "epsilon": 1e-8},
    "AMSGrad": {"eta": 0.001, "beta": (0.9, 0.999), "epsilon": 1e-8},
    "NAdam": {"eta": 0.001, "beta": (0.9, 0.999), "epsilon": 1e-8},
    "AdamW": {"eta": 0.001, "beta": (0.9, 0.999), "lambda": 0.0, "epsilon": 1e-8, "couple": True},
    "AdaBelief": {"eta": 0.001, "beta": (0.9, 0.999), "epsilon": 1e-16},
    "WeightDecay": {"lambda": 5e-4},
    "SignDecay": {"lambda": 1e-3},
    "ClipGrad": {"delta": 10.0},
    "ClipNorm": {"omega": 10.0, "p": 2.0, "throw": True},
    "OptimiserChain": {"opts": ()},
    "AccumGrad": {"n": None},
}


def test_every_rule_of_the_issue_is_described_with_optimisers_defaults():
    assert set(RULE_NAMES) == set(OPTIMISERS_DEFAULTS)
    for name, expected in OPTIMISERS_DEFAULTS.items():
        assert defaults(name) == expected, name


def test_issue_examples_parse():
    r = parse_spec("momentum:eta=0.01,rho=0.9")
    assert (r.name, r["eta"], r["rho"]) == ("Momentum", 0.01, 0.9)
    chain = parse_spec("chain:clipnorm=1,adamw")
    assert [o.name for o in chain["opts"]] == ["ClipNorm", "AdamW"]
    assert chain["opts"][0]["omega"] == 1.0 and chain["opts"][1] == rule("AdamW")


def test_brackets_keep_commas_inside_pairs_and_members():
    r = parse_spec("chain:clipgrad=0.5, adamw(eta=1e-3,beta=(0.8,0.99),couple=false), accumgrad=4")
    clip, adamw, accum = r["opts"]
    assert clip["delta"] == 0.5
    assert adamw["beta"] == (0.8, 0.99) and adamw["couple"] is False and adamw["lambda"] == 0.0
    assert accum["n"] == 4
    assert parse_spec("ADAM:beta=(0.5,0.6)")["beta"] == (0.5, 0.6)
    assert parse_spec("rmsprop:centred=true")["centred"] is True


@pytest.mark.parametrize("spec, words", [
    ("", ["empty optimizer spec"]),
    ("adamm", ["unknown rule 'adamm'", "allowed:", "adam"]),
    ("momentum:eta", ["'eta' is not name=value"]),
    ("momentum:lr=0.1", ["Momentum has no field 'lr'", "fields: eta, rho"]),
    ("momentum:eta=fast", ["Momentum.eta='fast' is not a number"]),
    ("momentum:eta=-1", ["cannot be negative"]),
    ("adam:beta=0.9", ["is not a pair like (0.9,0.999)"]),
    ("adam:beta=(0.9,0.99", ["unbalanced '('"]),
    ("rmsprop:centred=yes", ["is not true or false"]),
    ("chain:", ["needs at least one member"]),
    ("chain:adam,,descent", ["empty item between commas"]),
    ("chain:chain", ["cannot be a chain"]),
    ("chain:accumgrad", ["AccumGrad needs n"]),
    ("chain:accumgrad=0,adam", ["AccumGrad.n must be a whole number >= 1"]),
    ("clipnorm:p=3", ["ClipNorm.p must be 1, 2 or Inf"]),
    ("momentum:eta=1,eta=2", ["given twice"]),
])
def test_bad_specs_fail_with_one_line_naming_the_bad_part(spec, words):
    with pytest.raises(ValueError) as err:
        parse_spec(spec)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_dict_form_round_trips_through_json():
    for spec in ["descent", "rmsprop:centred=true", "chain:clipnorm=1,adamw(lambda=0.1,couple=false)",
                 "rprop:ell=(0.4,1.1)", "chain:accumgrad=3,weightdecay=0.01,nesterov"]:
        r = parse_spec(spec)
        d = json.loads(json.dumps(to_dict(r)))
        assert from_dict(d) == r
    assert to_dict(parse_spec("momentum:eta=0.5")) == {"rule": "Momentum", "eta": 0.5, "rho": 0.9}


def test_from_dict_refuses_unknown_rules_and_fields():
    with pytest.raises(ValueError, match="unknown Optimisers.jl rule 'Adamw'"):
        from_dict({"rule": "Adamw"})
    with pytest.raises(ValueError, match="AdamW has no field 'weight_decay'"):
        from_dict({"rule": "AdamW", "weight_decay": 0.1})
    with pytest.raises(ValueError, match="needs a 'rule' key"):
        from_dict({"eta": 0.1})


def test_replace_is_adjust_and_keeps_the_checks():
    r = rule("Momentum").replace(eta=0.5)
    assert (r["eta"], r["rho"]) == (0.5, 0.9)
    with pytest.raises(ValueError, match="cannot be negative"):
        r.replace(eta=-0.1)
    assert math.isinf(rule("ClipNorm", p=math.inf)["p"])


def test_importing_the_package_and_the_reference_does_not_import_torch():
    code = ("import sys, fluxparity.optim as o, numpy as np; r = o.parse_spec('adam');"
            "o.update(r, o.setup(r, {'x': np.ones(2)}), {'x': np.ones(2)}, {'x': np.ones(2)});"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)

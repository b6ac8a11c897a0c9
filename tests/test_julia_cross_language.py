"""Static checks across the Python/Julia boundary, with no Julia: julia/*.jl read by a real Julia parser (fatou's
JuliaSyntax projection, tests/fake_julia/julia_syntax.py), Python read by ``ast``.

- Every Julia function Python calls (the Flux worker's ``train_chain``, the rule it builds with
  ``optimisers_rule``, the scripts the tests hand to Julia: ``record_golden``, ``rule_json``…) is defined in
  julia/*.jl, with the positional parameters Python passes, in Python's order, and the keywords it uses.
- Every Flux struct field julia/*.jl reads or writes is a field of that struct in Flux 0.16
  (tests/data/flux_fields.toml: names, order, source lines); each file name is paired with its own field
  (``cell.Wh_htilde`` with ``Wh_h̃``); the cells and Dense are built with their fields in Flux's order.
- The layers' arrays and activations are the same lists in both languages.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest

from fluxparity import juliaprobe, models
from fluxparity.backends import _flux_worker
from fluxparity.optim import rule, to_dict
from fake_julia import julia_syntax as js
from fake_julia.julia_syntax import Node

pytestmark = pytest.mark.skipif(js.fatou() is None, reason="fatou is not installed (it is in the test extra)")

ROOT = juliaprobe.repository_root()
JULIA = ROOT / "julia"
JULIA_FILES = sorted(JULIA.glob("*.jl"))
FLUX_FACTS = tomllib.loads((Path(__file__).parent / "data" / "flux_fields.toml").read_text(encoding="utf-8"))
STRUCTS = {name: tuple(fact["fields"]) for name, fact in FLUX_FACTS["structs"].items()}
FLUX_SOURCE = Path("/work/juliasrc/Flux")
MODULES = ("Flux", "NPZ", "Optimisers", "Zygote", "Base", "FluxParity", "FluxParityGolden", "FluxParityWeights")
# The file's ASCII spelling of a Flux field (docs/golden-format.md): GRUv3Cell's `Wh_h̃` is `Wh_htilde`.
ASCII = {"Wh_h̃": "Wh_htilde"}


def all_definitions() -> dict[str, dict[str, list]]:
    found: dict[str, dict[str, list]] = {}
    for path in JULIA_FILES:
        for module, functions in js.definitions(path).items():
            for name, methods in functions.items():
                known = found.setdefault(module, {}).setdefault(name, [])
                known.extend(m for m in methods if m not in known)  # tutorial.jl includes FluxParity.jl
    return found


# ---------------------------------------------------------------------------------------------------
# Functions Python calls
# ---------------------------------------------------------------------------------------------------


def _julia_calls_in_python(path: Path):
    """``(module, function, call node, enclosing function)`` for each ``<x>.<Module>.<function>(...)`` call in a
    Python file, <Module> one of julia/*.jl's modules (what a juliacall ``Main`` attribute call looks like)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in MODULES):
                yield node.func.value.attr, node.func.attr, node, function, tree


def _string_keys(expression, function, tree) -> list[str]:
    """What a Python expression passes, by name: ``x`` → ["x"]; ``request["k"]`` (maybe inside ``int(...)``)
    → ["k"]; a name bound in the function to a tuple of those, or a module constant tuple of strings → their
    names, in order."""
    while isinstance(expression, ast.Call) and len(expression.args) == 1:  # int(...), float(...), list(...)
        expression = expression.args[0]
    if isinstance(expression, ast.Subscript) and isinstance(expression.slice, ast.Constant):
        return [expression.slice.value]
    if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
        return [expression.value]
    if isinstance(expression, ast.Tuple):
        return [key for elt in expression.elts for key in _string_keys(elt, function, tree)]
    if isinstance(expression, (ast.ListComp, ast.GeneratorExp)):  # [f(x) for name in CONSTANT]
        return _string_keys(expression.generators[0].iter, function, tree)
    if isinstance(expression, ast.Name):
        for scope in (function, tree):
            for node in ast.walk(scope):
                if not isinstance(node, ast.Assign):
                    continue
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == expression.id and isinstance(
                            node.value, (ast.Tuple, ast.ListComp)):
                        return _string_keys(node.value, function, tree)
                    if (isinstance(target, ast.Tuple) and expression.id in [getattr(t, "id", None) for t in target.elts]
                            and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)):
                        # a, b, c = helper(...): the helper's returned tuple, at the same place
                        index = [getattr(t, "id", None) for t in target.elts].index(expression.id)
                        helper = next(f for f in tree.body if isinstance(f, ast.FunctionDef)
                                      and f.name == node.value.func.id)
                        returned = next(n.value for n in ast.walk(helper) if isinstance(n, ast.Return))
                        return _string_keys(returned.elts[index], helper, tree)
        return [expression.id]
    raise AssertionError(f"cannot tell what {ast.unparse(expression)} passes")


def _keywords(call: ast.Call, function) -> set[str]:
    """The keyword names of a call, ``**options`` resolved to the keys ``options`` is built with in the function
    (its dict display and every ``options["k"] = ...``)."""
    names = set()
    for keyword in call.keywords:
        if keyword.arg is not None:
            names.add(keyword.arg)
            continue
        assert isinstance(keyword.value, ast.Name), ast.unparse(keyword.value)
        for node in ast.walk(function):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == keyword.value.id and isinstance(node.value,
                                                                                                      ast.Dict):
                        names.update(k.value for k in node.value.keys)
                    if (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                            and target.value.id == keyword.value.id):
                        names.add(target.slice.value)
    return names


PYTHON_CALLERS = sorted((ROOT / "python" / "fluxparity").rglob("*.py"))


def test_python_calls_julia_functions_with_their_parameters_in_order():
    definitions = all_definitions()
    checked = []
    for path in PYTHON_CALLERS:
        for module, name, call, function, tree in _julia_calls_in_python(path):
            methods = definitions.get(module, {}).get(name)
            assert methods, f"{path.name} calls {module}.{name}, which julia/*.jl does not define"
            passed = [key for arg in call.args
                      for key in _string_keys(arg.value if isinstance(arg, ast.Starred) else arg, function, tree)]
            keywords = _keywords(call, function)
            fitting = [m for m in methods if m.positional_names == tuple(passed) and set(keywords) <= set(m.keyword_names)]
            assert fitting, (f"{path.name} calls {module}.{name}({', '.join(passed)}; {', '.join(sorted(keywords))}); "
                             f"Julia defines {[(m.positional_names, m.keyword_names) for m in methods]}")
            checked.append(name)
    assert "train_chain" in checked  # the worker's call was found and checked


def _check_calls_in_julia(tree: Node, definitions, where: str) -> list[str]:
    """Every call in ``tree`` of a function julia/*.jl defines (``name(...)`` or ``Module.name(...)``) fits one of
    its methods: positional count and keyword names. Returns the names checked."""
    project = {name: methods for functions in definitions.values() for name, methods in functions.items()}
    signatures = set()
    for node in js.walk(tree):
        if node.head in ("function", "function-=") and isinstance(node.args[0], Node):
            head = node.args[0]
            while head.head in ("where", "::-i") and isinstance(head.args[0], Node):
                head = head.args[0]
            signatures.add(id(head))
    checked = []
    for node in js.walk(tree):
        if node.head != "call" or id(node) in signatures:
            continue
        callee = node.args[0]
        if isinstance(callee, Node) and callee.head == "." and callee.args[0] in definitions:
            methods = definitions[callee.args[0]].get(callee.args[1])
            assert methods, f"{where} calls {callee.args[0]}.{callee.args[1]}, which is not defined there"
            name = callee.args[1]
        elif isinstance(callee, str) and callee in project:
            methods, name = project[callee], callee
        else:
            continue
        args = [a for a in node.args[1:] if not (isinstance(a, Node) and a.head == "parameters")]
        keywords = [kw.args[0] if isinstance(kw, Node) else kw  # `name = value` or the shorthand `name`
                    for a in node.args[1:] if isinstance(a, Node) and a.head == "parameters" for kw in a.args]
        assert any(m.accepts(len(args), keywords) for m in methods), (
            f"{where}: {name} with {len(args)} positional arguments and keywords {keywords} fits none of "
            f"{[(m.positional_names, m.keyword_names) for m in methods]}")
        checked.append(name)
    return checked


def test_the_rule_source_the_worker_builds_calls_optimisers_rule_as_defined(tmp_path):
    source = _flux_worker.julia_rule_source({"optimizer": to_dict(rule("Momentum", eta=0.01, rho=0.9)), "lr": 0.01})
    checked = _check_calls_in_julia(js.parse_text(source, tmp_path), all_definitions(), "the worker's rule source")
    assert checked == ["optimisers_rule"]


def test_the_julia_scripts_the_tests_run_call_functions_as_defined(tmp_path):
    import test_golden_julia
    import test_optim_julia

    setup, loss, rule_source, _ = next(iter(test_golden_julia.FLUX_MODELS.values()))
    golden_script = test_golden_julia.SCRIPT.format(golden=json.dumps("golden.jl"), path=json.dumps("g.npz"),
                                                    setup=setup, loss=loss, rule=rule_source)
    definitions = all_definitions()
    checked = _check_calls_in_julia(js.parse_text(golden_script, tmp_path), definitions, "test_golden_julia.SCRIPT")
    assert "record_golden" in checked
    checked = _check_calls_in_julia(js.parse_text(test_optim_julia.julia_script("float64"), tmp_path), definitions,
                                    "test_optim_julia.julia_script")
    assert {"optimisers_rule", "describe_rule", "rule_json"} <= set(checked)


def test_julia_files_call_each_others_functions_as_defined():
    definitions = all_definitions()
    checked = []
    for path in JULIA_FILES:
        checked += _check_calls_in_julia(js.parse(path), definitions, path.name)
    assert {"loss", "loss_sum", "build_chain", "training_data", "train_and_evaluate!", "activation_function"} <= set(checked)


# ---------------------------------------------------------------------------------------------------
# Flux's fields
# ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not FLUX_SOURCE.is_dir(), reason="Flux's source is not unpacked at /work/juliasrc/Flux")
def test_the_flux_facts_are_flux_0_16_s():
    # The test data against the source it was read from (where that source is unpacked): the struct starts at
    # the line given and declares exactly these fields, in this order.
    for name, fact in FLUX_FACTS["structs"].items():
        file, lines = fact["source"].split(":")
        first, last = (int(n) for n in lines.split("-"))
        text = (FLUX_SOURCE / file).read_text(encoding="utf-8").splitlines()[first - 1:last]
        assert re.match(rf"struct {name}\b", text[0]), (name, text[0])
        declared = [m.group(1) for line in text[1:] if (m := re.match(r"\s+(\S+)::", line))]
        assert tuple(declared) == STRUCTS[name], name


def _field_reads(tree: Node, definitions) -> list[str]:
    """Fields read with ``x.field`` where x is a value (not a module, not a project function's result)."""
    project = {name for functions in definitions.values() for name in functions}
    out = []
    for node in js.walk(tree):
        if node.head == "." and len(node.args) == 2 and isinstance(node.args[1], str):
            base = node.args[0]
            if isinstance(base, str) and base in MODULES or isinstance(base, Node) and base.head == ".":
                continue
            if isinstance(base, Node) and base.head == "call" and base.args[0] in project:
                continue  # e.g. load_weights(path).model: the project's own NamedTuple
            out.append(node.args[1])
    return out


def _symbol_value(tree, constants):
    """``:name`` or a constant bound to ``:name`` / ``Symbol("name")``: the name, else None."""
    if isinstance(tree, str) and tree in constants:
        tree = constants[tree]
    if js.symbol(tree) is not None:
        return js.symbol(tree)
    if isinstance(tree, Node) and tree.head == "call" and tree.args[0] == "Symbol" and len(tree.args) == 2:
        return js.literal(tree.args[1])
    return None


def _name_field_pairs(path: Path) -> list[tuple[str, str]]:
    """``(name in the file, Flux field)`` pairs a Julia file states: ``("cell.Wi", :Wi)`` tuples and
    ``d[prefix * "cell.Wi"] = Array(c.Wi)`` assignments."""
    constants = js.constants(path)
    pairs = []
    for node in js.walk(js.parse(path)):
        if node.head == "tuple-p" and len(node.args) == 2 and js.literal(node.args[0]) is not None:
            field = _symbol_value(node.args[1], constants)
            if field is not None:
                pairs.append((js.literal(node.args[0]), field))
        if node.head == "=" and isinstance(node.args[0], Node) and node.args[0].head == "ref":
            key, value = node.args[0].args[1], node.args[1]
            names = [js.literal(a) for a in js.walk(key) if js.literal(a)]
            if (names and isinstance(value, Node) and value.head == "call" and value.args[0] == "Array"
                    and isinstance(value.args[1], Node) and value.args[1].head == "."):
                pairs.append((names[-1], value.args[1].args[1]))
    return pairs


def test_every_field_the_julia_code_reads_is_a_flux_field():
    fields = {f for names in STRUCTS.values() for f in names}
    definitions = all_definitions()
    for path in JULIA_FILES:
        if path.name == "optimisers.jl":  # Optimisers.jl's rule fields: tests/test_optim_julia.py
            continue
        for field in _field_reads(js.parse(path), definitions):
            assert field in fields, f"{path.name} reads .{field}, which no Flux 0.16 struct here has"
        for _, field in _name_field_pairs(path):
            assert field in fields, f"{path.name} names the field {field!r}, which no Flux 0.16 struct here has"


def test_every_file_name_is_paired_with_its_own_flux_field():
    # The file's name is the field's ASCII spelling: `cell.Wh_htilde` must read GRUv3Cell's `Wh_h̃`, not `Wh`.
    seen = set()
    for path in ("FluxParity.jl", "weights.jl", "golden.jl"):
        pairs = _name_field_pairs(JULIA / path)
        assert pairs, path
        for name, field in pairs:
            assert name.removeprefix("cell.") == ASCII.get(field, field), f"{path}: {name!r} paired with :{field}"
            seen.add((path, field))
    for path in ("FluxParity.jl", "weights.jl", "golden.jl"):
        assert (path, "Wh_h̃") in seen, f"{path} states no pair for GRUv3Cell's Wh_h̃"


def _constructor_argument(arg, constants) -> str | None:
    """The field a constructor argument fills, when the source says: ``arr("cell.Wi")`` / ``entry(d, "...Wi")``,
    ``a[:Wi]``, ``activation_function(...)`` (σ); else None."""
    if isinstance(arg, Node) and arg.head == "call" and arg.args[0] in ("arr", "entry"):
        name = js.literal(arg.args[-1])
        if name is not None:
            name = name.rsplit(".", 1)[-1]
            return next((f for f, a in ASCII.items() if a == name), name)
    if isinstance(arg, Node) and arg.head == "ref":
        return _symbol_value(arg.args[1], constants)
    if isinstance(arg, Node) and arg.head == "call" and arg.args[0] == "activation_function":
        return "σ"
    return None


def test_the_julia_code_builds_flux_structs_with_their_fields_in_order():
    built = set()
    for path in ("FluxParity.jl", "weights.jl"):
        constants = js.constants(JULIA / path)
        for node in js.walk(js.parse(JULIA / path)):
            if node.head == "call" and node.args[0] in STRUCTS and node.args[0] not in ("Chain",):
                fields = [_constructor_argument(a, constants) for a in node.args[1:]]
                if len(fields) > 1 and None not in fields:
                    assert tuple(fields) == STRUCTS[node.args[0]][:len(fields)], (path, node.args[0], fields)
                    built.add((path, node.args[0]))
    for path in ("FluxParity.jl", "weights.jl"):
        for struct in ("RNNCell", "LSTMCell", "GRUCell", "GRUv3Cell", "Dense"):
            assert (path, struct) in built, f"{path}: no {struct}(...) whose arguments could be checked"


# ---------------------------------------------------------------------------------------------------
# The same lists in both languages
# ---------------------------------------------------------------------------------------------------


def test_the_rnn_and_dense_activations_are_one_list_per_language():
    constants = js.constants(JULIA / "activations.jl")
    julia = {name: js.string_pairs(constants[name]) for name in ("RNN_ACTIVATIONS", "DENSE_ACTIVATIONS")}
    assert [n for n, _ in julia["RNN_ACTIVATIONS"]] == list(models.RNN_ACTIVATIONS)
    assert [n for n, _ in julia["DENSE_ACTIVATIONS"]] == list(models.DENSE_ACTIVATIONS)
    for pairs in julia.values():
        assert all(name == function for name, function in pairs)  # "relu" => relu: the name is the function's
    # Stated once: the three files that need the lists include activations.jl and state none of their own.
    for path in ("FluxParity.jl", "weights.jl", "golden.jl"):
        assert (JULIA / "activations.jl") in [p for _, p in js.includes(JULIA / path)], path
        tree = js.parse(JULIA / path)
        own = [n for n in js.walk(tree) if n.head == "const" and "ACTIVATIONS" in str(n.args[0].args[0])]
        assert not own, f"{path} states its own activation list"
        for node in js.walk(tree):  # no "sigmoid" => sigmoid pair or "sigmoid" comparison outside the list
            assert js.literal(node) != "sigmoid", f"{path} names sigmoid outside julia/activations.jl"


def test_the_layers_arrays_have_the_same_names_in_both_languages():
    import numpy as np

    python = {}
    for kind in ("rnn", "lstm", "gru", "gruv3"):
        chain = models.init_chain(1, [(kind, 2, "tanh")], [(1,)], seed=0, dtype=np.float64)
        names = list(models.flat_params(chain))
        python[kind] = tuple(n.removeprefix("layers[1].") for n in names if n.startswith("layers[1]."))
        python["dense"] = tuple(n.removeprefix("layers[2].") for n in names if n.startswith("layers[2]."))
    table = js.constants(JULIA / "weights.jl")["LAYER_ARRAYS"]  # Dict("rnn" => ("cell.Wi", ...), ...)
    weights = {kind: tuple(js.literal(a) for a in value.args)
               for kind, value in js.string_pairs(Node("tuple", table.args[1:]))}
    assert weights == python
    from fake_julia.juliacall import _layer_fields  # layer_fields(kind) of FluxParity.jl, read from its tree

    assert _layer_fields(JULIA / "FluxParity.jl") == python


def test_rule_json_does_not_use_escape_string():
    # escape_string writes \e, \xNN and raw non-ASCII: not JSON (tests/test_julia_json.py runs the real one)
    tree = js.parse(JULIA / "optimisers.jl")
    (method,) = [n for n in js.walk(tree) if n.head == "function" and n.args[0].args[0] == "rule_json"]
    assert "escape_string" not in {a for n in js.walk(method) for a in n.args if isinstance(a, str)}


def test_the_julia_examples_in_the_docs_call_functions_as_defined(tmp_path):
    definitions = all_definitions()
    checked = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, block in enumerate(re.findall(r"```julia\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)):
            checked += _check_calls_in_julia(js.parse_text(block, tmp_path), definitions, f"{doc.name} block {i + 1}")
    assert "record_golden" in checked  # docs/testing.md's example

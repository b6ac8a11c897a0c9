"""Flux -> PyTorch: the source of the port module, its parity test and its training step, from a Chain.

The generated code reads like a hand-written port: ``nn.LSTM``/``nn.GRU``/``nn.RNN``/``nn.Linear`` where they
compute Flux's function exactly, a short explicit cell where none does (identity RNN, GRUv3), ``bias_hh`` zero
and frozen where Flux has one bias, and a comment at each trap naming the Flux fact (docs/porting.md). It
imports torch and numpy only. Every text here is ruff-formatted as written (tests/test_port.py checks it);
the same Chain and options always give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from ..models import Chain, DenseParams
from ..optim import Rule, to_dict
from ._names import chain_expression, layer_expressions, snake_case

WEIGHTS_V1, WEIGHTS_V2, WEIGHTS_V3 = "fluxparity-weights/1", "fluxparity-weights/2", "fluxparity-weights/3"


@dataclass(frozen=True)
class TorchPort:
    """What ``fluxparity port`` writes for one Chain. ``files``: ``{file name: text}`` in writing order."""

    name: str
    module: str
    files: dict


def _flux_names(chain: Chain) -> dict[str, str]:
    """Flux flat name -> the port's parameter name (``layer{i}`` is Flux's ``layers[i]``)."""
    names = {}
    for i, layer in enumerate(chain.layers, start=1):
        if isinstance(layer, DenseParams):
            names[f"layers[{i}].weight"] = f"layer{i}.weight"
            if layer.has_bias:
                names[f"layers[{i}].bias"] = f"layer{i}.bias"
            continue
        own = _custom(layer) is not None
        for field in layer.array_names:
            torch_field = {"Wi": "weight_ih", "Wh": "weight_hh", "Wh_htilde": "weight_hh_tilde"}.get(field)
            if torch_field is None:  # the one bias
                torch_field = "bias" if own else "bias_ih"
            names[f"layers[{i}].cell.{field}"] = f"layer{i}.{torch_field}" + ("" if own else "_l0")
    return names


def _custom(layer) -> Optional[str]:
    """The generated class a recurrent layer needs, or None when a torch built-in computes it."""
    if layer.kind == "gruv3":
        return "GRUv3"
    if layer.kind == "rnn" and layer.activation == "identity":
        return "IdentityRNN"
    return None


# ------------------------------------------------------------------------------------------- the module
def _header(chain: Chain, name: str, batch_first: bool) -> str:
    n_in, n_out = chain.input_size, chain.output_size
    seq = f"(batch, len, {n_in})" if batch_first else f"(len, batch, {n_in})"
    flux_to_seq = "x_flux.transpose(2, 1, 0)" if batch_first else "x_flux.transpose(1, 2, 0)"
    if chain.readout == "last":
        out = f"(batch, {n_out})"
        read = "the last step, as Flux's `model(x)[:, end, :]`"
    else:
        out = f"(batch, len, {n_out})" if batch_first else f"(len, batch, {n_out})"
        read = "every step, as Flux's `model(x)`"
    return f'''"""{name}: the PyTorch port of the Flux model

    {chain_expression(chain)}

read at {read}.

Input {seq}: Flux's is `({n_in}, len, batch)`, so from NumPy `{flux_to_seq}`.
Output {out}.

Written by `fluxparity port`; it imports torch and numpy only.
`load_flux_weights(path)` builds the model from Flux's weights. Line numbers are
Flux 0.16.11's src/layers/recurrent.jl unless basic.jl is named.
"""

import numpy as np
import torch
from torch import nn
'''


def _constants(chain: Chain) -> str:
    names = "\n".join(f'    "{f}": "{t}",' for f, t in _flux_names(chain).items())
    layers = []
    for layer in chain.layers:
        if isinstance(layer, DenseParams):
            layers.append(f'    ("dense", "{layer.activation}", {layer.has_bias}),')
        else:
            activation = getattr(layer, "activation", None)
            layers.append(f'    ("{layer.kind}", {"None" if activation is None else chr(34) + activation + chr(34)}, '
                          'None),')
    if len(layers) == 1:
        layers_text = "(" + layers[0].strip() + ")"
    else:
        layers_text = "(\n" + "\n".join(layers) + "\n)"
    return f'''
# Flux parameter (its name in a weights file; layers are 1-based, as in Julia) -> this
# module's parameter. Flux's matrices are (out, in), as torch's: copied as they are.
FLUX_NAMES = {{
{names}
}}
# Each Flux layer's kind, activation (None: gated cells have fixed nonlinearities) and
# whether a Dense has a bias (Flux's `bias = false`; None for recurrent layers).
FLUX_LAYERS = {layers_text}
READOUT = "{chain.readout}"
'''


def _loop(batch_first: bool) -> tuple[str, str, str]:
    """(zero state's batch dimension, the steps, how they are stacked) for the custom cells."""
    if batch_first:
        return "x.shape[0]", "x.unbind(1)", "torch.stack(outputs, dim=1)"
    return "x.shape[1]", "x", "torch.stack(outputs)"


def _identity_rnn(batch_first: bool) -> str:
    batch, steps, stack = _loop(batch_first)
    layout = "(batch, len, in)" if batch_first else "(len, batch, in)"
    return f'''

class IdentityRNN(nn.Module):
    """Flux's `RNN(in => out, identity)`: `h = Wi x + Wh h + bias`, with one bias.

    nn.RNN offers only tanh and relu (Flux's RNN takes any σ, :284). `weight_ih`
    (out, in), `weight_hh` (out, out), `bias` (out,). Input {layout}.
    """

    def __init__(self, input_size: int, hidden_size: int, *, dtype: torch.dtype):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.zeros(hidden_size, input_size, dtype=dtype))
        self.weight_hh = nn.Parameter(
            torch.zeros(hidden_size, hidden_size, dtype=dtype)
        )
        self.bias = nn.Parameter(torch.zeros(hidden_size, dtype=dtype))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The state starts at zero on every call and is not a parameter (:176).
        h = x.new_zeros({batch}, self.weight_hh.shape[0])
        outputs = []
        for x_t in {steps}:
            h = x_t @ self.weight_ih.T + h @ self.weight_hh.T + self.bias
            outputs.append(h)
        return {stack}, h
'''


def _gruv3(batch_first: bool) -> str:
    batch, steps, stack = _loop(batch_first)
    layout = "(batch, len, in)" if batch_first else "(len, batch, in)"
    return f'''

class GRUv3(nn.Module):
    """Flux's `GRUv3(in => out)` as its code computes it (:806), with one bias:

        r = σ(Wi_r x + Wh_r h + b_r)
        z = σ(Wi_z x + Wh_z h + b_z)
        h̃ = tanh(Wi_h x + Wh_h̃ (r ⊙ h) + b_h)
        h = (1 - z) ⊙ h̃ + z ⊙ h

    The reset multiplies h BEFORE its own matrix Wh_h̃ (`weight_hh_tilde`, (out, out));
    Flux's docstring (:738) writes Wh_h̃ (r ⊙ (Wh_h h)), the code does not. The third
    block of `weight_hh` is multiplied and never used, as in Flux: its gradient is
    always zero. PyTorch has no built-in GRUv3. Input {layout}.
    """

    def __init__(self, input_size: int, hidden_size: int, *, dtype: torch.dtype):
        super().__init__()
        self.weight_ih = nn.Parameter(
            torch.zeros(3 * hidden_size, input_size, dtype=dtype)
        )
        self.weight_hh = nn.Parameter(
            torch.zeros(3 * hidden_size, hidden_size, dtype=dtype)
        )
        self.bias = nn.Parameter(torch.zeros(3 * hidden_size, dtype=dtype))
        self.weight_hh_tilde = nn.Parameter(
            torch.zeros(hidden_size, hidden_size, dtype=dtype)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The state starts at zero on every call and is not a parameter (:775).
        h = x.new_zeros({batch}, self.weight_hh_tilde.shape[0])
        b_r, b_z, b_h = self.bias.chunk(3)
        outputs = []
        for x_t in {steps}:
            gx_r, gx_z, gx_h = (x_t @ self.weight_ih.T).chunk(3, dim=1)
            gh_r, gh_z, _unused = (h @ self.weight_hh.T).chunk(3, dim=1)
            r = torch.sigmoid(gx_r + gh_r + b_r)
            z = torch.sigmoid(gx_z + gh_z + b_z)
            h_tilde = torch.tanh(gx_h + (r * h) @ self.weight_hh_tilde.T + b_h)
            h = (1 - z) * h_tilde + z * h
            outputs.append(h)
        return {stack}, h
'''


_FREEZE = '''

def freeze_hidden_bias(rnn: nn.RNNBase) -> nn.RNNBase:
    """Flux's cells have ONE bias (RNNCell :145, LSTMCell :383, GRUCell :586); nn.RNN,
    nn.LSTM and nn.GRU add a second, bias_hh. It stays zero and frozen here: if both
    trained, each would get the full gradient and Adam would move their sum about twice
    as far as Flux moves its one bias. A file's bias goes to bias_ih.
    """
    with torch.no_grad():
        rnn.bias_hh_l0.zero_()
    rnn.bias_hh_l0.requires_grad_(False)
    return rnn
'''


def _layer_lines(i: int, layer, batch_first: bool, expr: str) -> list[str]:
    """The ``__init__`` lines (comment and assignment) of Flux's ``layers[i]`` (``expr`` as Flux prints it)."""
    bf = ", batch_first=True" if batch_first else ""
    if isinstance(layer, DenseParams):
        no_bias = "" if layer.has_bias else "bias=False, "
        line = f"self.layer{i} = nn.Linear({layer.input_size}, {layer.output_size}, {no_bias}dtype=dtype)"
        if len(line) + 8 > 88:
            line = (f"self.layer{i} = nn.Linear(\n    {layer.input_size}, {layer.output_size}, {no_bias}"
                    "dtype=dtype\n)")
        return [f"# layers[{i}]: {expr}", line]
    n_in, n_h = layer.input_size, layer.hidden_size
    custom = _custom(layer)
    if custom == "IdentityRNN":
        return [f"# layers[{i}]: {expr}. nn.RNN has no identity: a short cell instead.",
                f"self.layer{i} = IdentityRNN({n_in}, {n_h}, dtype=dtype)"]
    if custom == "GRUv3":
        return [f"# layers[{i}]: {expr}. No torch built-in: the cell above, as Flux's code.",
                f"self.layer{i} = GRUv3({n_in}, {n_h}, dtype=dtype)"]
    if layer.kind == "rnn":
        comment = [f"# layers[{i}]: {expr}"]
        if layer.activation == "tanh":
            comment = [f"# layers[{i}]: {expr}. Flux runs tanh as NNlib's tanh_fast (fast_act,",
                       "# :195): float32 outputs differ from nn.RNN's in the last bits."]
        built = f'nn.RNN({n_in}, {n_h}, nonlinearity="{layer.activation}"{bf}, dtype=dtype)'
    elif layer.kind == "lstm":
        comment = [f"# layers[{i}]: {expr}. Gates input, forget, cell, output (:414-417),",
                   "# nn.LSTM's i, f, g, o: the same order, no reshuffling."]
        built = f"nn.LSTM({n_in}, {n_h}{bf}, dtype=dtype)"
    else:
        comment = [f"# layers[{i}]: {expr}. Flux has no b_hn: h̃ = tanh(Wi_h x + r ⊙ (Wh_h h)",
                   "# + b_h) (:623-626). nn.GRU's n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))",
                   "# is the same function because b_hn, part of the frozen bias_hh, is 0."]
        built = f"nn.GRU({n_in}, {n_h}{bf}, dtype=dtype)"
    call = f"self.layer{i} = freeze_hidden_bias({built})"
    if len(call) + 8 > 88:
        call = f"self.layer{i} = freeze_hidden_bias(\n    {built}\n)"
    return comment + [call]


_ACTIVATION_CALL = {"relu": "torch.relu", "tanh": "torch.tanh", "sigmoid": "torch.sigmoid"}


def _forward_lines(chain: Chain, batch_first: bool) -> list[str]:
    lines = []
    fast_noted = False
    for i, layer in enumerate(chain.layers, start=1):
        if not isinstance(layer, DenseParams):
            lines.append(f"x, _ = self.layer{i}(x)")
            continue
        if layer.activation == "identity":
            lines.append(f"x = self.layer{i}(x)")
            continue
        if layer.activation in ("tanh", "sigmoid") and not fast_noted:
            lines += [f"# Flux runs {layer.activation} as NNlib's {layer.activation}_fast (fast_act, "
                      "basic.jl:196-199):",
                      "# float32 results differ from torch's exact function in the last bits."]
            fast_noted = True
        lines.append(f"x = {_ACTIVATION_CALL[layer.activation]}(self.layer{i}(x))")
    if chain.readout == "last":
        lines += ["# Flux's model(x)[:, end, :]: the last step.", "return x[:, -1]" if batch_first else "return x[-1]"]
    else:
        lines.append("return x")
    return lines


def _indent(lines: list[str], spaces: int) -> str:
    pad = " " * spaces
    return "\n".join("\n".join(pad + part if part else part for part in line.split("\n")) for line in lines)


def _model_class(chain: Chain, name: str, batch_first: bool) -> str:
    init = []
    for i, (layer, expr) in enumerate(zip(chain.layers, layer_expressions(chain)), start=1):
        init += _layer_lines(i, layer, batch_first, expr)
    n_in, n_out = chain.input_size, chain.output_size
    seq_in = f"(batch, len, {n_in})" if batch_first else f"(len, batch, {n_in})"
    if chain.readout == "last":
        seq_out = f"(batch, {n_out})"
    else:
        seq_out = f"(batch, len, {n_out})" if batch_first else f"(len, batch, {n_out})"
    return f'''

class {name}(nn.Module):
    """`self.layer{{i}}` is Flux's `model.layers[i]`. Every recurrent layer starts from a
    zero state on each call, not a parameter (Flux >= 0.15, :176, :391, :594, :775).
    """

    def __init__(self, *, dtype: torch.dtype = torch.float32):
        super().__init__()
{_indent(init, 8)}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Flux 0.16's initial values: every weight matrix from glorot_uniform over the
        whole stacked (gates * out, in) matrix, which nn.init.xavier_uniform_ computes
        (:181-182, :397-398, :598-599, :779-780; Dense basic.jl:189-191), and every
        bias zero, LSTM's forget gate included. torch's own default init differs.
        """
        with torch.no_grad():
            for p in self.parameters():
                if p.ndim == 2:
                    nn.init.xavier_uniform_(p)
                else:
                    p.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """{seq_in} -> {seq_out}."""
{_indent(_forward_lines(chain, batch_first), 8)}
'''


def _loader(chain: Chain, name: str, v1: bool) -> str:
    if v1:
        format_check = f'''    if fmt == "{WEIGHTS_V1}":
        entries = _from_version_1(path, entries)
    elif fmt not in ("{WEIGHTS_V3}", "{WEIGHTS_V2}"):
        raise ValueError(
            f"{{path}}: format {{fmt!r}}, expected {WEIGHTS_V3!r} (or /2, /1)"
        )
    # Version 1 records no readout.
    readout = _text(path, entries, "readout") if "readout" in entries else READOUT
'''
    else:
        format_check = f'''    # Version 1 files hold one recurrent layer and an optional identity Dense.
    if fmt not in ("{WEIGHTS_V3}", "{WEIGHTS_V2}"):
        raise ValueError(f"{{path}}: format {{fmt!r}}, expected {WEIGHTS_V3!r}, /2")
    readout = _text(path, entries, "readout")
'''
    text = f'''

def load_flux_weights(path, *, dtype: torch.dtype = torch.float32) -> {name}:
    """A {name} holding Flux's weights from `path`, a fluxparity weights file
    ({WEIGHTS_V3}, /2{", /1" if v1 else ""}; from Julia: julia/weights.jl's save_weights)
    or golden file. Read with NumPy alone, never unpickling. Checks the format, each
    layer's kind, activation and bias, the readout and every array's dtype and shape;
    ValueError names the file and the entry. Values are converted to `dtype`.
    """
    with np.load(path, allow_pickle=False) as archive:
        entries = {{name: archive[name] for name in archive.files}}
    fmt = _text(path, entries, "format")
{format_check}    if readout != READOUT:
        raise ValueError(f"{{path}}: read at {{readout!r}}, this port at {{READOUT!r}}")
    for i, (kind, activation, bias) in enumerate(FLUX_LAYERS, start=1):
        found = _text(path, entries, f"layers[{{i}}].kind")
        if found != kind:
            raise ValueError(f"{{path}}: layers[{{i}}] is {{found}}, this port's {{kind}}")
        if activation is not None:
            found = _text(path, entries, f"layers[{{i}}].activation")
            if found != activation:
                raise ValueError(
                    f"{{path}}: layers[{{i}}] activation is {{found}}, this port's {{activation}}"
                )
        if bias is not None:
            # Version 3 says whether a Dense has a bias (bias = false); /2 always had one.
            key = f"layers[{{i}}].use_bias"
            found = _text(path, entries, key) == "true" if key in entries else True
            if found != bias:
                raise ValueError(f"{{path}}: layers[{{i}}] bias {{found}}, port's {{bias}}")
    extra = f"layers[{{len(FLUX_LAYERS) + 1}}].kind"
    if extra in entries:
        raise ValueError(f"{{path}}: more layers than this port's {{len(FLUX_LAYERS)}}")
    model = {name}(dtype=dtype)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for flux_name, torch_name in FLUX_NAMES.items():
            param = params[torch_name]
            if flux_name not in entries:
                raise ValueError(f"{{path}}: no entry {{flux_name!r}}")
            array = entries[flux_name]
            if array.dtype not in (np.float32, np.float64):
                raise ValueError(f"{{path}}: {{flux_name}} is {{array.dtype}}, not float")
            if array.shape != tuple(param.shape):
                raise ValueError(
                    f"{{path}}: {{flux_name}} has shape {{array.shape}}, "
                    f"this port's {{torch_name}} {{tuple(param.shape)}}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"{{path}}: {{flux_name}} holds NaN or Inf")
            param.copy_(torch.from_numpy(array).to(dtype))
    return model


def _text(path, entries: dict, name: str) -> str:
    """A text entry: ASCII codes as uint8 (NPZ.jl, Julia's reader, has no string dtype)."""
    codes = entries.get(name)
    if codes is None or codes.dtype != np.uint8 or codes.ndim != 1:
        raise ValueError(f"{{path}}: entry {{name!r}} is missing or not ASCII text (uint8)")
    return codes.tobytes().decode("ascii")
'''
    if v1:
        text += '''

def _from_version_1(path, entries: dict) -> dict:
    """Version 1 names (`kind`, `activation`, `cell.*`, `head.*` an identity Dense)
    as version 2's."""
    renamed = {"layers[1].kind": entries.get("kind")}
    if "activation" in entries:
        renamed["layers[1].activation"] = entries["activation"]
    for name, value in entries.items():
        if name.startswith("cell."):
            renamed["layers[1]." + name] = value
        elif name.startswith("head."):
            renamed["layers[2]." + name[len("head.") :]] = value
            renamed["layers[2].kind"] = np.frombuffer(b"dense", dtype=np.uint8)
            renamed["layers[2].activation"] = np.frombuffer(b"identity", dtype=np.uint8)
    return renamed
'''
    return text


def _v1_shaped(chain: Chain) -> bool:
    """A version-1 file can hold this Chain: one recurrent layer, then at most one identity Dense."""
    rest = chain.layers[1:]
    return len(chain.recurrent) == 1 and len(rest) <= 1 and all(d.activation == "identity" for d in rest)


def module_source(chain: Chain, name: str, *, batch_first: bool) -> str:
    """The port module's text (see the module docstring)."""
    custom = {_custom(layer) for layer in chain.recurrent}
    parts = [_header(chain, name, batch_first), _constants(chain)]
    if "IdentityRNN" in custom:
        parts.append(_identity_rnn(batch_first))
    if "GRUv3" in custom:
        parts.append(_gruv3(batch_first))
    if any(_custom(layer) is None for layer in chain.recurrent):
        parts.append(_FREEZE)
    parts.append(_model_class(chain, name, batch_first))
    parts.append(_loader(chain, name, _v1_shaped(chain)))
    return "".join(parts)


# ------------------------------------------------------------------------------------------- training
_LOSS = {
    "mse": ("Flux.Losses.mse: the mean of the squared differences over every element "
            "(src/losses/functions.jl:45-47).", "return torch.nn.functional.mse_loss(y_hat, y)"),
    "mae": ("Flux.Losses.mae: the mean of the absolute differences over every element "
            "(src/losses/functions.jl:21-23).", "return torch.nn.functional.l1_loss(y_hat, y)"),
    "logitcrossentropy": (
        "Flux.Losses.logitcrossentropy: classes along Flux's FIRST axis, mean over the\n    rest "
        "(src/losses/functions.jl:270-272). Here classes are the LAST axis: rows of\n    (N, C) for "
        "F.cross_entropy, `y` as class probabilities.",
        "classes = y_hat.shape[-1]\n    return torch.nn.functional.cross_entropy(\n"
        "        y_hat.reshape(-1, classes), y.reshape(-1, classes)\n    )"),
    "abs_sum": ("The tutorial's loss, abs(sum(ŷ .- y)).", "return (y_hat - y).sum().abs()"),
}


def _rule_text(rule: Rule) -> str:
    """The rule as Optimisers.jl's struct with its fields in order, e.g. ``OptimiserChain(ClipGrad(1.0), Adam(0.001, (0.9,
    0.999), 1e-08))`` (positional fields in the struct's order, as ``to_dict`` lists them)."""
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return call(v)
        if isinstance(v, (list, tuple)):
            return "(" + ", ".join(value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
        return repr(v)

    def call(d: dict) -> str:
        fields = [v for k, v in d.items() if k != "rule"]
        if d["rule"] == "OptimiserChain":
            return "OptimiserChain(" + ", ".join(call(o) for o in fields[0]) + ")"
        return f"{d['rule']}(" + ", ".join(value(v) for v in fields) + ")"

    return call(to_dict(rule))


def _optimizer_part(rule: Rule) -> tuple[str, str, list[str], str]:
    """(imports, make_optimizer body, lines run before ``optimizer.step()``, what the docstring says)."""
    from ..optim import NoTorchEquivalent, torch_mapping

    try:
        mapping = torch_mapping(rule)
    except NoTorchEquivalent as exc:
        mapping, why = None, f"it has no torch.optim equivalent: {exc}"
    else:
        why = "" if mapping.exact else f"torch.optim's nearest ({mapping.recipe}) differs: {mapping.note}"
    if mapping is not None and mapping.exact:
        *transforms, optimizer = mapping.recipe.split("; ")
        body = f"return {optimizer}"
        lines = [t.replace("(params, ", "(model.parameters(), ") for t in transforms]
        note = ("torch.optim computes the same update (fluxparity's docs/optimisers.md); its\n"
                "arithmetic runs in another order, so float32 results differ in the last bits.")
        if "Adam" in mapping.recipe:  # Adam, AdamW, NAdam: the bias correction (docs/optimisers.md)
            note += ("\nThe bias correction: Optimisers.jl keeps β^t as a running product in the\n"
                     "parameter's type, torch computes 1 - β^t in double precision from a power.")
        if mapping.note:
            note += "\nNote: " + _wrap(mapping.note) + "."
        return "import torch\nfrom {module} import {name}", body, lines, note
    rule_dict = _literal(to_dict(rule), 4)
    imports = ("import torch\n" + _sorted_from_imports(["from {module} import {name}",
                                                         "from fluxparity.optim import FluxOptimiser, from_dict"])
               + f"\n\nRULE = from_dict(\n    {rule_dict}\n)")
    note = ("Optional dependency: fluxparity, whose FluxOptimiser runs Optimisers.jl's own\n"
            "arithmetic on torch tensors, because for this rule " + _wrap(why) + ".")
    return imports, "return FluxOptimiser(params, RULE)", [], note


def _sorted_from_imports(lines: list[str]) -> str:
    """``from`` imports of one section in isort's (ruff's default) order: by module name, case-insensitively.
    The port's own modules sort among the third-party ones, as a linter that does not know them sees them."""
    return "\n".join(sorted(lines, key=lambda line: line.split()[1].lower()))


def _literal(value, indent: int) -> str:
    """``value`` (JSON-like) as Python source that ruff format leaves alone: dicts and lists of dicts exploded
    one item a line with a trailing comma, other lists inline."""
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = "".join(f"{pad}{json.dumps(k)}: {_literal(v, indent + 4)},\n" for k, v in sorted(value.items()))
        return "{\n" + items + " " * indent + "}"
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (dict, list, tuple)) for v in value):
            return "[\n" + "".join(f"{pad}{_literal(v, indent + 4)},\n" for v in value) + " " * indent + "]"
        return "[" + ", ".join(_literal(v, indent) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _wrap(text: str) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > 70 and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "\n".join(lines)


def training_source(chain: Chain, name: str, module: str, rule: Rule, loss: str) -> str:
    imports, body, before_step, note = _optimizer_part(rule)
    imports = imports.replace("{module}", module).replace("{name}", name)
    if "fluxparity" in imports:  # the order depends on the module's name
        head, rest = imports.split("\n\nRULE", 1)
        imports = "import torch\n" + _sorted_from_imports(head.splitlines()[1:]) + "\n\nRULE" + rest
    loss_doc, loss_body = _LOSS[loss]
    before = "".join(f"    {line}\n" for line in before_step)
    return f'''"""Training {name} as Flux trains it: per batch `Flux.withgradient`, then
`Flux.update!(state, model, grads)` with `state = Flux.setup(rule, model)` and the
Optimisers.jl rule (its struct's fields in order)

    {_rule_text(rule)}

{note}
"""

{imports}


def make_optimizer(model: {name}) -> torch.optim.Optimizer:
    """The optimizer over the trainable parameters only: a frozen bias_hh (zero, since
    Flux has one bias) stays out of it."""
    params = [p for p in model.parameters() if p.requires_grad]
    {body}


def loss_fn(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """{loss_doc}"""
    {loss_body}


def train_step(model: {name}, optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One step on a batch in the port's layout; returns the loss before the step.

    Flux's withgradient returns fresh gradients each call; torch adds into .grad until
    it is zeroed, hence zero_grad first.
    """
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
{before}    optimizer.step()
    return loss.item()
'''


# ------------------------------------------------------------------------------------------- the test
def test_source(chain: Chain, name: str, module: str, *, batch_first: bool, golden: Optional[str]) -> str:
    snake = module
    from_imports = _sorted_from_imports([
        f"from {module} import FLUX_NAMES, load_flux_weights",
        f"from {module}_training import make_optimizer, train_step",
        "from fluxparity.testing import TOLERANCES, assert_parity, load_golden",
    ])
    layout = "(batch, len, in)" if batch_first else "(len, batch, in)"
    x_axes = "2, 1, 0" if batch_first else "1, 2, 0"
    if chain.readout == "last":
        y_axes = "1, 0"
    else:
        y_axes = x_axes
    where = (f'Path({json.dumps(golden)})' if golden is not None
             else f'Path(__file__).with_name("{snake}_golden.npz")')
    return f'''"""{name} against a golden file: what Flux computed for the same model (output,
loss, every gradient, the training steps), checked by fluxparity.testing."""

from pathlib import Path

import numpy as np
import pytest
import torch
{from_imports}

# The golden file: recorded from Flux with fluxparity's julia/golden.jl (record_golden),
# or by the NumPy reference with `fluxparity record`. Set it here, or override the
# golden_path fixture in a conftest.py.
GOLDEN = {where}


@pytest.fixture
def golden_path() -> Path:
    if not GOLDEN.is_file():
        pytest.fail(f"no golden file at {{GOLDEN}}: record one, then set GOLDEN")
    return GOLDEN


def test_{snake}_matches_the_golden(golden_path):
    # In the golden's dtype: its tolerances are that dtype's.
    dtype = getattr(torch, load_golden(golden_path).dtype.name)
    model = load_flux_weights(golden_path, dtype=dtype)
    # check_weights: the loaded weights are the golden's. Then the output and loss, every
    # gradient, and the training steps with {module}_training's optimizer.
    assert_parity(
        golden_path,
        model,
        make_optimizer(model),
        mapping=FLUX_NAMES,
        batch_first={batch_first},
        check_weights=True,
    )


def test_{snake}_train_step_follows_the_golden(golden_path):
    golden = load_golden(golden_path)
    model = load_flux_weights(golden_path, dtype=getattr(torch, golden.dtype.name))
    optimizer = make_optimizer(model)
    # The golden's batch is in Flux's layout, x (in, len, batch): this port's is {layout}.
    x = torch.from_numpy(golden.x.transpose({x_axes}).copy())
    y = torch.from_numpy(golden.y.transpose({y_axes}).copy())
    losses = [train_step(model, optimizer, x, y) for _ in range(golden.steps)]
    tolerance = TOLERANCES[golden.dtype.name]
    np.testing.assert_allclose(losses, golden.losses, **tolerance, err_msg="losses")
    params = dict(model.named_parameters())
    for flux_name, torch_name in FLUX_NAMES.items():
        after = params[torch_name].detach().numpy()
        wanted = golden.after_last[flux_name]
        np.testing.assert_allclose(after, wanted, **tolerance, err_msg=flux_name)
'''


def torch_port(chain: Chain, name: str, *, batch_first: bool, dtype: str, rule: Rule, loss: str,
               golden: Optional[str] = None) -> TorchPort:
    """Every file of the PyTorch port of ``chain``: ``<snake>.py``, ``<snake>_training.py``,
    ``test_<snake>_parity.py``. ``dtype``: ``"float32"`` or ``"float64"``, the loader's and the module's
    default (the test runs in the golden's dtype). ``golden``: the golden file the test reads by default (else ``<snake>_golden.npz`` beside it)."""
    snake = snake_case(name)
    files = {
        f"{snake}.py": module_source(chain, name, batch_first=batch_first).replace(
            "dtype: torch.dtype = torch.float32", f"dtype: torch.dtype = torch.{dtype}"),
        f"{snake}_training.py": training_source(chain, name, snake, rule, loss),
        f"test_{snake}_parity.py": test_source(chain, name, snake, batch_first=batch_first, golden=golden),
    }
    return TorchPort(name, snake, files)

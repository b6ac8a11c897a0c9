"""A model written as Flux prints it: ``Chain(LSTM(3 => 16), Dense(16 => 2, relu))`` <-> :class:`ModelSpec`.

:func:`parse_flux` reads the text with a small tokenizer and a recursive-descent parser — nothing is ever
evaluated — and :meth:`ModelSpec.to_flux` / :func:`flux_expression` write it back the way Flux 0.16's
``show`` does (src/layers/basic.jl ``show(::Chain)``, ``show(::Dense)``; src/layers/recurrent.jl
``show(::RNN)`` …; docs/julia-names.md). Grammar (``[…]`` optional, ``*`` repeated)::

    model      := chain | layer
    chain      := [Flux.] Chain ( layer (, layer)* [,] )
    layer      := [Flux.] KIND ( INT => INT [, activation] [; keyword (, keyword)*] )
    KIND       := RNN | LSTM | GRU | GRUv3 | Dense
    activation := [Flux. | NNlib.] (identity | tanh | relu | σ | sigmoid)
    keyword    := bias = (true | false)

Whitespace and newlines may separate any two tokens. ``RNN(in => out)`` has Flux's default activation
``tanh``, ``Dense(in => out)`` ``identity``; LSTM, GRU and GRUv3 take none. ``bias = false`` is accepted on
a Dense only (this package's recurrent layers always have their bias). A bare layer is a Chain of one.

Every error is a ``ValueError`` of one line naming the column (and the line, for text over several lines)
and the offending token, e.g. ``column 14: expected '=>' after 3, got ','``; tokens are quoted at most
:data:`_SHOWN` characters long, so the message stays short whatever the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
import numpy as np

from ._params import (
    DENSE_ACTIVATIONS,
    KINDS,
    READOUTS,
    RNN_ACTIVATIONS,
    Chain,
    RNNParams,
    init_chain,
)

MAX_SIZE = 1_000_000  # largest layer size accepted (a typo like 16000000000 must not allocate memory)
MAX_LENGTH = 100_000  # longest expression accepted, in characters
_SHOWN = 24  # longest token quoted in an error message

# Flux's type name -> this package's kind, and back.
_LAYER_KINDS = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru", "GRUv3": "gruv3", "Dense": "dense"}
_FLUX_NAMES = {kind: name for name, kind in _LAYER_KINDS.items()}
# Activation names as written in Julia -> this package's name; how Flux prints each (``sigmoid`` is ``σ``).
_ACTIVATION_NAMES = {"identity": "identity", "tanh": "tanh", "relu": "relu", "σ": "sigmoid", "sigmoid": "sigmoid"}
_PRINTED = {"identity": "identity", "tanh": "tanh", "relu": "relu", "sigmoid": "σ"}
_MODULES = ("Flux", "NNlib")

_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<arrow>=>)|(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[^\W\d]\w*)|(?P<punct>[(),;=.])|(?P<other>.)",
    re.UNICODE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "arrow", "number", "name", "punct", "other", "end"
    text: str
    line: int
    column: int  # 1-based, characters within the line


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…")


class _Parser:
    def __init__(self, text: str):
        self.multiline = "\n" in text.strip()
        self.tokens = list(self._tokenize(text))
        self.i = 0

    def _tokenize(self, text: str):
        line, line_start = 1, 0
        for m in _TOKEN.finditer(text):
            kind, value = m.lastgroup, m.group()
            if kind == "space":
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = m.start() + value.rindex("\n") + 1
                continue
            yield _Token(kind, value, line, m.start() - line_start + 1)
        yield _Token("end", "", line, len(text) - line_start + 1)

    # --- helpers
    def error(self, token: _Token, message: str) -> ValueError:
        where = f"line {token.line}, column {token.column}" if self.multiline else f"column {token.column}"
        return ValueError(f"{where}: {message}")

    def got(self, token: _Token) -> str:
        return "the end of the text" if token.kind == "end" else _shown(token.text)

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self) -> _Token:
        token = self.peek()
        self.i += 1
        return token

    def expect(self, text: str, after: str) -> _Token:
        token = self.next()
        if token.text != text or token.kind not in ("arrow", "punct"):
            raise self.error(token, f"expected {text!r} after {after}, got {self.got(token)}")
        return token

    def name(self, what: str, after: str) -> _Token:
        """A name, with an optional ``Flux.`` / ``NNlib.`` module prefix skipped."""
        token = self.next()
        if token.kind == "name" and token.text in _MODULES and self.peek().text == ".":
            module = token.text
            self.next()
            token = self.next()
            after = f"'{module}.'"
        if token.kind != "name":
            raise self.error(token, f"expected {what} after {after}, got {self.got(token)}")
        return token

    def size(self, what: str, after: str) -> int:
        token = self.next()
        if token.kind != "number":
            raise self.error(token, f"expected {what} (a positive integer) after {after}, got {self.got(token)}")
        if not token.text.isdigit():
            raise self.error(token, f"{what} must be a whole number, got {_shown(token.text)}")
        if len(token.text) > len(str(MAX_SIZE)) or int(token.text) > MAX_SIZE:
            raise self.error(token, f"{what} {_shown(token.text)} is larger than {MAX_SIZE}")
        if int(token.text) == 0:
            raise self.error(token, f"{what} must be positive, got 0")
        return int(token.text)

    # --- grammar
    def model(self) -> "ModelSpec":
        start = self.i
        head = self.name("a layer or Chain", "the start")
        if head.text == "Chain":
            layers = self.chain_body()
        else:
            self.i = start  # a bare layer: read it again as one
            layers = [self.layer("the start")]
        end = self.next()
        if end.kind != "end":
            raise self.error(end, f"expected the end of the model after ')', got {self.got(end)}")
        return self.spec(layers)

    def chain_body(self) -> list:
        self.expect("(", "'Chain'")
        layers = [self.layer("'Chain('")]
        while True:
            token = self.next()
            if token.text == ")" and token.kind == "punct":
                return layers
            if token.text != "," or token.kind != "punct":
                raise self.error(token, f"expected ',' or ')' after a layer, got {self.got(token)}")
            if self.peek().text == ")" and self.peek().kind == "punct":  # a trailing comma, as Julia allows
                self.next()
                return layers
            layers.append(self.layer("','"))

    def layer(self, after: str) -> tuple:
        token = head = self.name("a layer", after)
        if token.text == "Chain":
            raise self.error(token, "a Chain inside a Chain is not supported; list its layers in one Chain")
        if token.text not in _LAYER_KINDS:
            raise self.error(token, f"unknown layer {_shown(token.text)}; expected one of {', '.join(_LAYER_KINDS)}")
        kind, name = _LAYER_KINDS[token.text], token.text
        self.expect("(", repr(name))
        n_in = self.size("the input size", f"'{name}('")
        self.expect("=>", str(n_in))
        n_out = self.size("the output size", "'=>'")
        activation = {"rnn": "tanh", "dense": "identity"}.get(kind)
        bias = True
        token = self.next()
        if token.text == "," and token.kind == "punct":
            act = self.name("an activation", "','")
            if kind not in ("rnn", "dense"):
                raise self.error(act, f"{name} takes no activation (its nonlinearities are fixed), got {_shown(act.text)}")
            allowed = RNN_ACTIVATIONS if kind == "rnn" else DENSE_ACTIVATIONS
            activation = _ACTIVATION_NAMES.get(act.text)
            if activation not in allowed:
                choices = ", ".join(_PRINTED[a] + (" (sigmoid)" if a == "sigmoid" else "") for a in allowed)
                raise self.error(act, f"activation {_shown(act.text)} is not supported for {name}; allowed: {choices}")
            token = self.next()
        if token.text == ";" and token.kind == "punct":
            bias = self.keywords(name, kind)
            token = self.next()
        if token.text != ")" or token.kind != "punct":
            options = "',', ';' or ')'" if activation is not None else "';' or ')'"
            raise self.error(token, f"expected {options} after {n_out}, got {self.got(token)}")
        return (head, kind, n_in, n_out, activation, bias)

    def keywords(self, name: str, kind: str) -> bool:
        bias = True
        while True:
            key = self.name("a keyword", "';'")
            if key.text != "bias":
                raise self.error(key, f"unsupported keyword {_shown(key.text)} for {name}; only 'bias' is")
            self.expect("=", "'bias'")
            value = self.next()
            if value.kind != "name" or value.text not in ("true", "false"):
                raise self.error(value, f"expected true or false after 'bias =', got {self.got(value)}")
            bias = value.text == "true"
            if not bias and kind != "dense":
                raise self.error(value, f"{name}(…; bias = false) is not supported: only a Dense may have no bias")
            if not (self.peek().text == "," and self.peek().kind == "punct"):
                return bias
            self.next()

    def spec(self, layers: list) -> "ModelSpec":
        recurrent, dense = [], []
        previous = None
        for token, kind, n_in, n_out, activation, bias in layers:
            if previous is None and kind == "dense":
                raise self.error(token, "a model starts with a recurrent layer (RNN, LSTM, GRU or GRUv3), not a Dense")
            if kind != "dense" and dense:
                raise self.error(token, f"a {_FLUX_NAMES[kind]} after a Dense is not supported: recurrent layers "
                                        "come first, then Dense layers")
            if previous is not None and n_in != previous:
                raise self.error(token, f"{_FLUX_NAMES[kind]}({n_in} => {n_out}) takes {n_in} inputs but the "
                                        f"layer before it gives {previous}")
            if kind == "dense":
                dense.append((n_out, activation, bias))
            else:
                recurrent.append((kind, n_out, activation))
            previous = n_out
        return ModelSpec(layers[0][2], tuple(recurrent), tuple(dense))


def parse_flux(text: str) -> "ModelSpec":
    """Parse a model written as Flux prints it (module docstring) into a :class:`ModelSpec`. Never evaluates.

    Raises:
        TypeError: ``text`` is not a str.
        ValueError: one line naming the column and the bad token, e.g.
            ``column 14: expected '=>' after 3, got ','``; or the layer sizes do not chain up, a Dense comes
            before a recurrent layer, an activation or keyword is not supported (the message says what is).
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_flux: text must be a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"the model expression is {len(text)} characters long; at most {MAX_LENGTH} are read")
    if not text.strip():
        raise ValueError("the model expression is empty; e.g. 'Chain(LSTM(3 => 16), Dense(16 => 2, relu))'")
    return _Parser(text).model()


@dataclass(frozen=True)
class ModelSpec:
    """A model's architecture without its weights: what :func:`parse_flux` reads and :func:`init_chain` builds.

    Attributes:
        input_size: the first layer's ``in``.
        recurrent: one ``(kind, hidden, activation)`` per recurrent layer, in order; ``kind`` in
            ``rnn``/``lstm``/``gru``/``gruv3``; ``activation`` one of ``RNN_ACTIVATIONS`` for an RNN, None for
            the gated layers (their nonlinearities are fixed). At least one.
        dense: one ``(out, activation, bias)`` per Dense layer after them; ``activation`` one of
            ``DENSE_ACTIVATIONS``; ``bias`` False for Flux's ``bias = false``.
    """

    input_size: int
    recurrent: tuple
    dense: tuple = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "recurrent", tuple(tuple(r) for r in self.recurrent))
        object.__setattr__(self, "dense", tuple(tuple(d) for d in self.dense))
        _check_size("input_size", self.input_size)
        if not self.recurrent:
            raise ValueError("ModelSpec.recurrent: a model needs at least one recurrent layer")
        for i, layer in enumerate(self.recurrent):
            if len(layer) != 3:
                raise ValueError(f"ModelSpec.recurrent[{i}]: expected (kind, hidden, activation), got {layer!r}")
            kind, hidden, activation = layer
            if kind not in KINDS:
                raise ValueError(f"ModelSpec.recurrent[{i}]: kind {kind!r} is not one of {KINDS}")
            _check_size(f"ModelSpec.recurrent[{i}] hidden", hidden)
            allowed = RNN_ACTIVATIONS if kind == "rnn" else (None,)
            if activation not in allowed:
                raise ValueError(f"ModelSpec.recurrent[{i}]: activation {activation!r} is not one of {allowed}")
        for i, layer in enumerate(self.dense):
            if len(layer) != 3:
                raise ValueError(f"ModelSpec.dense[{i}]: expected (out, activation, bias), got {layer!r}")
            out, activation, bias = layer
            _check_size(f"ModelSpec.dense[{i}] out", out)
            if activation not in DENSE_ACTIVATIONS:
                raise ValueError(f"ModelSpec.dense[{i}]: activation {activation!r} is not one of {DENSE_ACTIVATIONS}")
            if not isinstance(bias, bool):
                raise TypeError(f"ModelSpec.dense[{i}]: bias must be True or False, got {bias!r}")

    @property
    def output_size(self) -> int:
        return self.dense[-1][0] if self.dense else self.recurrent[-1][1]

    def to_flux(self) -> str:
        """The model as Flux 0.16 prints it, e.g. ``Chain(RNN(1 => 4, tanh), Dense(4 => 2, σ; bias=false))``:
        always a ``Chain``; an RNN's activation always written (as ``show(::RNN)`` does), a Dense's unless
        ``identity``; ``sigmoid`` as ``σ``. ``parse_flux(spec.to_flux()) == spec``."""
        parts, n_in = [], self.input_size
        for kind, hidden, activation in self.recurrent:
            act = f", {_PRINTED[activation]}" if kind == "rnn" else ""
            parts.append(f"{_FLUX_NAMES[kind]}({n_in} => {hidden}{act})")
            n_in = hidden
        for out, activation, bias in self.dense:
            act = "" if activation == "identity" else f", {_PRINTED[activation]}"
            parts.append(f"Dense({n_in} => {out}{act}{'' if bias else '; bias=false'})")
            n_in = out
        return f"Chain({', '.join(parts)})"

    def init(self, seed, dtype=np.float64, readout: str = "last") -> Chain:
        """A :class:`Chain` of this architecture with weights drawn as Flux draws them (``glorot_uniform``
        matrices, zero biases), by :func:`init_chain` from ``seed``; ``readout`` ``"last"`` or ``"all"``."""
        if readout not in READOUTS:
            raise ValueError(f"readout {readout!r} is not one of {READOUTS}")
        recurrent = [(kind, hidden) if activation is None else (kind, hidden, activation)
                     for kind, hidden, activation in self.recurrent]
        return init_chain(self.input_size, recurrent, self.dense, seed=seed, dtype=dtype, readout=readout)

    @classmethod
    def from_chain(cls, chain: Chain) -> "ModelSpec":
        """The architecture of ``chain`` (its weights, dtype and readout dropped)."""
        if not isinstance(chain, Chain):
            raise TypeError(f"expected a fluxparity.models.Chain, got {type(chain).__name__}")
        recurrent = tuple((c.kind, c.hidden_size, c.activation if isinstance(c, RNNParams) else None)
                          for c in chain.recurrent)
        dense = tuple((d.output_size, d.activation, d.has_bias) for d in chain.dense)
        return cls(chain.input_size, recurrent, dense)


def _check_size(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    if not 1 <= value <= MAX_SIZE:
        raise ValueError(f"{what} must be between 1 and {MAX_SIZE}, got {value}")


def flux_expression(chain: Chain) -> str:
    """``chain``'s architecture as Flux source, e.g. ``Chain(LSTM(3 => 16), Dense(16 => 2, relu))`` (what
    Flux prints for the same model; the readout and the weights are not part of it)."""
    return ModelSpec.from_chain(chain).to_flux()



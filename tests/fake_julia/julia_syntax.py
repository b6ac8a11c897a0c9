"""The julia/*.jl sources as a syntax tree, read by a real Julia parser: fatou's JuliaSyntax projection.

``fatou parse --to sexpr FILE`` prints the file as JuliaSyntax's s-expression (fatou is in the test extra);
:func:`parse` reads that text into :class:`Node` trees. No regex ever looks at Julia source here: a rename,
a swapped parameter or a different field is seen as the parser sees it. Used by the static cross-language
tests (tests/test_julia_cross_language.py) and by the fake juliacall, which takes the names and signatures of
the functions it stands in for from the Julia file it is asked to ``include``.

A tree: :class:`Node` ``(head, args)``; an atom (a name, a number, an operator) is a ``str``; a string
literal's pieces are :class:`Str` and a character literal :class:`Char` (both ``str`` subclasses). The heads
are JuliaSyntax's: ``function``/``function-=`` (long and short definitions), ``call``, ``::-i`` (``x::T``),
``=``, ``parameters`` (after ``;``), ``.`` (field access), ``quote-:`` (``:sym``), ``string``, ``tuple-p``…
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

ROOT = Path(__file__).resolve().parents[2]
JULIA_DIR = ROOT / "julia"


class Str(str):
    """The text of a string literal (escapes decoded)."""


class Char(str):
    """A character literal."""


@dataclass(frozen=True)
class Node:
    head: str
    args: tuple

    def __iter__(self):
        return iter(self.args)


Tree = Union[Node, str]


def fatou() -> Optional[str]:
    """The fatou executable beside this Python (the test extra installs it) or on PATH."""
    beside = Path(sys.executable).parent / ("fatou.exe" if sys.platform == "win32" else "fatou")
    return str(beside) if beside.is_file() else shutil.which("fatou")


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$", "'": "'", "0": "\0", "e": "\x1b",
            "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _read_escaped(text: str, i: int, quote: str) -> tuple[str, int]:
    out = []
    while text[i] != quote:
        c = text[i]
        if c == "\\":
            nxt = text[i + 1]
            if nxt in "uUx":
                j = i + 2
                while j < len(text) and j - i - 2 < {"u": 4, "U": 8, "x": 2}[nxt] and text[j] in "0123456789abcdefABCDEF":
                    j += 1
                out.append(chr(int(text[i + 2:j], 16)))
                i = j
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out), i + 1


def read_sexpr(text: str) -> Node:
    """The tree of one s-expression as fatou prints it."""
    stack: list[list] = [[]]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "(":
            j = i + 1
            while j < n and not text[j].isspace() and text[j] not in "()":
                j += 1
            stack.append([text[i + 1:j]])
            i = j
        elif c == ")":
            items = stack.pop()
            head = items[0].removesuffix("-,")  # a trailing comma (`f(a, b,)`) means nothing here
            stack[-1].append(Node(head, tuple(items[1:])))
            i += 1
        elif c == '"':
            value, i = _read_escaped(text, i + 1, '"')
            stack[-1].append(Str(value))
        elif c == "'" and stack[-1] and stack[-1][0] == "char":
            value, i = _read_escaped(text, i + 1, "'")
            stack[-1].append(Char(value))
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "()":
                j += 1
            stack[-1].append(text[i:j])
            i = j
    if len(stack) != 1 or len(stack[0]) != 1:
        raise ValueError("unbalanced s-expression from fatou")
    return stack[0][0]


@functools.lru_cache(maxsize=None)
def _parse_cached(path: str, mtime_ns: int) -> Node:
    exe = fatou()
    if exe is None:
        raise RuntimeError("fatou is not installed (it is in the test extra: pip install -e '.[test]')")
    completed = subprocess.run([exe, "parse", "--to", "sexpr", "--no-config", "--color", "never", path],
                               capture_output=True, text=True, encoding="utf-8", env={**os.environ, "NO_COLOR": "1"})
    if completed.returncode != 0:
        raise SyntaxError(f"fatou cannot parse {path}: {completed.stderr.strip()}")
    return read_sexpr(completed.stdout)


def parse(path) -> Node:
    """The syntax tree of the Julia file at ``path``."""
    path = Path(path)
    return _parse_cached(str(path), path.stat().st_mtime_ns)


def parse_text(source: str, tmp_dir) -> Node:
    """The syntax tree of Julia ``source`` (written to a file in ``tmp_dir`` for fatou)."""
    path = Path(tmp_dir) / "snippet.jl"
    path.write_text(source, encoding="utf-8")
    return parse(path)


def walk(tree: Tree) -> Iterator[Node]:
    """Every node of ``tree``, depth first."""
    if isinstance(tree, Node):
        yield tree
        for arg in tree.args:
            yield from walk(arg)


def literal(tree: Tree) -> Optional[str]:
    """The text of a plain string literal ``"..."`` (no interpolation), else None."""
    if isinstance(tree, Node) and tree.head in ("string", "string-s") and all(isinstance(a, Str) for a in tree.args):
        return "".join(tree.args)
    return None


def symbol(tree: Tree) -> Optional[str]:
    """The name of a quoted symbol ``:name``, else None."""
    if isinstance(tree, Node) and tree.head == "quote-:" and len(tree.args) == 1 and isinstance(tree.args[0], str):
        return tree.args[0]
    return None


# ---------------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    type: Optional[str]  # the type as written when it is a plain name (``AbstractVector``), else None
    has_default: bool


@dataclass(frozen=True)
class Signature:
    """One method: ``name(positional...; keywords...)``."""

    name: str
    positional: tuple  # of Parameter
    keywords: tuple  # of Parameter
    varargs: bool

    @property
    def positional_names(self) -> tuple:
        return tuple(p.name for p in self.positional)

    @property
    def keyword_names(self) -> tuple:
        return tuple(p.name for p in self.keywords)

    def accepts(self, n_positional: int, keywords) -> bool:
        required = sum(not p.has_default for p in self.positional)
        fits = required <= n_positional and (self.varargs or n_positional <= len(self.positional))
        return fits and set(keywords) <= set(self.keyword_names)


def _parameter(arg: Tree) -> Optional[Parameter]:
    default = False
    if isinstance(arg, Node) and arg.head == "=":
        arg, default = arg.args[0], True
    if isinstance(arg, str):
        return Parameter(arg, None, default)
    if isinstance(arg, Node) and arg.head == "::-i" and len(arg.args) == 2 and isinstance(arg.args[0], str):
        kind = arg.args[1]
        return Parameter(arg.args[0], kind if isinstance(kind, str) else None, default)
    return None


def _signature(call: Node) -> Optional[Signature]:
    while call.head in ("where", "::-i") and isinstance(call.args[0], Node):  # f(x::T) where T; f(x)::R
        call = call.args[0]
    if call.head != "call" or not isinstance(call.args[0], str):
        return None
    positional, keywords, varargs = [], [], False
    for arg in call.args[1:]:
        if isinstance(arg, Node) and arg.head == "parameters":
            keywords = [p for p in map(_parameter, arg.args) if p is not None]
        elif isinstance(arg, Node) and arg.head == "...":
            varargs = True
        else:
            parameter = _parameter(arg)
            positional.append(parameter if parameter is not None else Parameter("_", None, False))
    return Signature(call.args[0], tuple(positional), tuple(keywords), varargs)


def _module_children(tree: Node) -> Iterator[tuple[str, Node]]:
    """``(module name, node)`` for each top-level node of each module (``Main`` outside any)."""

    def visit(node: Node, module: str):
        for arg in node.args:
            if isinstance(arg, Node) and arg.head == "module":
                name, body = arg.args[0], arg.args[-1]
                yield from visit(body, name)
            elif isinstance(arg, Node) and arg.head == "doc":
                yield from visit(Node("block", arg.args[1:]), module)
            elif isinstance(arg, Node):
                yield module, arg

    yield from visit(tree, "Main")


def includes(path) -> list[tuple[str, Path]]:
    """``(module, included file)`` for every ``include("f.jl")`` / ``include(joinpath(@__DIR__, "f.jl"))``."""
    path = Path(path)
    out = []
    for module, node in _module_children(parse(path)):
        if node.head == "call" and node.args[0] == "include":
            target = node.args[1]
            if isinstance(target, Node) and target.head == "call" and target.args[0] == "joinpath":
                target = target.args[-1]
            name = literal(target)
            if name is not None:
                out.append((module, path.parent / name))
    return out


def definitions(path) -> dict[str, dict[str, list[Signature]]]:
    """``{module: {function name: [methods]}}`` defined in the file at ``path`` and the files it includes,
    an included file's definitions belonging to the module that includes it."""
    path = Path(path)
    found: dict[str, dict[str, list[Signature]]] = {}
    for module, node in _module_children(parse(path)):
        if node.head in ("function", "function-=") and isinstance(node.args[0], Node):
            signature = _signature(node.args[0])
            if signature is not None:
                found.setdefault(module, {}).setdefault(signature.name, []).append(signature)
    for module, included in includes(path):
        for inner_module, functions in definitions(included).items():
            target = module if inner_module == "Main" else inner_module
            for name, methods in functions.items():
                found.setdefault(target, {}).setdefault(name, []).extend(methods)
    return found


def constants(path) -> dict[str, Tree]:
    """``const NAME = value`` of the file and the files it includes, by name (any module)."""
    path = Path(path)
    found = {}
    for _, node in _module_children(parse(path)):
        if node.head == "const" and isinstance(node.args[0], Node) and node.args[0].head == "=":
            name, value = node.args[0].args
            if isinstance(name, str):
                found[name] = value
    for _, included in includes(path):
        found.update(constants(included))
    return found


def string_pairs(tree: Tree) -> list[tuple[str, Tree]]:
    """The ``"name" => value`` pairs of a tuple of pairs (``("identity" => identity, ...)``), in order."""
    out = []
    if isinstance(tree, Node) and tree.head.startswith("tuple"):
        for arg in tree.args:
            if isinstance(arg, Node) and arg.head == "call-i" and len(arg.args) == 3 and arg.args[1] == "=>":
                name = literal(arg.args[0])
                if name is not None:
                    out.append((name, arg.args[2]))
    return out

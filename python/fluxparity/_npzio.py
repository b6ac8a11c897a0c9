"""Read a ``.npz`` file safely: every entry's header is checked before any of its data is read.

``numpy.load`` on a ``.npz`` reads an entry's whole data the moment it is indexed, before its caller can
look at its shape: a 4 MB file that declares a 5e8-element array takes gigabytes and many seconds before a
shape error. :func:`read_npz` instead lists the archive (:func:`npz_headers`: name, shape, dtype, Fortran
order, from each ``.npy`` header via ``numpy.lib.format``), compares every entry with what the caller
expects (:class:`Expect`), and only then reads the data — exactly the declared number of bytes, never
with ``allow_pickle``. Every problem raises one error type, :class:`NpzError`, naming the file, the
entry, what was expected and what was found; missing and unexpected entries are listed together, as
``torch.nn.Module.load_state_dict`` does.

Arrays come back C-contiguous, in native byte order, with the dtype the file declared (one of the allowed
ones); a text entry (:meth:`Expect.text`: a NumPy ``str`` or ``bytes`` scalar or 0-d array) comes back as a
Python ``str``, and so does ASCII text stored as a uint8 array (:meth:`Expect.ascii`, the weights format's way).
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
from numpy.lib import format as npy_format

# A .npy header is a few hundred bytes; anything past this is not a header numpy wrote.
_MAX_HEADER_BYTES = 10_000
DEFAULT_MAX_BYTES = 1 << 31  # 2 GiB of array data per file unless the caller allows more


class NpzError(ValueError):
    """A ``.npz`` file is not what was expected. ``str()`` is one paragraph naming the file and the entry.

    Attributes: ``path``, ``entry`` (None for the file as a whole), ``expected``, ``found``,
    ``missing`` and ``unexpected`` (entry names; empty unless the set of entries was wrong).
    """

    def __init__(self, path, entry: Optional[str], expected: str, found: str,
                 missing: Sequence[str] = (), unexpected: Sequence[str] = ()) -> None:
        self.path, self.entry, self.expected, self.found = str(path), entry, expected, found
        self.missing, self.unexpected = tuple(missing), tuple(unexpected)
        where = f"{self.path}" + (f", entry {_cut(entry, 120)!r}" if entry is not None else "")
        super().__init__(f"{where}: expected {_cut(expected)}, found {_cut(found)}")


def _cut(text: str, limit: int = 400) -> str:
    """``text`` of at most about ``limit`` characters: its start and end, the middle left out."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[: limit // 2]} … {text[-(limit // 2):]}"


def name_list(names: Sequence[str], limit: int = 8) -> str:
    """``'a', 'b', 'c'``; past ``limit`` names, ``… and N more``: an error stays one short line even for a
    file with 100,000 stray entries (the full lists are the error's ``missing``/``unexpected``)."""
    names = list(names)
    shown = ", ".join(repr(n[:80]) for n in names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")


class Header(NamedTuple):
    """One entry's ``.npy`` header: what its data would be, read without reading the data."""

    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    data_bytes: int  # bytes of data the archive member holds after the header


@dataclass(frozen=True)
class Expect:
    """What one entry must be.

    ``shape``: a tuple whose items are ints or None (any length on that axis), or None for any shape;
    ``dtypes``: the allowed dtype names (e.g. ``("float32", "float64")``: float16 is then refused);
    ``finite``: refuse NaN and Inf; ``text``: a string (see :meth:`text`).
    """

    shape: Optional[tuple] = None
    dtypes: tuple = ("float64",)
    finite: bool = False
    is_text: bool = False

    is_ascii: bool = False

    @classmethod
    def text(cls) -> "Expect":
        """Text stored as a NumPy ``str`` or ``bytes`` scalar (0-d array)."""
        return cls(shape=(), dtypes=(), is_text=True)

    @classmethod
    def ascii(cls, max_length: int = 256) -> "Expect":
        """Text stored as a ``(n,)`` uint8 array of ASCII codes (what NPZ.jl can read), ``n <= max_length``."""
        return cls(shape=(None,), dtypes=("uint8",), is_ascii=True, max_length=max_length)

    max_length: int = 256

    def describe(self) -> str:
        if self.is_text:
            return "text (a NumPy str or bytes scalar)"
        if self.is_ascii:
            return f"ASCII text as a uint8 array of at most {self.max_length} codes"
        shape = "any shape" if self.shape is None else "shape (" + ", ".join(
            "any" if n is None else str(n) for n in self.shape) + ("," if len(self.shape) == 1 else "") + ")"
        return f"{' or '.join(self.dtypes)} of {shape}"


def _member_name(info: zipfile.ZipInfo) -> str:
    return info.filename[:-4] if info.filename.endswith(".npy") else info.filename


def _read_header(path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Header:
    name = _member_name(info)
    with archive.open(info) as fp:
        try:
            version = npy_format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fp, max_header_size=_MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(fp, max_header_size=_MAX_HEADER_BYTES)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = fp.tell()
        except (ValueError, EOFError, OSError, SyntaxError, zipfile.BadZipFile) as exc:
            raise NpzError(path, name, "a .npy array header", f"none readable ({type(exc).__name__}: {exc})") from None
    return Header(tuple(int(n) for n in shape), np.dtype(dtype), bool(fortran), info.file_size - offset)


_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


def check_path(argument: str, value) -> str:
    """``value`` as a ``str`` file name; a TypeError naming ``argument`` unless it is a ``str`` or a
    ``str``-valued ``os.PathLike`` (bytes paths are refused: every name here is text)."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, str):
            return text
    raise TypeError(f"{argument} must be a file name (str or pathlib.Path), got {type(value).__name__}"
                    + (f" {value[:60]!r}" if isinstance(value, bytes) else ""))


def open_regular_file(path: Union[str, Path]):
    """``path`` opened for binary reading, refused (:class:`NpzError`) unless it is a regular file.

    Symlinks are followed, then the file opened is checked with ``fstat`` (no gap between check and use):
    a link to ``/dev/zero`` or ``/dev/urandom`` (endless data), a FIFO (a read blocks until a writer comes;
    ``O_NONBLOCK`` makes the open itself return at once) or a directory never reaches ``zipfile``.
    """
    path = check_path("path", path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise NpzError(path, None, "a .npz file", "no such file") from None
    except OSError as exc:
        if os.path.isdir(path):
            raise NpzError(path, None, "a regular .npz file", "a directory") from None
        raise NpzError(path, None, "a readable .npz file", f"{type(exc).__name__}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        found = next((what for test, what in _NOT_REGULAR if test(mode)), "not a regular file")
        raise NpzError(path, None, "a regular .npz file", found)
    if flags & getattr(os, "O_NONBLOCK", 0):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


@contextlib.contextmanager
def _open_archive(path):
    """The zip archive at ``path`` (a regular file only: :func:`open_regular_file`), closed with its file."""
    with open_regular_file(path) as f:
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise NpzError(path, None, "a .npz (zip) archive", f"{type(exc).__name__}: {exc}") from None
        with archive:
            yield archive


def npz_headers(path: Union[str, Path]) -> dict[str, Header]:
    """Every entry of the ``.npz`` at ``path`` with its header, in archive order. Reads no array data."""
    with _open_archive(path) as archive:
        headers: dict[str, Header] = {}
        for info in archive.infolist():
            name = _member_name(info)
            if not info.filename.endswith(".npy"):
                raise NpzError(path, name, "only .npy arrays in the archive", f"a member named {info.filename!r}")
            if name in headers:
                raise NpzError(path, name, "each entry once", "it twice")
            headers[name] = _read_header(path, archive, info)
    return headers


def _check_header(path, name: str, header: Header, expect: Expect, max_bytes: int) -> None:
    dtype = header.dtype
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise NpzError(path, name, expect.describe(), f"dtype {dtype} (objects and records are never read)")
    if expect.is_text:
        if dtype.kind not in "US" or header.shape != ():
            raise NpzError(path, name, expect.describe(), f"{dtype} of shape {header.shape}")
    else:
        if dtype.name not in expect.dtypes:
            raise NpzError(path, name, expect.describe(), f"{dtype.name} of shape {header.shape}")
        if expect.is_ascii and header.shape and header.shape[0] > expect.max_length:
            raise NpzError(path, name, expect.describe(), f"{header.shape[0]} codes")
        if expect.shape is not None and (len(expect.shape) != len(header.shape) or any(
                want is not None and want != got for want, got in zip(expect.shape, header.shape))):
            raise NpzError(path, name, expect.describe(), f"{dtype.name} of shape {header.shape}")
    nbytes = math.prod(header.shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise NpzError(path, name, f"at most {max_bytes} bytes of data", f"a header declaring {nbytes} bytes")
    if nbytes != header.data_bytes:
        raise NpzError(path, name, f"{nbytes} bytes of data for shape {header.shape} and dtype {dtype}",
                       f"{header.data_bytes} bytes (a truncated or inconsistent file)")


def _read_data(path, archive: zipfile.ZipFile, name: str, header: Header) -> np.ndarray:
    """The entry's data, exactly the bytes its (already checked) header declares, as a read-only array."""
    info = archive.getinfo(name + ".npy")
    nbytes = math.prod(header.shape) * header.dtype.itemsize
    try:
        with archive.open(info) as fp:
            fp.read(info.file_size - header.data_bytes)  # the header, whose length _read_header measured
            data = fp.read(nbytes)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise NpzError(path, name, "readable data", f"{type(exc).__name__}: {exc}") from None
    if len(data) != nbytes:
        raise NpzError(path, name, f"{nbytes} bytes of data", f"{len(data)} (a truncated file)")
    return np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order="F" if header.fortran_order else "C")


def read_npz(path: Union[str, Path], expected: Mapping[str, Expect], *, allow_unexpected: bool = False,
             max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The entries of ``expected`` from the ``.npz`` at ``path``, each checked before its data is read.

    Returns ``{name: array or str}`` in the order of ``expected``; arrays are C-contiguous, native byte
    order, writable copies. Raises :class:`NpzError` if an entry is missing, unexpected (unless
    ``allow_unexpected``), of another shape or dtype, declares more than ``max_bytes`` bytes, is truncated,
    or (``finite``) holds NaN or Inf.
    """
    headers = npz_headers(path)
    missing = [n for n in expected if n not in headers]
    unexpected = [] if allow_unexpected else [n for n in headers if n not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append("missing key(s): " + name_list(missing))
        if unexpected:
            parts.append("unexpected key(s): " + name_list(unexpected))
        raise NpzError(path, None, "the entries " + name_list(expected), "; ".join(parts), missing, unexpected)
    total = 0
    for name, expect in expected.items():
        _check_header(path, name, headers[name], expect, max_bytes)
        total += headers[name].data_bytes
        if total > max_bytes:
            raise NpzError(path, name, f"at most {max_bytes} bytes of data in the file", f"{total} bytes so far")
    out: dict = {}
    with _open_archive(path) as archive:
        for name, expect in expected.items():
            raw = _read_data(path, archive, name, headers[name])
            if expect.is_text:
                value = raw[()]
                try:
                    out[name] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
                except UnicodeDecodeError as exc:
                    raise NpzError(path, name, "UTF-8 text", f"undecodable bytes ({exc.reason})") from None
                continue
            if expect.is_ascii:
                try:
                    out[name] = raw.tobytes().decode("ascii")
                except UnicodeDecodeError:
                    raise NpzError(path, name, "ASCII text", f"the bytes {raw.tobytes()[:40]!r}") from None
                continue
            array = np.ascontiguousarray(raw.astype(raw.dtype.newbyteorder("="), copy=True))
            if expect.finite and array.dtype.kind in "fc" and not np.isfinite(array).all():
                bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
                raise NpzError(path, name, "finite values", f"{bad} NaN or Inf value(s)")
            out[name] = array
    return out

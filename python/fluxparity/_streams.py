"""stdout and stderr that cannot change a run: what the device refuses (a full disk, ``/dev/full``, a reader
that went away) is dropped, and the run goes on to write its report and exit with its verdict's code."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, Optional, TextIO


class ForgivingStream:
    """A text stream wrapper whose ``write`` and ``flush`` never raise ``OSError``/``ValueError``.

    After the first refusal everything further is dropped, and the file descriptor is pointed at
    ``/dev/null`` so that the interpreter's own flush at exit finds nothing to complain about (Python's advice
    for ``SIGPIPE``). Every other attribute (``fileno``, ``isatty``, ``encoding``) is the wrapped stream's.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.refused: Optional[str] = None  # why the device refused text (its strerror), once it did

    def write(self, text: str) -> int:
        if not self.refused:
            try:
                self._stream.write(text)
            except (OSError, ValueError) as exc:
                self._refuse(exc)
        return len(text)

    def flush(self) -> None:
        if not self.refused:
            try:
                self._stream.flush()
            except (OSError, ValueError) as exc:
                self._refuse(exc)

    def _refuse(self, exc: BaseException) -> None:
        self.refused = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
            self._stream.flush()  # the text the device refused is still buffered: now it goes to /dev/null
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def forgiving_standard_streams() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` wrapped in :class:`ForgivingStream` for the duration (restored after)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (s if isinstance(s, ForgivingStream) or s is None else ForgivingStream(s) for s in saved)
    try:
        yield
    finally:
        out, err = sys.stdout, sys.stderr
        for wrapper in (out, err):
            if isinstance(wrapper, ForgivingStream):
                wrapper.flush()
        if isinstance(out, ForgivingStream) and out.refused:  # said once, where it can still be read
            err.write(f"fluxparity: stdout refused the text ({out.refused}); the files and the exit code "
                      "are unaffected\n")
            err.flush()
        sys.stdout, sys.stderr = saved

"""stdout and stderr that cannot change a run: what the device refuses (a full disk, ``/dev/full``, a reader
that went away) is dropped, and the run goes on to write its report and exit with its verdict's code."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, TextIO


class ForgivingStream:
    """A text stream wrapper whose ``write`` and ``flush`` never raise ``OSError``/``ValueError``.

    After the first refusal everything further is dropped, and the file descriptor is pointed at
    ``/dev/null`` so that the interpreter's own flush at exit finds nothing to complain about (Python's advice
    for ``SIGPIPE``). Every other attribute (``fileno``, ``isatty``, ``encoding``) is the wrapped stream's.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.refused = False

    def write(self, text: str) -> int:
        if not self.refused:
            try:
                self._stream.write(text)
            except (OSError, ValueError):
                self._refuse()
        return len(text)

    def flush(self) -> None:
        if not self.refused:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._refuse()

    def _refuse(self) -> None:
        self.refused = True
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
        for wrapper in (sys.stdout, sys.stderr):
            if isinstance(wrapper, ForgivingStream):
                wrapper.flush()
        sys.stdout, sys.stderr = saved

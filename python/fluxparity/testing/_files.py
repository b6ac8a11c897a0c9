"""One file written atomically: into a temporary file in the same folder, then renamed over the target, so
that a reader never sees half a file and an interrupted write leaves nothing behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable, *, binary: bool) -> Path:
    """``write(f)`` into a temporary file next to ``path`` (opened ``"wb"`` or ``"w"`` UTF-8), then rename it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

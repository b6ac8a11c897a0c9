"""One file written atomically: the ONE way fluxparity replaces a file of the user's.

The content goes into a temporary file in the target's own folder (same file system), is flushed and
``fsync``-ed, then renamed over the target in one step, and the folder is ``fsync``-ed. A reader sees the old
file or the new one, never half of one; a run that fails or is killed (even by SIGKILL) before the rename
leaves the old file byte-identical. The temporary file is ``.NAME.fluxparity-tmp-XXXXXXXX``; a killed
run's is removed by the next :func:`write_atomically` to the same name (:func:`remove_stale_temporaries`).
The new file gets the mode an ordinary ``open(path, "w")`` would give it (``0o666`` less the umask).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

_TMP_INFIX = ".fluxparity-tmp-"


def umask() -> int:
    """The process's umask (read without leaving it changed)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_folder(folder) -> None:
    """``fsync`` a folder so a rename in it survives a power cut (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_prefix(path: Path) -> str:
    return f".{path.name}{_TMP_INFIX}"


def remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files an interrupted write to ``path`` left beside it (regular files only)."""
    prefix = temporary_prefix(path)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name.startswith(prefix) and len(name) == len(prefix) + 8 and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def write_atomically(path, write: Callable, *, binary: bool, check: Optional[Callable[[Path], object]] = None) -> Path:
    """``write(f)`` into a temporary file beside ``path`` (opened ``"wb"`` or ``"w"`` UTF-8), then rename it
    over ``path``. Returns ``path``. Any exception (or signal) in ``write`` leaves ``path`` as it was.

    ``check(temporary_path)``, when given, reads the finished temporary file back before the rename: whatever it
    raises (a file the reader would refuse) is raised here, and ``path`` is left as it was."""
    path = Path(path)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path))
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; the file is an ordinary one
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path

"""Writing a port's files: every target checked before any is written, each written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ._names import PortError


class PortFileError(PortError):
    """A file would be overwritten (without ``force``) or the folder cannot hold the files."""


def check_targets(out: Path, names, *, force: bool) -> list[Path]:
    """The paths ``out/name``; PortFileError if ``out`` is not a folder (or cannot be made one) or, unless
    ``force``, if any of them exists — every name checked before anything is written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PortFileError(f"--out {str(out)!r} exists and is not a folder")
    if not out.exists() and not out.parent.is_dir():
        raise PortFileError(f"--out {str(out)!r}: its parent folder {str(out.parent)!r} does not exist")
    paths = [out / name for name in names]
    existing = [p.name for p in paths if p.exists() or p.is_symlink()]
    if existing and not force:
        raise PortFileError(f"{', '.join(existing)} already exist(s) in {str(out)!r}; pass --force to overwrite "
                            "(nothing was written)")
    return paths


def write_files(out: Path, files: dict, *, force: bool) -> list[Path]:
    """Write ``files`` (``{name: str or bytes}``) into ``out`` (created if missing): targets checked first
    (:func:`check_targets`), then each written to a temporary file beside it and renamed over it."""
    paths = check_targets(out, files, force=force)
    Path(out).mkdir(exist_ok=True)
    for path, content in zip(paths, files.values()):
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return paths

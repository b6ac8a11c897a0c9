"""Compile with numba, caching the machine code where a cache can be written — or not caching at all.

``numba.njit(cache=True)`` raises ``RuntimeError: cannot cache function ...`` at decoration when none of
its places can be written (the package's ``__pycache__`` in a read-only image, an unwritable home cache).
A cache only saves start-up time, so :func:`njit_cached` falls back, in order, to: numba's own places;
a private folder of this user under the temporary directory (``fluxparity-numba-<uid>``, mode 0700, set
as ``numba.config.CACHE_DIR``); no cache.
"""

from __future__ import annotations

import os
import stat
import tempfile
from typing import Callable, Optional


def private_cache_dir() -> Optional[str]:
    """A folder only this user can write, under the temporary directory; None if there can be none."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    path = os.path.join(tempfile.gettempdir(), f"fluxparity-numba-{uid}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            return None  # a symlink or someone else's folder: never cache there
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError:
        return None
    return path


def _cannot_cache(exc: RuntimeError) -> bool:
    return "cannot cache" in str(exc)


def njit_cached(fn: Callable) -> Callable:
    """``numba.njit(cache=True)(fn)`` if a cache can be written anywhere, else ``numba.njit(fn)``."""
    import numba

    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError as exc:
        if not _cannot_cache(exc):
            raise
    folder = private_cache_dir()
    if folder is not None:
        numba.config.CACHE_DIR = folder  # read by numba each time it looks for a cache place
        try:
            return numba.njit(cache=True)(fn)
        except RuntimeError as exc:
            if not _cannot_cache(exc):
                raise
    return numba.njit(fn)

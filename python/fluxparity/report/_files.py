"""The output folder: checked before training, locked while a run owns it, replaced as a whole.

A run renders every file into a scratch folder *beside* ``out_dir`` (same file system), then swaps that
folder in for ``out_dir`` in one step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames,
undone on failure). So a reader sees the old report or the new one, never a mix; a run that fails or is
killed before the swap leaves the old report byte-identical; a run that fails at the swap puts the old
folder back. A lock file beside ``out_dir`` (``.NAME.fluxparity-lock``, ``flock``) keeps two runs from
writing one folder at the same time: the second is refused at once.

Because the whole folder is replaced, it may hold only the report's own files: a folder with anything
else in it is refused before any training (:class:`OutFolderError`), so nothing of the user's is lost.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional

from ._csv import write_losses_csv
from ._json import experiment_to_dict
from ._markdown import experiment_markdown
from ._plot import plot_loss_curves

FILES = ("report.json", "report.md", "losses.csv", "loss_curves.png")
_SCRATCH_PREFIX = ".fluxparity-"  # every scratch name beside or inside out_dir starts with it


class OutFolderError(Exception):
    """``out_dir`` cannot take a report: a one-line reason naming the folder."""


def check_out_folder(out_dir, names: Iterable[str]) -> None:
    """Refuse, before any work, a folder that cannot be replaced by a report of ``names``. Creates nothing."""
    out_dir = Path(out_dir)
    text = str(out_dir)
    if text in ("", "."):
        raise OutFolderError(f"--out {text!r} names no folder of its own; give a new or report folder's name")
    name_bytes = len(os.fsencode(out_dir.absolute().name))
    if name_bytes + 40 > 255:  # file systems allow 255 bytes a name; the scratch names add up to 40
        raise OutFolderError(f"--out {text!r}: the folder name is too long ({name_bytes} bytes; at most 215)")
    try:
        _check_existing(out_dir, names, text)
    except OSError as exc:
        raise OutFolderError(f"--out {text!r} cannot be used: {exc.strerror or exc}") from None


def _check_existing(out_dir: Path, names, text: str) -> None:
    resolved = out_dir.resolve()
    if resolved == Path(resolved.anchor) or Path.cwd().resolve().is_relative_to(resolved):
        raise OutFolderError(f"--out {text!r} is the current folder or one above it; the report folder is "
                             "replaced as a whole, so give a folder of its own")
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise OutFolderError(f"--out {text!r} exists and is not a directory")
    if out_dir.is_dir():
        # scratch that older fluxparity versions left inside the folder is ours, and goes with the swap
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in names
                         and not p.name.startswith(_SCRATCH_PREFIX))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise OutFolderError(f"--out {text!r} holds files that are not a fluxparity report ({shown}); the report "
                                 "folder is replaced as a whole, so give a new folder or an earlier report's")
    parent = resolved.parent
    probe = parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise OutFolderError(f"--out {text!r} cannot be created: {str(probe)!r} is not a directory")


class OutLock:
    """An exclusive ``flock`` on ``.NAME.fluxparity-lock`` beside ``out_dir``, held until :meth:`release`.

    Creates the missing parent folders of ``out_dir`` (they are needed for the lock and the scratch folder);
    :meth:`release` removes the ones it created if they are still empty.
    """

    def __init__(self, out_dir) -> None:
        import fcntl

        self.out_dir = Path(out_dir).absolute()
        parent = self.out_dir.parent
        missing = []
        probe = parent
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._created = missing  # deepest first
        self.path = parent / f".{self.out_dir.name}.fluxparity-lock"
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    self._remove_created()
                    raise OutFolderError(f"--out {str(out_dir)!r} is being written by another fluxparity run "
                                         f"(lock {self.path})") from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino  # not a lock file unlinked meanwhile
            except FileNotFoundError:
                same = False
            if same:
                self._fd: Optional[int] = fd
                return
            os.close(fd)

    def _remove_created(self) -> None:
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                break

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still held: a waiting run then retries on a fresh file
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        if not self.out_dir.exists():
            self._remove_created()

    def __enter__(self) -> "OutLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or a file system without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish_folder(out_dir, names: Iterable[str], render: Callable[[Path], None]) -> list[Path]:
    """``render(scratch)`` writes ``names`` into a scratch folder beside ``out_dir``; then it replaces ``out_dir``.

    Returns the paths of ``names`` in ``out_dir``. On any failure (or interrupt) before the swap,
    ``out_dir`` is untouched and the scratch folder is gone.
    """
    out_dir = Path(out_dir).absolute()
    names = tuple(names)
    check_out_folder(out_dir, names)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}{_SCRATCH_PREFIX}new-", dir=out_dir.parent))
    old: Optional[Path] = None
    try:
        render(scratch)
        missing = [n for n in names if not (scratch / n).is_file()]
        if missing:
            raise RuntimeError(f"the report renderer wrote no {', '.join(missing)}")
        for name in names:
            with open(scratch / name, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(scratch, 0o777 & ~_umask())  # mkdtemp makes it 0700; a report folder is an ordinary one
        if not out_dir.exists():
            os.rename(scratch, out_dir)
        elif _exchange(scratch, out_dir):
            old = scratch  # now holds the previous report
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}{_SCRATCH_PREFIX}old-", dir=out_dir.parent))
            os.rename(out_dir, old / "report")
            try:
                os.rename(scratch, out_dir)
            except BaseException:
                os.rename(old / "report", out_dir)  # put the earlier report back
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [out_dir / name for name in names]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _render_reports(experiment, folder: Path) -> None:
    with open(folder / "report.json", "w") as f:
        json.dump(experiment_to_dict(experiment), f, allow_nan=False)
    (folder / "report.md").write_text(experiment_markdown(experiment))
    write_losses_csv(experiment, folder / "losses.csv")
    plot_loss_curves(experiment, folder / "loss_curves.png")


def write_reports(experiment, out_dir) -> list[Path]:
    """Render the four files beside ``out_dir`` and swap them in as one folder. Returns the paths."""
    return publish_folder(out_dir, FILES, lambda folder: _render_reports(experiment, folder))

"""The output folder: checked before training, locked while a run owns it, its report files replaced one by one.

A run renders every file into a scratch folder INSIDE ``out_dir`` (``.fluxparity-new-XXXXXXXX``: same file
system, also when ``out_dir`` is a mount point such as a container volume), fsyncs them, then renames each
over its name in ``out_dir`` (``report.json`` last) and removes the scratch. The folder itself is never
renamed or removed, and nothing in it but the report's own names is ever replaced: a user's file put there
(even during the run) stays. A run that fails or is killed before the renames leaves the old report
byte-identical; each file is replaced in one step, so a reader sees a whole old or a whole new file. A lock
file beside ``out_dir`` (``.NAME.fluxparity-lock``, ``flock``, never a symlink) keeps two runs from writing
one folder at the same time: the second is refused at once. The run holding the lock first removes what
killed runs left: scratch inside ``out_dir`` (``.fluxparity-*``) and, from versions that swapped whole
folders, ``.NAME.fluxparity-new-*``/``-old-*`` beside it.

A folder holding anything but the report's own files (or a report name that is a folder with something in
it) is refused before any training (:class:`OutFolderError`), so a report never lands among a user's files.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional

from .._atomic import fsync_folder
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
            raise OutFolderError(f"--out {text!r} holds files that are not a fluxparity report ({shown}); give a new "
                                 "folder or an earlier report's")
        _check_report_names(out_dir, names, text)
    parent = resolved.parent
    probe = parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise OutFolderError(f"--out {text!r} cannot be created: {str(probe)!r} is not a directory")


def _check_report_names(out_dir: Path, names, text: str) -> None:
    """A report name that is a folder with something in it is the user's: refused, never replaced."""
    for name in names:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink() and any(path.iterdir()):
            raise OutFolderError(f"--out {text!r}: {name!r} is a folder with files in it, not a report file; "
                                 "move it or give another folder")


def remove_stale_scratch(out_dir) -> None:
    """Remove what killed runs left (call only while holding :class:`OutLock`): ``.fluxparity-*`` inside
    ``out_dir`` and ``.NAME.fluxparity-new-*``/``-old-*`` beside it. Symlinks are unlinked, never followed."""
    out_dir = Path(out_dir).absolute()
    found = []
    if out_dir.is_dir() and not out_dir.is_symlink():
        found += [p for p in out_dir.iterdir() if p.name.startswith(_SCRATCH_PREFIX)]
    beside = tuple(f".{out_dir.name}{_SCRATCH_PREFIX}{kind}-" for kind in ("new", "old"))
    if out_dir.parent.is_dir():
        found += [p for p in out_dir.parent.iterdir() if p.name.startswith(beside)]
    for path in found:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass  # not ours to fight over: the report is still written


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
            try:  # O_NOFOLLOW: a symlink placed at the lock's name is never followed
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP or self.path.is_symlink():
                    self._remove_created()
                    raise OutFolderError(f"--out {str(out_dir)!r}: the lock {str(self.path)!r} is a symbolic link, "
                                         "not fluxparity's lock file; remove it") from None
                raise
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
                same = os.fstat(fd).st_ino == os.lstat(self.path).st_ino  # not a lock file unlinked meanwhile
            except FileNotFoundError:
                same = False
            if same:
                self._fd: Optional[int] = fd
                remove_stale_scratch(self.out_dir)  # ours alone now: what killed runs left goes
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


def publish_folder(out_dir, names: Iterable[str], render: Callable[[Path], None]) -> list[Path]:
    """``render(scratch)`` writes ``names`` into a scratch folder inside ``out_dir``; then each replaces its name.

    Returns the paths of ``names`` in ``out_dir``. On any failure (or interrupt) before the renames,
    ``out_dir`` is untouched (a folder this call created is removed again) and the scratch folder is gone.
    Nothing but ``names`` is replaced, and ``out_dir`` itself is never renamed (it may be a mount point).
    """
    out_dir = Path(out_dir).absolute()
    names = tuple(names)
    check_out_folder(out_dir, names)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}new-", dir=out_dir))
    try:
        render(scratch)
        missing = [n for n in names if not (scratch / n).is_file()]
        if missing:
            raise RuntimeError(f"the report renderer wrote no {', '.join(missing)}")
        for name in names:
            with open(scratch / name, "rb") as f:
                os.fsync(f.fileno())
        for name in sorted(names, key=lambda n: n == "report.json"):  # report.json last: the run's record
            target = out_dir / name
            if target.is_dir() and not target.is_symlink():
                try:
                    target.rmdir()  # an empty folder where a report file belongs; never one with files in it
                except OSError:
                    raise OutFolderError(f"--out {str(out_dir)!r}: {name!r} is a folder with files in it, not a "
                                         "report file; move it or give another folder") from None
            os.replace(scratch / name, target)
        fsync_folder(out_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        if created:
            try:
                out_dir.rmdir()  # only if still empty
            except OSError:
                pass
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    return [out_dir / name for name in names]


def _render_reports(experiment, folder: Path) -> None:
    with open(folder / "report.json", "w") as f:
        json.dump(experiment_to_dict(experiment), f, allow_nan=False)
    (folder / "report.md").write_text(experiment_markdown(experiment))
    write_losses_csv(experiment, folder / "losses.csv")
    plot_loss_curves(experiment, folder / "loss_curves.png")


def write_reports(experiment, out_dir) -> list[Path]:
    """Render the four files into a scratch folder inside ``out_dir``, then replace each. Returns the paths."""
    return publish_folder(out_dir, FILES, lambda folder: _render_reports(experiment, folder))

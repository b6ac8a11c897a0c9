"""The report folder without a training run (issue 21): ``check_out_folder`` refuses before any work what must
be refused and creates nothing; ``publish_folder`` replaces only the report's names, ``report.json`` last, and
leaves the folder as it was on failure; ``OutLock`` creates and removes its missing parents, refuses a second
holder and never takes a lock on a file no longer at the lock's name. Fast: small render functions, no
training."""

import os
import stat

import pytest

from fluxparity.report._files import OutFolderError, OutLock, check_out_folder, publish_folder

NAMES = ("report.json", "report.md", "losses.csv")


def _render(names=NAMES, text="new"):
    def render(folder):
        for name in names:
            (folder / name).write_text(f"{text} {name}")
    return render


def _refusal(out, names=NAMES) -> str:
    with pytest.raises(OutFolderError) as error:
        check_out_folder(out, names)
    message = str(error.value)
    assert "\n" not in message and repr(str(out)) in message  # one line naming the folder as given
    return message


# --------------------------------------------------------------------------------------- check_out_folder
def test_a_folder_holding_the_users_files_is_refused_naming_five_of_them(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    for name in "edcba":
        (out / f"{name}.txt").write_text("mine")
    assert "(a.txt, b.txt, c.txt, d.txt, e.txt);" in _refusal(out)
    (out / "f.txt").write_text("mine")
    assert "(a.txt, b.txt, c.txt, d.txt, e.txt, ...);" in _refusal(out)  # the sixth is left out
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt"]


def test_a_report_name_that_is_a_folder_with_files_is_refused_before_any_work(tmp_path):
    out = tmp_path / "o"
    (out / "report.md").mkdir(parents=True)
    (out / "report.md" / "notes.txt").write_text("mine")
    assert "'report.md' is a folder with files in it" in _refusal(out)
    check_out_folder(tmp_path / "p", NAMES)  # a folder not there yet is fine ...
    assert not (tmp_path / "p").exists()  # ... and is not created by the check


def test_a_file_or_a_symlink_at_the_folders_name_is_refused(tmp_path):
    (tmp_path / "file").write_text("mine")
    assert "exists and is not a directory" in _refusal(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert "exists and is not a directory" in _refusal(tmp_path / "link")


def test_the_current_folder_and_the_ones_above_it_are_refused(tmp_path, monkeypatch):
    out = tmp_path / "o"
    (out / "sub").mkdir(parents=True)
    monkeypatch.chdir(out)
    assert "current folder or one above it" in _refusal(out)
    monkeypatch.chdir(out / "sub")
    assert "current folder or one above it" in _refusal(out)


def test_a_folder_under_a_regular_file_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("mine")
    assert "cannot be created" in _refusal(tmp_path / "file" / "o")
    assert "cannot be created" in _refusal(tmp_path / "file" / "deeper" / "o")
    check_out_folder(tmp_path / "missing" / "deeper" / "o", NAMES)  # missing parents are fine: created later
    assert not (tmp_path / "missing").exists()


def test_a_folder_name_of_at_most_215_bytes_is_taken(tmp_path):
    """255 bytes a name on the file systems in use, less the 40 the scratch and lock names add."""
    check_out_folder(tmp_path / ("a" * 215), NAMES)
    assert "(216 bytes; at most 215)" in _refusal(tmp_path / ("a" * 216))
    assert "(216 bytes; at most 215)" in _refusal(tmp_path / ("é" * 108))  # bytes, not characters


# ------------------------------------------------------------------------------------------ publish_folder
def test_report_json_is_replaced_last(tmp_path, monkeypatch):
    """report.json is the run's record: a reader who sees the new one sees every new file beside it."""
    out = tmp_path / "o"
    replaced, real = [], os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append(os.path.basename(dst)), real(src, dst))[1])
    for names in (NAMES, ("report.md", "report.json", "losses.csv"), ("a.png", "report.json", "z.csv")):
        replaced.clear()
        publish_folder(out, names, _render(names))
        assert replaced[-1] == "report.json" and sorted(replaced) == sorted(names)
        assert all((out / n).read_text() == f"new {n}" for n in names)
        for name in names:
            (out / name).unlink()


def test_nested_missing_parents_are_created(tmp_path):
    out = tmp_path / "a" / "b" / "o"
    assert publish_folder(out, NAMES, _render()) == [out / n for n in NAMES]
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)  # and no scratch left


def test_an_empty_folder_at_a_report_name_is_replaced_by_the_file(tmp_path):
    out = tmp_path / "o"
    (out / "report.md").mkdir(parents=True)
    publish_folder(out, NAMES, _render())
    assert (out / "report.md").read_text() == "new report.md"


def test_a_renderer_that_leaves_out_a_file_is_an_error_and_changes_nothing(tmp_path):
    out = tmp_path / "o"
    publish_folder(out, NAMES, _render(text="old"))
    with pytest.raises(RuntimeError, match="wrote no losses.csv"):
        publish_folder(out, NAMES, _render(NAMES[:2]))
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)  # no scratch left behind
    assert all((out / n).read_text() == f"old {n}" for n in NAMES)


def test_a_failed_render_removes_the_folder_it_created_and_keeps_one_that_was_there(tmp_path):
    def fail(folder):
        (folder / "report.json").write_text("half")
        raise OSError("disk full")

    new = tmp_path / "new"
    with pytest.raises(OSError, match="disk full"):
        publish_folder(new, NAMES, fail)
    assert not new.exists()
    empty = tmp_path / "empty"  # the user made it, empty, for the report
    empty.mkdir()
    with pytest.raises(OSError, match="disk full"):
        publish_folder(empty, NAMES, fail)
    assert empty.is_dir() and list(empty.iterdir()) == []


# --------------------------------------------------------------------------------------------------- OutLock
def test_the_lock_creates_missing_parents_and_removes_them_when_no_report_was_written(tmp_path):
    out = tmp_path / "a" / "b" / "o"
    lock = OutLock(out)
    assert (tmp_path / "a" / "b" / ".o.fluxparity-lock").is_file()
    lock.release()
    assert list(tmp_path.iterdir()) == []
    lock.release()  # a second release (e.g. __exit__ after release) does nothing
    with OutLock(out):
        out.mkdir()
    assert out.is_dir() and list(out.parent.iterdir()) == [out]  # the parents of a written report stay


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(tmp_path):
    out = tmp_path / "o"
    with OutLock(out) as first:
        with pytest.raises(OutFolderError, match="being written by another fluxparity run"):
            OutLock(out)
        assert first.path.exists()
    assert not first.path.exists()
    with OutLock(out):  # free again
        pass


def test_the_lock_file_is_not_executable(tmp_path):
    with OutLock(tmp_path / "o") as lock:
        mode = stat.S_IMODE(lock.path.stat().st_mode)
    assert mode & 0o111 == 0 and mode & 0o600 == 0o600


def test_a_directory_at_the_locks_name_is_not_called_a_symbolic_link(tmp_path):
    (tmp_path / ".o.fluxparity-lock").mkdir()
    with pytest.raises(IsADirectoryError):
        OutLock(tmp_path / "o")


def test_a_lock_file_unlinked_before_it_is_checked_is_not_the_lock(tmp_path, monkeypatch):
    """A run that releases unlinks the lock file; one that opened it just before must take a fresh file, or two
    runs would each hold a lock on a different file."""
    lock_name = tmp_path / ".o.fluxparity-lock"
    real_lstat, unlinked = os.lstat, []

    def released_meanwhile(path, *args, **kwargs):
        if os.fspath(path) == str(lock_name) and not unlinked:
            unlinked.append(path)
            os.unlink(path)  # the other run's release, between our open and our check
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", released_meanwhile)
    with OutLock(tmp_path / "o"):
        assert unlinked and lock_name.is_file()
        monkeypatch.setattr(os, "lstat", real_lstat)
        with pytest.raises(OutFolderError, match="another fluxparity run"):
            OutLock(tmp_path / "o")  # the file at the lock's name is the one held

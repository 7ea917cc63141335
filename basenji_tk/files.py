"""Output locations and inputs, checked once for every script.

:func:`claim` is the one place where a script's output is checked and locked before any
work starts: a location that cannot be written (read-only file system, a file where a
folder is expected, no permission) is one :class:`InputError`, and a second run into the
same output while the first is still writing gets one error that names the first run's
process id. The lock is ``fcntl.flock`` on a small file, so the kernel releases it when
the holder dies, even by ``kill -9``; a stale lock file is simply locked again.

:func:`fingerprint` and :func:`check_unchanged` are what every ``--restart`` uses to
refuse an input that changed between the interrupted run and the restart. A fingerprint
is a file's size, its modification time (ns) and the SHA-256 of its first and last MiB
and of 16 evenly spaced 64 KiB blocks: cheap on a 100 GB BAM, and a change in place
that keeps size and mtime and misses every sampled block is the only one it can miss.
A folder's fingerprint holds that of every file in it, so a refusal names the file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from contextlib import contextmanager

from basenji_tk.errors import InputError

LOCK_NAME = ".basenji_tk.lock"  # inside an output folder
_EDGE = 1 << 20  # bytes hashed at each end of a file
_BLOCK = 1 << 16  # bytes of each sampled block
_SAMPLES = 16


def _why(err: OSError) -> str:
    if err.errno == errno.EROFS:
        return "read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ENOTDIR:
        return "a file stands where a folder is expected"
    return err.strerror or str(err)


def _blocking_file(path: str) -> str | None:
    """The first existing component of ``path``'s folders that is not a folder, if any."""
    here = os.path.abspath(path)
    parts = []
    while True:
        parts.append(here)
        up = os.path.dirname(here)
        if up == here:
            break
        here = up
    for p in reversed(parts[1:]):  # from the root down; the last part is ``path`` itself
        if os.path.exists(p) and not os.path.isdir(p):
            return p
    return None


def _make_folders(folder: str, label: str) -> list[str]:
    """Create ``folder`` and its missing parents; returns those created, outermost first."""
    missing = []
    here = os.path.abspath(folder)
    while not os.path.isdir(here):
        if os.path.exists(here):
            raise InputError(f"{label}: {here} is a file, not a folder")
        missing.append(here)
        here = os.path.dirname(here)
    missing.reverse()
    for i, d in enumerate(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            continue
        except OSError as err:
            _remove_empty(missing[:i])
            raise InputError(f"{label}: cannot create the output folder {d} ({_why(err)})") from None
    return missing


def _remove_empty(created: list[str]) -> None:
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            break


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "unknown, still starting"


def _lock(lock_path: str, label: str) -> int:
    """An exclusive, non-blocking flock on ``lock_path``; the file holds the owner's pid."""
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise InputError(f"{label}: cannot write there ({_why(err)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise InputError(f"{label}: another run (process {pid}) is writing there; wait for it to end or "
                             "choose another output") from None
        try:  # the owner before us may have removed the file between our open and our lock
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as err:  # e.g. a full disk
        os.close(fd)
        raise InputError(f"{label}: cannot write there ({_why(err)})") from None
    return fd


@contextmanager
def claim(path, folder: bool = True):
    """Check that the output ``path`` can be written and lock it while the ``with`` block runs.

    ``folder=True``: ``path`` is an output folder, made here if missing, with the lock file
    inside it; when the block fails, the folders made here are removed again if nothing
    else was written into them. ``folder=False``: ``path`` is an output file (or a folder
    written elsewhere and renamed into place whole); its folder is made if missing and the
    lock file ``.NAME.lock`` sits beside it. Raises :class:`InputError` before the block
    runs when the location cannot be written or another run holds the lock.
    """
    label = str(path)
    blocker = _blocking_file(path if folder else os.path.dirname(os.path.abspath(path)))
    if blocker:
        raise InputError(f"{label}: cannot write there ({blocker} is a file, not a folder)")
    if folder:
        if os.path.exists(path) and not os.path.isdir(path):
            raise InputError(f"{label}: exists and is not a folder")
        created = _make_folders(path, label)
        lock_path = os.path.join(path, LOCK_NAME)
    else:
        created = _make_folders(os.path.dirname(os.path.abspath(path)), label)
        lock_path = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.lock")
    try:
        fd = _lock(lock_path, label)
    except InputError:
        _remove_empty(created)
        raise
    failed = False
    try:
        yield os.path.abspath(path)
    except BaseException:
        failed = True
        raise
    finally:
        try:
            os.unlink(lock_path)
        except OSError:
            pass
        os.close(fd)  # closing releases the flock
        if failed:
            _remove_empty(created)


def writable_file(path) -> None:
    """Raise :class:`InputError` now when the output file ``path`` could not be created later."""
    with claim(path, folder=False):
        pass


# ----------------------------------------------------------------------------- inputs for --restart
def _file_print(path: str) -> dict:
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if st.st_size <= 2 * _EDGE + _SAMPLES * _BLOCK:
            h.update(fh.read())
        else:
            h.update(fh.read(_EDGE))
            step = (st.st_size - 2 * _EDGE) // (_SAMPLES + 1)
            for i in range(1, _SAMPLES + 1):
                fh.seek(_EDGE + i * step)
                h.update(fh.read(_BLOCK))
            fh.seek(st.st_size - _EDGE)
            h.update(fh.read())
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sample_sha256": h.hexdigest()}


def _folder_files(folder: str) -> list[str]:
    """Every file below ``folder`` (sorted relative paths), lock files left out."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        found += [os.path.relpath(os.path.join(root, n), folder) for n in sorted(names)
                  if n != LOCK_NAME and not (n.startswith(".") and n.endswith(".lock"))]
    return found


def fingerprint(path) -> dict:
    """A file: ``{"path", "size", "mtime_ns", "sample_sha256"}``. A folder: ``{"path", "files":
    {relative path: the file's fingerprint}}`` over every file in it (lock files left out)."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or folder")
    if not os.path.isdir(path):
        return {"path": os.path.abspath(path), **_file_print(path)}
    return {"path": os.path.abspath(path),
            "files": {rel: _file_print(os.path.join(path, rel)) for rel in _folder_files(path)}}


def _refuse(path, what: str, why: str):
    raise InputError(f"{path}: this {what} {why}; --restart needs the same inputs (run without --restart to "
                     "start again)")


def check_unchanged(saved: dict, path, what: str = "input") -> None:
    """Refuse ``path`` (an input of an interrupted run) when it no longer matches ``saved``.

    For a folder the error names the file that was added, removed or changed."""
    if "files" in saved:
        present = set(_folder_files(str(path)))
        for rel in sorted(set(saved["files"]) | present):
            full = os.path.join(str(path), rel)
            if rel not in present:
                _refuse(full, what, "was removed since the interrupted run")
            if rel not in saved["files"]:
                _refuse(full, what, "was added since the interrupted run")
            check_unchanged(saved["files"][rel], full, what)
        return
    if not os.path.isfile(str(path)):
        _refuse(path, what, "is gone since the interrupted run")
    now = _file_print(str(path))
    if now["size"] != saved.get("size"):
        _refuse(path, what, f"changed since the interrupted run ({saved.get('size'):,} bytes before, "
                            f"{now['size']:,} now)")
    if now["sample_sha256"] != saved.get("sample_sha256"):
        _refuse(path, what, "changed since the interrupted run (its content differs)")
    if now["mtime_ns"] != saved.get("mtime_ns"):
        _refuse(path, what, "changed since the interrupted run (it was modified since)")


def refuse_overwrite(out, outputs=None, force: bool = False, restart_hint: bool = False) -> None:
    """Refuse to replace a finished run's outputs unless ``force``: the names ``outputs`` inside
    the folder ``out``, or with ``outputs=None`` the file ``out`` itself.

    Every script does this the same way: a finished output is kept unless ``--force``.
    """
    if force:
        return
    also = "--restart to continue it or " if restart_hint else ""
    if outputs is None:
        if os.path.exists(str(out)):
            raise InputError(f"{out}: exists (a finished run's output); use {also}--force to replace it, or "
                             "choose another output")
        return
    held = [name for name in outputs if os.path.exists(os.path.join(str(out), str(name)))]
    if held:
        raise InputError(f"{out}: already holds {', '.join(map(str, held))} from a finished run; use {also}--force "
                         "to replace it, or choose another output")


def file_sha256(path, block=1 << 20) -> str:
    """SHA-256 of a whole file, read in blocks (the provenance datasets record for their inputs)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path, obj, indent: int = 1) -> str:
    """Write ``obj`` as JSON to ``path`` through a temporary name in the same folder (renamed
    when complete, so a reader never sees half a file); returns ``path``."""
    import json

    path = str(path)
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=indent)
    os.replace(tmp, path)
    return path

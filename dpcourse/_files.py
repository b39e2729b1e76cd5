"""Writing files so that nothing already written is lost.

:func:`write_atomic` is the one way the course writes a file (the data set, the progress
file, the instructor edition, the book, benchmark results): the new content goes to a
temporary file in the target's own directory, is flushed and ``fsync``-ed, and then
``os.replace`` renames it over the target in one step. A reader, a crash or a full disk
therefore leaves either the complete old file or the complete new one, never a mixture;
on failure the temporary file is removed and the error (an ``OSError``) propagates.
The new file keeps the old file's permission bits (or gets the umask's default for a new
file, as ``open`` would), and a symbolic link is followed, so the link stays a link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process's umask (read from /proc on Linux; elsewhere set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; not every platform can open a directory (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: str | bytes, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``data`` (text is encoded with ``encoding``) atomically.

    Steps: temporary file ``.<name>.<random>.tmp`` next to the target, write, flush,
    ``os.fsync``, set the mode, ``os.replace`` onto the target, ``fsync`` the directory.
    Creates missing parent directories. Raises ``IsADirectoryError`` if ``path`` is a
    directory, and the ``OSError`` of the failing step otherwise (``ENOSPC`` for a full
    disk, ``EACCES`` for a read-only folder); the target is then untouched.
    Returns the path written (a symbolic link's target).
    """
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(target.parent)
    return target

"""Write a file so that it is either the old or the complete new version, never a partial one.

A process killed while writing (SIGKILL, out of memory, a preempted job) leaves at most a stale
``PATH.tmp`` beside the file (the name fairseq's own ``torch_persistent_save`` uses, so a later
write of the same file reuses it); the destination only changes by an atomic rename. fairseq-free.
"""
import contextlib
import os
import shutil
from typing import Iterator

TEMPORARY_SUFFIX = ".tmp"


def temporary_path(path: str) -> str:
    """Where the new version of ``path`` is written before it replaces ``path``."""
    return os.fspath(path) + TEMPORARY_SUFFIX


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); platforms without directory handles skip it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
    """Yield a temporary path in ``path``'s directory to write the new version to; when the block
    ends without an error, flush it to disk and rename it onto ``path`` (atomic on POSIX, same file
    system); on an error remove it, leaving ``path`` as it was."""
    path = os.fspath(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        # Flushed before the rename: after a power loss the new name must not point at
        # blocks the file system never wrote.
        _fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


def copy_atomically(source: str, destination: str) -> None:
    """Copy ``source`` onto ``destination`` through a temporary file (``shutil.copyfile`` truncates
    the destination first, so a kill mid-copy would leave it partial)."""
    with replacing(destination) as temporary:
        shutil.copyfile(source, temporary)

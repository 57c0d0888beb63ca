"""Writing files so that a crash never leaves half of one behind.

Both the data fetcher and the model saver write here: the new content goes to
a temporary name beside the target and is renamed into place only once it is
complete, so readers see either the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files cost little memory."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets us open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `target` in one rename.

    On any exception (Ctrl-C included) the temporary file is removed and
    `target` is left exactly as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    partial = Path(name)
    partial.chmod(0o666 & ~_umask())  # mkstemp makes it private; the result should not be
    try:
        yield partial
        with partial.open("rb+") as stream:
            os.fsync(stream.fileno())
        partial.replace(target)
        _fsync_directory(target.parent)
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it becomes `target`.

    The previous `target` survives any failure while the new one is written.
    Replacing it takes two renames (old aside, new in place); should the
    process die between them, the old directory is still there under
    `<target>.previous` for a human to restore.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    partial.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should not be
    previous = target.with_name(f"{target.name}.previous")
    try:
        yield partial
        for written in partial.iterdir():
            with written.open("rb") as stream:
                os.fsync(stream.fileno())
        if previous.exists():
            shutil.rmtree(previous)
        if target.exists():
            target.replace(previous)
        partial.replace(target)
        _fsync_directory(target.parent)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)

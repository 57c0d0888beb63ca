"""Writing files so that a crash never leaves half of one behind.

Both the data fetcher and the model saver write here: the new content goes to
a temporary name beside the target and is renamed into place only once it is
complete, so readers see either the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, but another user's
        return True
    return True


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove what interrupted saves of `target` left behind; the paths removed.

    A partial directory carries the pid of the process writing it, so one that
    is still being written by a live process is kept; partials without a pid
    come from older tgplus versions and are always stale.
    """
    stale = re.compile(rf"\.{re.escape(target.name)}\.(?:(\d+)-)?[a-z0-9_]+\.(partial|previous)")
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        match = stale.fullmatch(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        pid = match.group(1)
        if pid is not None and _alive(int(pid)):
            continue
        if match.group(2) == "previous" and not target.exists():
            continue  # the only copy left of a model whose replacement was interrupted
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def interrupted_replacement(target: Path) -> Path | None:
    """The previous version of `target` if a replacement died between its two renames."""
    pattern = f".{target.name}.*.previous"
    return next((p for p in sorted(target.parent.glob(pattern)) if p.is_dir()), None)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it becomes `target`.

    The previous `target` stays in place, untouched, until the new one is
    complete. Replacing it then takes two renames (old aside, new in place);
    should the process die between them, the old directory is still there as
    `.<name>.<pid>-<random>.previous` for a human to restore. Leftovers of
    earlier interrupted saves are removed first.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    prefix = f".{target.name}.{os.getpid()}-"
    partial = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=target.parent))
    partial.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should not be
    aside: Path | None = None
    try:
        yield partial
        for written in partial.iterdir():
            with written.open("rb") as stream:
                os.fsync(stream.fileno())
        if target.exists():
            # An empty directory to rename the old one onto: a fresh, unique name.
            aside = Path(tempfile.mkdtemp(prefix=prefix, suffix=".previous", dir=target.parent))
            target.replace(aside)
        partial.replace(target)
        _fsync_directory(target.parent)
        remove_stale_partials(target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
        if aside is not None and aside.exists():
            if target.exists():
                shutil.rmtree(aside, ignore_errors=True)
            else:  # interrupted between the two renames: put the old one back
                aside.replace(target)

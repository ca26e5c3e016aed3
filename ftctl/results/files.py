"""Finding numbered result files and folders (``client_N``, ``attempt_M``) and reading them safely."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from pathlib import Path

from ftctl.errors import ParseError

# Client indexes end up in an int32 column; a bigger one is a damaged or foreign name.
MAX_INDEX = 2**31 - 1


def numbered_entries(path: Path, pattern: re.Pattern[str], *, dirs: bool) -> list[tuple[int, Path]]:
    """Entries of ``path`` whose name matches ``pattern`` (number in group 1), numeric order.

    Numeric, not lexical: ``attempt_10`` comes after ``attempt_2`` (REFERENCE §9.3). ``dirs``
    selects folders (True) or regular files (False: a FIFO or device is never a result file);
    an unreadable ``path`` has no entries. An index above ``MAX_INDEX`` (``client_<26 digits>``)
    raises ParseError naming the entry: its requests cannot be placed, and dropping them
    silently would change the figures.
    """
    found: list[tuple[int, Path]] = []
    try:
        entries = list(path.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or not (entry.is_dir() if dirs else entry.is_file()):
            continue
        number = int(match.group(1))
        if number > MAX_INDEX:
            raise ParseError(
                f"{entry}: index {match.group(1)} is too large (at most {MAX_INDEX}); "
                "rename or remove it"
            )
        found.append((number, entry))
    found.sort(key=lambda item: item[0])
    return found


def is_regular(path: Path) -> bool:
    """A regular file (symlinks followed); False for FIFOs, devices, folders, missing paths."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file; OSError for anything else (FIFO, device, folder).

    Opened non-blocking and checked on the open descriptor, so a FIFO with no writer can never
    block the read and a file swapped for one after a check is still refused.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        with io.FileIO(fd, closefd=False) as handle:  # readall sizes its buffer by fstat
            return handle.readall()
    finally:
        os.close(fd)

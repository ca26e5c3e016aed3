"""Finding numbered result files and folders (``client_N``, ``attempt_M``) in numeric order."""

from __future__ import annotations

import re
from pathlib import Path


def numbered_entries(path: Path, pattern: re.Pattern[str], *, dirs: bool) -> list[tuple[int, Path]]:
    """Entries of ``path`` whose name matches ``pattern`` (number in group 1), numeric order.

    Numeric, not lexical: ``attempt_10`` comes after ``attempt_2`` (REFERENCE §9.3). ``dirs``
    selects folders (True) or files (False); an unreadable ``path`` has no entries.
    """
    found: list[tuple[int, Path]] = []
    try:
        entries = list(path.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if match and (entry.is_dir() if dirs else entry.is_file()):
            found.append((int(match.group(1)), entry))
    found.sort(key=lambda item: item[0])
    return found

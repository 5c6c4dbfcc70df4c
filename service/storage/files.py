"""Files the service keeps private to its user: its data folder and the SQLite database with its
companions (they hold free-text feedback comments)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def private_directory(folder: Path) -> None:
    """Create ``folder`` (and missing parents) readable by this user only; tighten it when it is
    ours and open to others. A shared temporary folder (sticky bit, like /tmp) is never tightened,
    even when this user owns it (root owns /tmp): the files in it are private on their own."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077 and not info.st_mode & stat.S_ISVTX:
        folder.chmod(0o700)


def private_file(database: Path) -> None:
    """The SQLite file and its WAL/shared-memory companions are 0600 in a 0700 folder: they hold
    free-text feedback comments. SQLite gives the companions the database file's mode."""
    private_directory(database.parent)
    os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm"), Path(f"{database}-journal")):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(0o600)

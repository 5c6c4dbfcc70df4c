"""The SQLite state (free-text feedback comments, JWT ids) is readable by the service's user only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from service.storage.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_is_0600_in_a_0700_folder(tmp_path):
    old = os.umask(0o022)
    try:
        folder = tmp_path / "state" / "instance"
        store = Store(f"sqlite:///{folder / 'tacro-cds.sqlite'}")
        store.add_feedback(
            "svc",
            [
                {
                    "card": "c1",
                    "outcome": "overridden",
                    "outcomeTimestamp": "2026-01-01T00:00:00Z",
                    "overrideReason": {"userComment": "free text"},
                }
            ],
        )
        store.dispose()
    finally:
        os.umask(old)
    assert _mode(folder) == 0o700
    files = sorted(folder.iterdir())
    assert files, "no database file was created"
    for path in files:
        assert _mode(path) == 0o600, (path.name, oct(_mode(path)))


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    folder = tmp_path / "instance"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    database = folder / "tacro-cds.sqlite"
    Store(f"sqlite:///{database}").dispose()
    database.chmod(0o644)
    folder.chmod(0o755)
    Store(f"sqlite:///{database}").dispose()
    assert _mode(folder) == 0o700 and _mode(database) == 0o600


def test_a_shared_temporary_folder_keeps_its_mode(tmp_path):
    """A database put straight into a sticky, world-writable folder (such as /tmp, owned by the root
    user the service may run as) leaves the folder open to others; only the files are private."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    database = shared / "tacro-cds.sqlite"
    Store(f"sqlite:///{database}").dispose()
    assert _mode(shared) == 0o1777 and _mode(database) == 0o600

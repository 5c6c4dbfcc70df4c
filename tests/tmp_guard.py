"""No temporary folder outlives the test run that made it.

A run gets a folder of its own, ``$TMPDIR/tacro-cds-run-*``, and points ``TMPDIR`` (and Python's
``tempfile``) at it, so every temporary folder the tests, the bench helpers and the servers they start
make (``tempfile.mkdtemp``, ``mktemp -d``) lands there, and only there: runs of other checkouts on
the same machine have their own. When the run ends, whatever is still in it was left behind by this
run: the run fails and names it. The folder itself is then removed.

pytest's own ``tmp_path`` folders stay where pytest keeps them (it keeps the last three runs', for
looking into a failure): ``PYTEST_DEBUG_TEMPROOT`` is pinned to the original temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

PREFIX = "tacro-cds-run-"
_RUN = pytest.StashKey[Path]()
_BEFORE = pytest.StashKey[tuple[str | None, str | None]]()
_LEFT = pytest.StashKey[list[str]]()


def leftovers(folder: Path) -> list[str]:
    """What is still in ``folder``, as names relative to it (folders with their contents summed up)."""
    return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir())


def pytest_configure(config: pytest.Config) -> None:
    root = tempfile.gettempdir()
    run = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
    config.stash[_RUN] = run
    config.stash[_BEFORE] = (os.environ.get("TMPDIR"), os.environ.get("PYTEST_DEBUG_TEMPROOT"))
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", root)
    os.environ["TMPDIR"] = str(run)
    tempfile.tempdir = str(run)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None or not run.is_dir():
        return
    left = leftovers(run)
    session.config.stash[_LEFT] = left
    if left and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    left = config.stash.get(_LEFT, [])
    if left:
        terminalreporter.section("temporary folders left behind", red=True)
        terminalreporter.line(f"{len(left)} left in {config.stash[_RUN]} by this run (removed now): "
                              + ", ".join(left), red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None:
        return
    tmpdir, temproot = config.stash[_BEFORE]
    for name, value in (("TMPDIR", tmpdir), ("PYTEST_DEBUG_TEMPROOT", temproot)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = None
    shutil.rmtree(run, ignore_errors=True)

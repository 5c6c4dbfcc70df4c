"""No temporary folder outlives the test run that made it.

A run gets a folder of its own, ``$TMPDIR/tacro-cds-run-*``, and points ``TMPDIR`` (and Python's
``tempfile``) at it, so every temporary folder the tests, the bench helpers and the servers they start
make (``tempfile.mkdtemp``, ``mktemp -d``) lands there, and only there: runs of other checkouts on
the same machine have their own. When the run ends, a ``tacro-cds-*`` entry still in it (the prefix
all of this project's temporary folders carry) was left behind by this run: the run fails and names
it. Other programs' leftovers (a browser's profile, a library's cache that it removes only at exit)
are named without failing the run. The folder itself is then removed.

pytest's own ``tmp_path`` folders stay where pytest keeps them (it keeps the last three runs', for
looking into a failure): ``PYTEST_DEBUG_TEMPROOT`` is pinned to the original temporary folder.

``XDG_DATA_HOME`` points into the run's folder too, so an app a test builds without ``DATA_DIR``
(and a server it starts) keeps its database and keys there, not in the user's own
``~/.local/share/tacro-cds``, where a real instance of the service may keep its feedback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

PREFIX = "tacro-cds-run-"
OURS = "tacro-cds-"
DATA_HOME = "data-home"  # the run's XDG_DATA_HOME, removed with the run's folder
_RUN = pytest.StashKey[Path]()
_BEFORE = pytest.StashKey[dict[str, str | None]]()
_VARIABLES = ("TMPDIR", "PYTEST_DEBUG_TEMPROOT", "XDG_DATA_HOME")
_LEFT = pytest.StashKey[tuple[list[str], list[str]]]()


def leftovers(folder: Path) -> list[str]:
    """What is still in ``folder``, as names relative to it (folders with their contents summed up)."""
    return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir())


def pytest_configure(config: pytest.Config) -> None:
    root = tempfile.gettempdir()
    run = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
    config.stash[_RUN] = run
    config.stash[_BEFORE] = {name: os.environ.get(name) for name in _VARIABLES}
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", root)
    os.environ["TMPDIR"] = str(run)
    (run / DATA_HOME).mkdir(mode=0o700)
    os.environ["XDG_DATA_HOME"] = str(run / DATA_HOME)
    tempfile.tempdir = str(run)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None or not run.is_dir():
        return
    left = [name for name in leftovers(run) if name != DATA_HOME + "/"]
    ours = [name for name in left if name.startswith(OURS)]
    session.config.stash[_LEFT] = (ours, [name for name in left if name not in ours])
    if ours and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    ours, others = config.stash.get(_LEFT, ([], []))
    if ours:
        terminalreporter.section("temporary folders left behind", red=True)
        terminalreporter.line(
            f"{len(ours)} left in {config.stash[_RUN]} by this run (removed now): " + ", ".join(ours), red=True
        )
    if others:
        terminalreporter.section("other programs' temporary files", yellow=True)
        terminalreporter.line(f"left in {config.stash[_RUN]} (removed now): " + ", ".join(others))


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None:
        return
    for name, value in config.stash[_BEFORE].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = None
    shutil.rmtree(run, ignore_errors=True)

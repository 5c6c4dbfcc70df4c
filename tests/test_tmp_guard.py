"""The run's temporary-folder guard (tests/tmp_guard.py), exercised on small pytest runs of its own: a
folder left behind, by the test process or by a program it starts, fails the run and is named; a
clean run passes; pytest's own tmp_path stays outside; nothing of the run remains afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

LEAKY = """
import json, os, subprocess, tempfile
from pathlib import Path

def test_leaves_a_folder_behind():
    tempfile.mkdtemp(prefix="tacro-cds-leak-")

def test_a_started_program_leaves_a_folder_behind():
    subprocess.run(["mktemp", "-d", "-t", "tacro-cds-child.XXXXXX"], check=True, capture_output=True)

def test_cleans_up_after_itself(tmp_path):
    with tempfile.TemporaryDirectory(prefix="tacro-cds-tidy-"):
        pass
    Path(os.environ["SEEN"]).write_text(json.dumps({"tmpdir": os.environ["TMPDIR"],
                                                   "data_home": os.environ["XDG_DATA_HOME"],
                                                   "gettempdir": tempfile.gettempdir(),
                                                   "tmp_path": str(tmp_path)}))
"""

CLEAN = """
import tempfile

def test_cleans_up_after_itself():
    with tempfile.TemporaryDirectory(prefix="tacro-cds-tidy-"):
        pass

def test_another_program_leaves_its_own_folder():
    tempfile.mkdtemp(prefix="some-browser-profile-")
"""


def _run(tmp_path: Path, source: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    case = tmp_path / "case"
    case.mkdir()
    (case / "pytest.ini").write_text("[pytest]\n")
    (case / "test_case.py").write_text(source)
    seen = tmp_path / "seen.json"
    temp = tmp_path / "temp"  # the small run's temporary folder: everything it makes stays in ours
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(TESTS), "SEEN": str(seen), "TMPDIR": str(temp)}
    env.pop("PYTEST_DEBUG_TEMPROOT", None)
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tmp_guard",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(case),
            str(case),
        ],
        cwd=case,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, (json.loads(seen.read_text()) if seen.exists() else {})


def _run_folder(output: str) -> Path:
    found = re.search(r"left in (\S+) by this run", output)
    assert found, output
    return Path(found.group(1))


def test_a_folder_left_behind_fails_the_run_names_it_and_is_removed(tmp_path):
    done, seen = _run(tmp_path, LEAKY)
    output = done.stdout + done.stderr
    assert "3 passed" in output, output
    assert done.returncode == 1, output
    assert "temporary folders left behind" in output
    named = output.split("by this run (removed now):", 1)[1].split("\n", 1)[0]
    assert "tacro-cds-leak-" in named and "tacro-cds-child." in named and "tacro-cds-tidy-" not in named
    run = _run_folder(output)
    assert run.parent == tmp_path / "temp" and run.name.startswith("tacro-cds-run-")
    assert not run.exists(), "the run's folder (and what was left in it) is removed at the end"
    # Inside the run: the test process and the programs it started used the run's folder.
    assert seen["tmpdir"] == seen["gettempdir"] == str(run)
    # The service's default data folder is the run's too, never the user's own.
    assert Path(seen["data_home"]).parent == run
    # pytest's tmp_path stays where pytest keeps it, outside the run's folder.
    assert not Path(seen["tmp_path"]).is_relative_to(run)
    assert Path(seen["tmp_path"]).exists()


def test_a_clean_run_passes_and_leaves_nothing(tmp_path):
    """Only this project's folders (tacro-cds-*) fail a run; another program's is named and removed."""
    done, _ = _run(tmp_path, CLEAN)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "left behind" not in output
    assert "other programs' temporary files" in output and "some-browser-profile-" in output
    # Only pytest's own folder (which pytest keeps, and prunes, itself) remains.
    assert [p.name for p in (tmp_path / "temp").iterdir() if not p.name.startswith("pytest-of-")] == []

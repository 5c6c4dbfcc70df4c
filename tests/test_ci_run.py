""".ci/run enforces what the README claims: every system package the tests use is installed on every
run (no "only when missing" guard, so a dropped package fails on a reused machine too), the runtime
comes from requirements.lock, CI=true is set, and the last command is the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
# What the tests need from Debian, and which tests need it.
NEEDED = {
    "python3-venv": "the virtualenv of the README's test command",
    "wrk": "tests/test_side_by_side.py",
    "docker-compose": "tests/test_compose.py",
    "nginx": "tests/test_proxy_conf.py, tests/test_topology.py",
    "postgresql": "the store tests (mark postgres)",
    "default-jdk-headless": "tests/test_fhir_health_probe.py",
    "chromium": "tests/browser",
}


def _commands(script: str) -> list[str]:
    """The script's commands, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def installed(script: str) -> set[str]:
    """Packages named on the script's unconditional apt-get install lines (not inside an if block,
    not after || or &&)."""
    found: set[str] = set()
    depth = 0
    for command in _commands(script):
        if command.startswith("if "):
            depth += 1
        elif command == "fi":
            depth -= 1
        elif depth == 0 and "||" not in command and "&&" not in command:
            match = re.search(r"apt-get install (.*)$", command)
            if match:
                found |= {word for word in match.group(1).split() if not word.startswith("-")}
    return found


def test_every_system_package_is_installed_on_every_run():
    missing = {name: why for name, why in NEEDED.items() if name not in installed(RUN)}
    assert not missing, f".ci/run does not install: {missing}"
    assert "command -v" not in RUN, "an install guarded by 'command -v' passes on a reused machine"


def test_a_guarded_install_does_not_count():
    """The check can fail: an install only when the tool is missing is not an install on every run."""
    guarded = "if ! command -v wrk >/dev/null; then\n  apt-get install -y -q wrk\nfi\napt-get install -y nginx\n"
    assert installed(guarded) == {"nginx"}


def test_the_runtime_comes_from_the_lock_and_ci_is_set():
    commands = _commands(RUN)
    assert ".venv/bin/pip install -q -r requirements.lock" in commands
    assert "export CI=true" in commands


def test_the_last_command_is_the_readmes_test_command():
    assert _commands(RUN)[-1] == TEST_COMMAND
    assert TEST_COMMAND in (ROOT / "README.md").read_text(encoding="utf-8")


def test_npm_is_installed_or_brought_by_the_machines_node_and_then_checked():
    """npm (axe-core for tests/browser) is Debian's package, or the one the machine's Node.js ships
    (NodeSource's nodejs conflicts with Debian's npm): installed on every run either way, then run."""
    commands = _commands(RUN)
    assert any(
        c.endswith("apt-get install -y -q npm || DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs")
        for c in commands
    )
    assert "npm --version >/dev/null" in commands

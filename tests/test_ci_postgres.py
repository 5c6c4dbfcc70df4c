""".ci/postgres.sh: each checkout gets its own throwaway cluster (state folder and first port), so two
checkouts on one machine never share, or stop, each other's; the overrides still choose both."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "postgres.sh"


def _where(checkout: Path, **env: str) -> tuple[str, int]:
    """The state folder and first port the script of ``checkout`` would use (no root needed)."""
    script = checkout / ".ci" / "postgres.sh"
    if not script.exists():
        script.parent.mkdir(parents=True)
        shutil.copy2(SCRIPT, script)
    clean = {k: v for k, v in os.environ.items() if k not in ("TACRO_CDS_PG_STATE", "TACRO_CDS_PG_PORT")}
    done = subprocess.run(
        ["bash", str(script), "--where"], env={**clean, **env}, capture_output=True, text=True, check=True, timeout=30
    )
    state, port = done.stdout.split()
    return state, int(port)


def test_two_checkouts_get_different_clusters_and_each_keeps_its_own(tmp_path):
    first, second = _where(tmp_path / "a"), _where(tmp_path / "b")
    assert first[0] != second[0]
    assert all(state.startswith("/tmp/tacro-cds-postgres-") for state, _ in (first, second))
    assert all(55432 <= port < 55432 + 2000 for _, port in (first, second))
    assert _where(tmp_path / "a") == first  # the same checkout finds its running cluster again


def test_the_state_folder_and_port_can_still_be_chosen(tmp_path):
    assert _where(tmp_path / "a", TACRO_CDS_PG_STATE="/tmp/pg-mine", TACRO_CDS_PG_PORT="61234") == (
        "/tmp/pg-mine",
        61234,
    )

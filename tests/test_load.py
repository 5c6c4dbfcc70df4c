"""Load under gunicorn (bench/load.py): TACRO_CDS_LOAD_REQUESTS requests (default 10,000) from a
second process; only the single-request answers, no worker lost, flat memory, nothing leaked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "build" / "hardening" / "load-report.json"


@pytest.mark.slow
def test_load_under_gunicorn():
    total = int(os.environ.get("TACRO_CDS_LOAD_REQUESTS", "10000"))
    run = subprocess.run([sys.executable, "-m", "bench.load", "--requests", str(total), "--json", str(REPORT)],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=175)
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    report = json.loads(REPORT.read_text())
    assert report["requests"] == total
    assert report["problems"] == []
    # 412: a fixture scenario whose prefetch is incomplete (the bench strips fhirServer).
    assert {"200", "400", "404", "413"} <= set(report["status_mix"]) <= {"200", "400", "404", "412", "413"}
    expected = report["expected"]
    assert {name: status for name, status in expected.items() if name.startswith("valid:builtin")} == {
        "valid:builtin/order-select": 200, "valid:builtin/order-sign": 200, "valid:builtin/patient-view": 200}
    assert expected["unknown-service"] == 404 and expected["too-large"] == 413
    assert {expected[k] for k in expected if k.startswith("invalid:")} == {400}
    assert expected["discovery"] == expected["healthz"] == 200

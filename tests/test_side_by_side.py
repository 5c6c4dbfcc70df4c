"""The side-by-side bench (bench/side_by_side.py) runs end to end: floor and service under gunicorn
driven by wrk, the fallback against the FHIR stand-in, the memory samples and the profile, and it
prints the lines its reader looks for. Tiny run lengths: this checks that the harness works, never
how fast the service is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import wrk

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"[0-9]+\.[0-9]+"


@pytest.mark.slow
def test_the_harness_prints_ratios_fallback_memory_and_profile(tmp_path):
    if not wrk.available():
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is not installed (.ci/run installs it)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.side_by_side",
            "--mode",
            "prefetched",
            "fallback",
            "memory",
            "profile",
            "--bodies",
            "history-50-patient-view",
            "--seconds",
            "2",
            "--warmup",
            "1",
            "--rounds",
            "1",
            "--fallback-calls",
            "2",
            "--fhir-delay-ms",
            "20",
            "--memory-calls",
            "20",
            "--memory-checkpoints",
            "2",
            "--profile-calls",
            "2",
            "--profile-body",
            "history-50-order-select",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]

    name = "history-50-patient-view"
    assert re.search(rf"^ratio {name}: p50 {NUMBER}x  p99 {NUMBER}x  throughput {NUMBER}x", out, re.M), out
    assert re.search(rf"^\| {name} \| {NUMBER}× \| {NUMBER}× \| {NUMBER}× \|$", out, re.M), out
    assert re.search(r"; load average [0-9.]+ ", out)

    for hook in ("order-select", "patient-view"):
        assert f"fallback {hook}: every one of" in out
    # The harness reports reuse; whether it happened in this tiny run depends on the machine (reuse
    # itself is proven in tests/test_fhir_pool.py and tests/test_fhir_standin.py).
    assert (
        len(
            re.findall(
                r"connections accepted by the stand-in: call 1: [0-9]+ for [0-9]+ queries, "
                r"call 2: [0-9]+ for [0-9]+ queries -> connections reused across calls: (yes|no)",
                out,
            )
        )
        == 2
    )
    assert out.count("cards equal to the prefetched body's: yes") == 2
    assert len(re.findall(rf"the same call prefetched: p50 {NUMBER} ms, so fetching added [+-]{NUMBER} ms", out)) == 2
    assert len(re.findall(rf"all [0-9]+ queries at once from a bare client: {NUMBER} ms \(", out)) == 2, out

    assert len(re.findall(r"^  worker [0-9]+ RSS KiB: [0-9]+ \(0\) -> ", out, re.M)) == 2
    assert re.search(r"^ +[0-9]+ calls, +[0-9]+ s, +[0-9.]+ calls/s: RSS KiB \{", out, re.M), out

    assert (tmp_path / "profile-history-50-order-select.txt").read_text(encoding="utf-8").strip()
    assert (tmp_path / "profile-history-50-order-select.html").is_file()
    assert re.search(r"^ +[0-9.]+ % +[0-9.]+ ms/call  service/api/views\.py:", out, re.M), out

    report = json.loads((tmp_path / "side-by-side.json").read_text(encoding="utf-8"))
    assert set(report["prefetched"]) == {name}
    for figures in report["prefetched"].values():
        assert figures["floor"]["requests"] > 0 and figures["service"]["requests"] > 0
        assert figures["floor"]["failed"] == figures["service"]["failed"] == 0
    assert report["fallback"]["order-select"]["queries_per_call"][0] > 0
    assert report["fallback"]["order-select"]["all_at_once_ms"] > 0
    assert report["memory"]["calls"] >= 20

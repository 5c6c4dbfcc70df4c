"""Drive an HTTP endpoint with wrk (https://github.com/wg/wrk; Debian package ``wrk``) from its own
process: one request body POSTed over and over on a few kept-alive connections for a duration, and the
figures read back from a JSON line our Lua script prints.

wrk is a C load generator built for exactly this (an event loop per thread, latency histogram per
request, no Python in the client's path), so the client costs the same small amount against the
floor and the service and does not compete for the interpreter with what it measures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# wrk's own init calls this init (per thread), then formats the request once.
_SCRIPT = r"""
function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f,' ..
    '"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured (latencies in milliseconds)."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        """Requests that failed: transport errors, timeouts and answers other than 2xx/3xx."""
        return sum(self.errors.values())


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, body: Path, *, connections: int, threads: int, seconds: float, timeout_s: float = 10.0) -> WrkResult:
    """POST ``body`` to ``url`` for ``seconds`` (whole seconds, at least 1) on ``connections``
    kept-alive connections shared by ``threads`` wrk threads; a request unanswered after
    ``timeout_s`` counts as a timeout."""
    if not available():
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="tacro-cds-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT, encoding="utf-8")
        command = [
            "wrk",
            "--threads",
            str(threads),
            "--connections",
            str(connections),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            f"{timeout_s:g}s",
            "--script",
            str(script),
            url,
            "--",
            str(body),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout_s + 30)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}")
    figures = json.loads(line.split(" ", 1)[1])
    return WrkResult(
        requests=int(figures["requests"]),
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        errors={k: int(figures[k]) for k in ("connect", "read", "write", "status", "timeout") if figures[k]},
    )

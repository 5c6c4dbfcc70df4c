"""Send a set of FHIR queries all at once from a bare client, as a floor for a fallback call.

    echo '{"url": ..., "token": ..., "queries": [...], "rounds": 10}' | python -m bench.parallel_queries

Each query gets its own thread and kept-alive ``http.client`` connection (opened before the timing);
each round sends every query at once and times until the last answer is read and parsed. It prints
one JSON object: the median of the rounds in seconds (``together``) and, from the same
connections one query at a time, the median of each round's slowest (``alone``).

Run in a process of its own, as the service is: a client thread in the stand-in's process would
wait for the stand-in's interpreter lock, and the stand-in for the client's.
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit


def _get(connection: http.client.HTTPConnection, path: str, token: str) -> None:
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})
    response = connection.getresponse()
    json.loads(response.read())
    if response.status >= 500:
        raise RuntimeError(f"{path}: {response.status}")


def measure(url: str, token: str, queries: list[str], rounds: int) -> dict[str, float]:
    """Median seconds for all ``queries`` at once, and for the slowest of them one at a time."""
    base = urlsplit(url)
    prefix = base.path.rstrip("/")
    paths = [f"{prefix}/{q}" for q in queries]
    connections = [http.client.HTTPConnection(base.hostname or "", base.port, timeout=30) for _ in paths]
    try:
        for connection in connections:
            _get(connection, f"{prefix}/metadata", token)
        alone: list[float] = []
        together: list[float] = []
        for _ in range(rounds):
            worst = 0.0
            for connection, path in zip(connections, paths, strict=True):
                t0 = time.perf_counter()
                _get(connection, path, token)
                worst = max(worst, time.perf_counter() - t0)
            alone.append(worst)
            threads = [
                threading.Thread(target=_get, args=(c, p, token)) for c, p in zip(connections, paths, strict=True)
            ]
            t0 = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            together.append(time.perf_counter() - t0)
    finally:
        for connection in connections:
            connection.close()
    return {"alone": statistics.median(alone), "together": statistics.median(together)}


def main() -> int:
    spec: dict[str, Any] = json.load(sys.stdin)
    print(json.dumps(measure(spec["url"], spec["token"], list(spec["queries"]), int(spec.get("rounds", 10)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

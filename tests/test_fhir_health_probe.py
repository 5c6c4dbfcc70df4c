"""deploy/fhir-check/FhirReady.java, the health check of the integrators' HAPI FHIR server in
docker-compose.yml (the image has no shell or curl, only Java). Run here with this machine's Java
against a stand-in FHIR server; skipped where no Java runtime is installed (CI images need none)."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parent.parent / "deploy" / "fhir-check" / "FhirReady.java"


class _Metadata(http.server.BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, bytes]] = {
        "/ready/fhir/metadata": (200, b'{"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}'),
        "/starting/fhir/metadata": (503, b"starting"),
        "/wrong/fhir/metadata": (200, b'{"resourceType": "OperationOutcome"}'),
    }

    def do_GET(self) -> None:
        status, body = self.answers.get(self.path, (404, b""))
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _probe(base: str) -> subprocess.CompletedProcess[str]:
    java = shutil.which("java")
    if java is None:
        pytest.skip("no Java runtime here (the HAPI image brings its own)")
    return subprocess.run(
        [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", str(PROBE), base],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("server", "ready"), [("ready", True), ("starting", False), ("wrong", False)])
def test_ready_only_when_the_server_answers_its_capability_statement(stand_in: str, server: str, ready: bool) -> None:
    result = _probe(f"{stand_in}/{server}/fhir")
    assert (result.returncode == 0) is ready, result.stderr
    if not ready:
        assert result.stderr.startswith("not ready:")

"""The development EHR served on 127.0.0.1 for the review sign-in tests, and a reviewer signed in
through it with a Flask test client (the consent page answered as a clinician would)."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
from werkzeug.serving import make_server

from fhir_fixtures import FIXTURES_DIR

REVIEWER = "Practitioner/dev-ehr-user"  # the development EHR's signed-in clinician


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dev_ehr(cds_url: str = "http://localhost") -> Iterator[str]:
    """The development EHR's base URL while it is served (its FHIR proxy points nowhere: only its
    authorization server is used)."""
    from tacro_dev.dev_ehr import DevEhrSettings, create_dev_ehr

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = DevEhrSettings(
        fhir_url="http://127.0.0.1:9/fhir", fhir_token=None, cds_url=cds_url, public_url=url, fixtures_dir=FIXTURES_DIR
    )
    server = make_server("127.0.0.1", port, create_dev_ehr(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)


def review_settings(ehr_url: str, reviewers: list[str] | None = None) -> dict[str, Any]:
    return {
        "SMART_STANDALONE_ISS": ehr_url + "/fhir",
        "ALLOW_HTTP_FHIR": "loopback",
        "SMART_COOKIE_SECURE": False,
        "REVIEWERS": [REVIEWER] if reviewers is None else reviewers,
    }


def sign_in(client: Any) -> Any:
    """Sign in at /review/ through the EHR; returns the service's answer to the callback."""
    start = client.get("/review/sign-in")
    assert start.status_code == 302, start.get_data(as_text=True)
    ehr = requests.Session()
    consent = ehr.get(start.headers["Location"], timeout=10)
    assert consent.status_code == 200, consent.text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', consent.text)
    assert token, consent.text
    answer = ehr.post(
        consent.url,
        data={"csrf_token": token.group(1), "decision": "allow", "patient": "trough-high"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code in (302, 303), answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == "/review/callback"
    return client.get(f"{back.path}?{back.query}")

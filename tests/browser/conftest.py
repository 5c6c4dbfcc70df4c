"""Real-browser tests of the SMART app: Debian's chromium driven by Playwright for Python (no browser
download: ``executable_path`` names the system chromium), the CDS service and the development EHR
served on 127.0.0.1 in this process, in front of the real FHIR server of .ci/fhir-server.sh.

Missing pieces (chromium, Playwright, the FHIR server, axe-core) skip the suite with the reason;
under CI (CI=true) they fail it instead, so the browser suite never silently disappears from CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
AXE_DIR = ROOT / ".ci" / "work" / "axe"
AXE_VERSION = "4.10.3"


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"CI run without what the browser suite needs: {reason}. .ci/run installs chromium "
            "(apt-get), Playwright (pip) and axe-core (npm) and starts the FHIR server.",
            pytrace=False,
        )
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A WSGI app on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("TACRO_CDS_CHROMIUM") or shutil.which("chromium") or ""
    if not path or not os.access(path, os.X_OK):
        _missing("no chromium executable (apt-get install chromium, or set TACRO_CDS_CHROMIUM)")
    return path


@pytest.fixture(scope="session")
def axe_source() -> str:
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file() and shutil.which("npm"):
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(AXE_DIR),
                f"axe-core@{AXE_VERSION}",
            ],
            check=False,
            timeout=300,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    if not script.is_file():
        _missing(f"axe-core is not installed under {AXE_DIR} and npm could not install it")
    return script.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def fhir() -> tuple[str, str | None]:
    url = os.environ.get("TACRO_CDS_TEST_FHIR_URL", "").rstrip("/")
    if not url:
        _missing('TACRO_CDS_TEST_FHIR_URL is not set (eval "$(bash .ci/fhir-server.sh)")')
    return url, os.environ.get("TACRO_CDS_TEST_FHIR_TOKEN") or None


@pytest.fixture(scope="session")
def stack(fhir, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The CDS service (with its SMART app) and the development EHR, each on its own port."""
    from fhir_fixtures import FIXTURES_DIR
    from service import create_app
    from tacro_dev.dev_ehr import DevEhrSettings, create_dev_ehr

    work = tmp_path_factory.mktemp("browser-stack")
    cds_port, ehr_port = free_port(), free_port()
    cds_url, ehr_url = f"http://127.0.0.1:{cds_port}", f"http://127.0.0.1:{ehr_port}"
    settings = DevEhrSettings(
        fhir_url=fhir[0], fhir_token=fhir[1], cds_url=cds_url, public_url=ehr_url, fixtures_dir=FIXTURES_DIR
    )
    service = create_app(
        {
            # The service verifies the development EHR's signed calls, as it would a real EHR's.
            "AUTH_REQUIRED": True,
            "TRUSTED_ISSUERS": {ehr_url: {"jwks": {"keys": [settings.key.as_dict(private=False)]}}},
            "ALLOW_HTTP_FHIR": "loopback",
            "SMART_COOKIE_SECURE": False,
            "SMART_STANDALONE_ISS": ehr_url + "/fhir",
            "SMART_SESSION_DIR": str(work / "sessions"),
            "FEEDBACK_DB": f"sqlite:///{work / 'feedback.sqlite'}",
            "LOG_LEVEL": "WARNING",
        }
    )
    servers = [Served(service, cds_port), Served(create_dev_ehr(settings), ehr_port)]
    try:
        yield {"cds": cds_url, "ehr": ehr_url}
    finally:
        for s in servers:
            s.stop()


@pytest.fixture(scope="session")
def browser(chromium_path) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.csp_errors = []  # type: ignore[attr-defined]
    page.on(
        "console",
        lambda m: (
            page.csp_errors.append(m.text)  # type: ignore[attr-defined]
            if "Content Security Policy" in m.text
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()

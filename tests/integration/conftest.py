"""The real FHIR server of the integration suite (started by .ci/fhir-server.sh).

No server configured: the suite skips, with the reason, so the unit suite runs anywhere. Under CI
(CI=true) a missing or unreachable server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import requests

from bench.server import wait_for_health

METADATA_WAIT_S = 60.0  # the server is up already (.ci/run waited for it); a busy machine may be slow


@dataclass(frozen=True)
class FhirServer:
    url: str
    token: str | None

    def get(self, query: str, token: str | None = "default") -> requests.Response:
        """GET {url}/{query}, with the server's bearer token unless another (or None) is given."""
        bearer = self.token if token == "default" else token
        headers = {"Accept": "application/fhir+json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        return requests.get(f"{self.url}/{query}", headers=headers, timeout=30)


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f'CI run without its FHIR server: {reason}. .ci/run must eval "$(bash .ci/fhir-server.sh)" before pytest.',
            pytrace=False,
        )
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fhir_server() -> FhirServer:
    url = os.environ.get("TACRO_CDS_TEST_FHIR_URL", "").rstrip("/")
    if not url:
        _missing(
            "no FHIR server configured (set TACRO_CDS_TEST_FHIR_URL and TACRO_CDS_TEST_FHIR_TOKEN, "
            'e.g. eval "$(bash .ci/fhir-server.sh)")'
        )
    if not wait_for_health(f"{url}/metadata", timeout=METADATA_WAIT_S):
        pytest.fail(
            f"TACRO_CDS_TEST_FHIR_URL={url} is set but the server does not answer /metadata "
            f"with 200 within {METADATA_WAIT_S:.0f} s",
            pytrace=False,
        )
    return FhirServer(url, os.environ.get("TACRO_CDS_TEST_FHIR_TOKEN") or None)

"""A fake EHR for the SMART app's unit tests, on `responses`: its SMART configuration, a token
endpoint that checks the PKCE verifier against the challenge the app sent, and a FHIR server that
answers any query from one fixture patient's resources (``fhir_fixtures.matcher``) when the bearer
token is the one it issued."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from fhir_fixtures import FIXTURES_DIR
from fhir_fixtures.matcher import search

ISS = "https://ehr.example.org/fhir"
AUTHORIZE = "https://ehr.example.org/oauth/authorize"
TOKEN_URL = "https://ehr.example.org/oauth/token"
JWKS_URL = "https://ehr.example.org/oauth/jwks"
FHIR_JSON = "application/fhir+json"


def fixture_resources(scenario: str) -> list[dict[str, Any]]:
    bundle = json.loads((FIXTURES_DIR / scenario / "patient.json").read_text(encoding="utf-8"))
    return [e["resource"] for e in bundle["entry"]]


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


@dataclass
class FakeEhr:
    rsps: Any
    scenario: str = "trough-high"
    capabilities: list[str] = field(
        default_factory=lambda: [
            "launch-ehr",
            "launch-standalone",
            "client-public",
            "permission-v2",
            "context-ehr-patient",
        ]
    )
    token_extra: dict[str, Any] = field(default_factory=dict)
    drop_patient: bool = False
    expires_in: int = 3600
    refresh_token: str | None = None
    fhir_status: int | None = None  # answer every FHIR call with this status
    fhir_exception: Exception | None = None
    id_token: str | None = None
    authorize_params: dict[str, str] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_headers: list[dict[str, str]] = field(default_factory=list)
    public_client: bool = True  # False: the client authenticates itself; client_id is not checked here
    access_token: str = "at-1"
    fhir_calls: int = 0
    extra_resources: list[dict[str, Any]] = field(default_factory=list)  # stored beside the fixture's

    def install(self) -> FakeEhr:
        self.rsps.get(
            ISS + "/.well-known/smart-configuration",
            json={
                "issuer": "https://ehr.example.org",
                "authorization_endpoint": AUTHORIZE,
                "token_endpoint": TOKEN_URL,
                "jwks_uri": JWKS_URL,
                "capabilities": self.capabilities,
                "code_challenge_methods_supported": ["S256"],
            },
        )
        self.rsps.add_callback("POST", TOKEN_URL, callback=self._token)
        self.rsps.add_callback("GET", re.compile(re.escape(ISS) + r"/(?!\.well-known).*"), callback=self._fhir)
        return self

    def note_authorize(self, location: str) -> dict[str, str]:
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == AUTHORIZE
        self.authorize_params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        return self.authorize_params

    def _token(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        form = {k: v[0] for k, v in parse_qs(str(request.body)).items()}
        self.token_requests.append(form)
        self.token_headers.append(dict(request.headers))
        if form.get("grant_type") == "refresh_token":
            if not self.refresh_token or form.get("refresh_token") != self.refresh_token:
                return 400, {}, json.dumps({"error": "invalid_grant"})
            self.access_token = "at-refreshed"
            return (
                200,
                {"Content-Type": "application/json"},
                json.dumps(
                    {
                        "access_token": self.access_token,
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "scope": self.authorize_params.get("scope", ""),
                    }
                ),
            )
        ok = (
            form.get("code") == "code-1"
            and (form.get("client_id") == "tacro-cds" or not self.public_client)
            and form.get("redirect_uri") == self.authorize_params.get("redirect_uri")
            and s256(form.get("code_verifier", "")) == self.authorize_params.get("code_challenge")
        )
        if not ok:
            return 400, {}, json.dumps({"error": "invalid_grant"})
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.authorize_params.get("scope", ""),
            "patient": self.scenario,
            "need_patient_banner": True,
            "smart_style_url": "https://ehr.example.org/style.json",
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        if self.id_token:
            body["id_token"] = self.id_token
        if self.drop_patient:
            body.pop("patient")
        body.update(self.token_extra)
        return 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}, json.dumps(body)

    def _fhir(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self.fhir_calls += 1
        if self.fhir_exception is not None:
            raise self.fhir_exception
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return (
                401,
                {"Content-Type": FHIR_JSON},
                json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}),
            )
        if self.fhir_status is not None:
            return (
                self.fhir_status,
                {"Content-Type": FHIR_JSON},
                json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}),
            )
        relative = str(request.url)[len(ISS) + 1 :]
        answer = search(relative, fixture_resources(self.scenario) + self.extra_resources)
        if answer is None:
            return (
                404,
                {"Content-Type": FHIR_JSON},
                json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}),
            )
        return 200, {"Content-Type": FHIR_JSON}, json.dumps(answer)

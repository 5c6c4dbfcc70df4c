"""The development EHR as a CDS client: discovery, prefetch filled from its FHIR server, the call
signed with its own key (CDS Hooks 2.0 "Trusting CDS Clients"), cards back."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import requests
from joserfc import jwt
from joserfc.jwk import ECKey

from service.hooks.templates import UnresolvableTokenError, substitute

TIMEOUT_S = 20.0


class HookCallError(Exception):
    """The CDS service could not be called or answered with an error; the message says which."""


class CdsClient:
    def __init__(self, cds_base: str, issuer: str, key: ECKey, fhir_base: str, fhir_token: str | None) -> None:
        self.cds_base = cds_base.rstrip("/")
        self.issuer = issuer
        self.key = key
        self.fhir_base = fhir_base.rstrip("/")
        self.fhir_token = fhir_token
        self.http = requests.Session()

    def _jwt(self, audience: str) -> str:
        now = int(time.time())
        header = {"alg": "ES384", "typ": "JWT", "kid": self.key.kid}
        claims = {
            "iss": self.issuer,
            "sub": "dev-ehr",
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(header, claims, self.key, algorithms=["ES384"])

    def services(self) -> list[dict[str, Any]]:
        try:
            response = self.http.get(
                f"{self.cds_base}/cds-services",
                timeout=TIMEOUT_S,
                headers={"Authorization": f"Bearer {self._jwt(self.cds_base + '/cds-services')}"},
            )
            response.raise_for_status()
            return list(response.json()["services"])
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise HookCallError(
                f"the CDS service at {self.cds_base} did not answer discovery ({type(exc).__name__})"
            ) from None

    def feedback(self, service_id: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Send CDS Hooks feedback on cards of ``service_id``, signed as the hook calls are; the
        service's answer ({"stored": n, "refused": {...}})."""
        url = f"{self.cds_base}/cds-services/{service_id}/feedback"
        try:
            response = self.http.post(
                url,
                data=json.dumps({"feedback": entries}),
                timeout=TIMEOUT_S,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._jwt(url)}"},
            )
        except requests.RequestException as exc:
            raise HookCallError(f"the CDS service did not take the feedback ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise HookCallError(f"the CDS service answered HTTP {response.status_code}: {response.text[:300]}")
        return dict(response.json())

    def _fhir(self, query: str) -> Any:
        headers = {"Accept": "application/fhir+json"}
        if self.fhir_token:
            headers["Authorization"] = f"Bearer {self.fhir_token}"
        response = self.http.get(f"{self.fhir_base}/{query}", headers=headers, timeout=TIMEOUT_S)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def prefetch(self, templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, Any]:
        """Every template answered from the FHIR server, as an EHR fills prefetch."""
        filled: dict[str, Any] = {}
        for key, template in templates.items():
            try:
                filled[key] = self._fhir(substitute(template, context))
            except UnresolvableTokenError:
                continue  # the service fetches what is not sent
        return filled

    def call(
        self, hook: str, context: Mapping[str, Any], fhir_server: str, fhir_authorization: Mapping[str, Any]
    ) -> tuple[str, list[dict[str, Any]]]:
        """Call the service for ``hook``; (service id, cards)."""
        service = next((s for s in self.services() if s.get("hook") == hook), None)
        if service is None:
            raise HookCallError(f"the CDS service offers no {hook} service")
        url = f"{self.cds_base}/cds-services/{service['id']}"
        body = {
            "hook": hook,
            "hookInstance": str(uuid.uuid4()),
            "fhirServer": fhir_server,
            "fhirAuthorization": dict(fhir_authorization),
            "context": dict(context),
            "prefetch": self.prefetch(service.get("prefetch") or {}, context),
        }
        try:
            response = self.http.post(
                url,
                data=json.dumps(body),
                timeout=TIMEOUT_S,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._jwt(url)}"},
            )
        except requests.RequestException as exc:
            raise HookCallError(f"the CDS service did not answer ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise HookCallError(f"the CDS service answered HTTP {response.status_code}: {response.text[:300]}")
        return service["id"], list(response.json().get("cards") or [])

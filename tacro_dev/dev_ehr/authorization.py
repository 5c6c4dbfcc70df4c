"""The development EHR's SMART authorization server, on Authlib's OAuth 2.0 server.

Authorization code grant with PKCE (S256, required), public and confidential clients, the SMART
launch context (``patient``, ``encounter``, ``need_patient_banner``, ``appContext``) returned beside
the access token. In memory: a development tool, restarted freely.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from joserfc import jwt

TOKEN_LIFETIME_S = 3600
CODE_LIFETIME_S = 120


@dataclass
class DevUser:
    """The signed-in clinician, and the launch context the grant carries."""

    id: str
    context: dict[str, Any] = field(default_factory=dict)

    def get_user_id(self) -> str:
        return self.id


@dataclass
class DevClient(ClientMixin):  # type: ignore[misc]
    client_id: str
    redirect_uris: list[str]
    client_secret: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret is None:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: DevUser
    code_challenge: str | None
    code_challenge_method: str | None
    issued: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() > self.issued + CODE_LIFETIME_S


class Store:
    """Clients, codes, issued tokens and launch contexts, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, DevClient] = {}
        self.codes: dict[str, AuthCode] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.launches: dict[str, dict[str, Any]] = {}

    def new_launch(self, context: dict[str, Any]) -> str:
        launch_id = secrets.token_urlsafe(16)
        with self.lock:
            self.launches[launch_id] = {**context, "created": time.time()}
        return launch_id

    def launch(self, launch_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.launches.get(launch_id)
        if found is None or found["created"] < time.time() - 600:
            return None
        return {k: v for k, v in found.items() if k != "created"}

    def issue(self, patient: str, scope: str) -> str:
        """A token for a system caller (the CDS service's fhirAuthorization)."""
        access = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[access] = {"patient": patient, "scope": scope, "expires": time.time() + 300}
        return access

    def token(self, access: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.tokens.get(access)
        if found is None or found["expires"] < time.time():
            return None
        return found


class SmartCodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE as SMART App Launch 2.x requires it: a code challenge on every authorization request,
    and S256 only (``plain`` refused)."""

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("SMART requires PKCE with code_challenge_method=S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code: str, request: Any) -> None:
        store: Store = self.server.dev_store
        with store.lock:
            store.codes[code] = AuthCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.payload.scope or "",
                user=request.user,
                code_challenge=request.payload.data.get("code_challenge"),
                code_challenge_method=request.payload.data.get("code_challenge_method"),
            )

    def query_authorization_code(self, code: str, client: DevClient) -> AuthCode | None:
        store: Store = self.server.dev_store
        with store.lock:
            item = store.codes.get(code)
        if item and item.client_id == client.client_id and not item.is_expired():
            return item
        return None

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        store: Store = self.server.dev_store
        with store.lock:
            store.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthCode) -> DevUser:
        return authorization_code.user


def build_server(
    app: Any, store: Store, *, issuer: str = "", fhir_base: str = "", key: Any = None
) -> AuthorizationServer:
    """The server; with ``key``, a grant with the ``openid`` scope also gets an id token (signed by
    that key, issued by ``issuer``) whose ``fhirUser`` names the signed-in user under ``fhir_base``."""

    def query_client(client_id: str) -> DevClient | None:
        return store.clients.get(client_id)

    def id_token(user: DevUser, client_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": user.id,
            "aud": client_id,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_S,
            "fhirUser": f"{fhir_base}/{user.id}",
        }
        return jwt.encode({"alg": "ES384", "kid": key.kid}, claims, key, algorithms=["ES384"])

    def save_token(token: dict[str, Any], request: Any) -> None:
        context = dict(request.user.context)
        with store.lock:
            store.tokens[token["access_token"]] = {
                "patient": context.get("patient"),
                "scope": token.get("scope"),
                "expires": time.time() + int(token.get("expires_in", 0)),
            }
        # SMART launch context travels in the token response, beside the token.
        token.update({k: v for k, v in context.items() if v is not None})
        if key is not None and "openid" in str(token.get("scope", "")).split():
            token["id_token"] = id_token(request.user, request.client.client_id)

    app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN", {"authorization_code": TOKEN_LIFETIME_S})
    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.dev_store = store
    server.register_grant(CodeGrant, [SmartCodeChallenge(required=True)])
    return server

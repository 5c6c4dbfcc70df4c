"""Test helpers for caller authentication: signing keys, JWK Sets, token minting, a replay-cache fake.

Usage from any suite::

    from jwt_support import ISSUER, FakeStore, auth_config, bearer, ec_signer

    signer = ec_signer()
    app = make_app(store=FakeStore(), **auth_config(signer))
    client.get("/cds-services", headers=bearer(signer.mint("http://localhost/cds-services")))

Tokens are minted at ``FIXED_NOW`` by default, the clock ``make_app`` injects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from conftest import FIXED_NOW
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import create_engine

from service.storage.store import Retention
from service.storage.tables import metadata

ISSUER = "https://ehr.example.org"
BASE = "http://localhost"  # what the Flask test client calls
_jti_counter = itertools.count(1)


def new_jti() -> str:
    """A fresh, unique jti."""
    return f"jti-{next(_jti_counter):06d}"


def claims_for(
    audience: str,
    *,
    iss: str = ISSUER,
    now: datetime = FIXED_NOW,
    lifetime: timedelta = timedelta(minutes=5),
    **extra: Any,
) -> dict[str, Any]:
    """The claims a conforming CDS client sends; ``extra`` adds or overrides (None removes)."""
    claims: dict[str, Any] = {
        "iss": iss,
        "aud": audience,
        "exp": int((now + lifetime).timestamp()),
        "iat": int(now.timestamp()),
        "jti": new_jti(),
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


@dataclass
class Signer:
    """A private key with its kid and algorithm, able to publish its JWK and mint tokens."""

    private_key: Any
    alg: str
    kid: str
    iss: str = ISSUER
    extra_header: dict[str, Any] = field(default_factory=dict)

    def jwk(self) -> dict[str, Any]:
        """The public JWK, as a client publishes it."""
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        out: dict[str, Any] = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        out.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return out

    def jwks(self) -> dict[str, Any]:
        """A JWK Set holding only this key."""
        return {"keys": [self.jwk()]}

    def public_pem(self) -> bytes:
        """The public key as PEM (what an HS256 key-confusion attack signs with)."""
        pem: bytes = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def mint(self, audience: str, *, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
        """A signed token for ``audience``; keyword arguments override claims, ``header`` header
        fields (None removes one); ``now`` and ``lifetime`` set iat and exp."""
        headers = {"kid": self.kid, "typ": "JWT", **self.extra_header, **(header or {})}
        # None removes a header field (PyJWT itself drops "typ" when it is None).
        headers = {k: v for k, v in headers.items() if v is not None or k == "typ"}
        return jwt.encode(
            claims_for(audience, iss=claims.pop("iss", self.iss), **claims),
            self.private_key,
            algorithm=self.alg,
            headers=headers,
        )


def ec_signer(kid: str = "ec-384", alg: str = "ES384", iss: str = ISSUER) -> Signer:
    """A fresh EC key on the curve ``alg`` needs (P-384 for ES384, P-256 for ES256)."""
    curve = ec.SECP384R1() if alg == "ES384" else ec.SECP256R1()
    return Signer(ec.generate_private_key(curve), alg, kid, iss)


def rsa_signer(kid: str = "rsa-2048", alg: str = "RS384", iss: str = ISSUER) -> Signer:
    """A fresh 2048-bit RSA key."""
    return Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg, kid, iss)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segments(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    return _b64(json.dumps(dict(header)).encode()) + "." + _b64(json.dumps(dict(claims)).encode())


def unsigned_token(claims: Mapping[str, Any], kid: str = "ec-384") -> str:
    """An ``alg: none`` token (built by hand: PyJWT rightly resists making one)."""
    return _segments({"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."


def hs256_token(claims: Mapping[str, Any], secret: bytes, kid: str = "ec-384") -> str:
    """An HS256 token keyed with ``secret`` (by hand: PyJWT refuses a PEM as an HMAC secret)."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def bearer(token: str) -> dict[str, str]:
    """Request headers carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


def auth_config(*signers: Signer, **issuer_fields: Any) -> dict[str, Any]:
    """create_app settings trusting ``ISSUER`` with the signers' keys inline."""
    entry: dict[str, Any] = {"jwks": {"keys": [s.jwk() for s in signers]}, **issuer_fields}
    return {"AUTH_REQUIRED": True, "TRUSTED_ISSUERS": {ISSUER: entry}}


class FakeStore:
    """In-memory stand-in for service.storage.store.Store: the replay cache and a no-op card log; the
    pilot's tables (rulebook sign-offs read at start-up) in an in-memory SQLite database."""

    def __init__(self) -> None:
        self.jtis: dict[tuple[str, str], datetime] = {}
        self.engine = create_engine("sqlite://")
        metadata.create_all(self.engine)
        self.retention = Retention()

    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True when (iss, jti) is new; False when already seen."""
        if (iss, jti) in self.jtis:
            return False
        self.jtis[(iss, jti)] = expires_at
        return True

    def record_cards(self, service_id: str, cards: list[Mapping[str, Any]], kinds: list[str], **caller: Any) -> None:
        """Cards are not the concern of auth tests."""

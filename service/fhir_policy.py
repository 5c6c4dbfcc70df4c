"""Which ``fhirServer`` this deployment may call: the scheme rule (``ALLOW_HTTP_FHIR``) and the
allowlist (``FHIR_SERVER_ALLOWLIST``). Without them a caller could make the service fetch any address.

Checked by ``service.prefetch`` before the first outbound call of a request, and only when a call
is needed: a fully prefetched request never contacts ``fhirServer``, so it is not refused.
"""

from __future__ import annotations

import ipaddress

from dataclasses import dataclass
from typing import Any, Literal, Mapping
from urllib.parse import urlsplit

from .errors import FhirServerRefusedError

HttpPolicy = Literal["never", "loopback", "any"]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def http_policy(value: Any) -> HttpPolicy:
    """Read ALLOW_HTTP_FHIR: true/false (bool or string) or "loopback"; ValueError otherwise."""
    if isinstance(value, bool):
        return "any" if value else "never"
    text = str(value).strip().lower()
    if text in ("never", "loopback", "any"):
        return text  # type: ignore[return-value]
    if text in {"1", "true", "yes", "on"}:
        return "any"
    if text in {"0", "false", "no", "off", "", "none"}:
        return "never"
    raise ValueError(f"ALLOW_HTTP_FHIR must be true, false or loopback, not {value!r}")


@dataclass(frozen=True)
class BaseUrl:
    """A FHIR base URL reduced to what decides whether two are the same server."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> "BaseUrl":
        """Parse and normalise; ValueError for anything that is not a plain http(s) base URL."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError("the scheme must be https (or http where allowed)")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the URL must not carry credentials")
        if parts.query or parts.fragment:
            raise ValueError("a FHIR base URL has no query or fragment")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise ValueError("the URL has an invalid port") from None
        return cls(scheme, parts.hostname.lower(), port, parts.path.rstrip("/"))

    def contains(self, url: str) -> bool:
        """True when ``url`` is this base or a path below it (same scheme, host and port)."""
        try:
            other = BaseUrl.parse(url.split("?", 1)[0].split("#", 1)[0])
        except ValueError:
            return False
        return (other.scheme, other.host, other.port) == (self.scheme, self.host, self.port) and (
            other.path == self.path or other.path.startswith(self.path + "/"))


def allowed_bases(allowlist: Any, issuer: str | None) -> list[str] | None:
    """The base URLs allowed for a caller, or None when any is allowed.

    ``allowlist`` is a list (for every caller) or a mapping ``{"*": [...], "<issuer>": [...]}``: the
    caller gets the ``"*"`` entries plus its own issuer's. An empty list or mapping allows any server;
    a non-empty mapping with nothing for this caller allows none.
    """
    if not allowlist:
        return None
    if isinstance(allowlist, Mapping):
        return [*(allowlist.get("*") or []), *((allowlist.get(issuer) or []) if issuer else [])]
    return list(allowlist)


def check_fhir_server(url: str, *, allow_http: Any, allowlist: Any, issuer: str | None = None) -> BaseUrl:
    """Return the parsed ``fhirServer`` if this deployment may call it; else FhirServerRefusedError."""
    try:
        base = BaseUrl.parse(url)
    except ValueError as exc:
        raise FhirServerRefusedError(f"$.fhirServer is not usable: {exc}", location=["$.fhirServer"]) from None
    policy = http_policy(allow_http)
    if base.scheme == "http":
        if policy == "never":
            raise FhirServerRefusedError(
                "$.fhirServer must use https; this deployment does not call FHIR servers over plain http",
                location=["$.fhirServer"])
        if policy == "loopback" and base.host.strip("[]") not in LOOPBACK_HOSTS:
            raise FhirServerRefusedError(
                "$.fhirServer must use https; plain http is allowed only to 127.0.0.1, localhost or [::1] "
                "on this deployment", location=["$.fhirServer"])
    bases = allowed_bases(allowlist, issuer)
    if bases is None and _internal_address(base.host, loopback_ok=policy != "never"):
        # Without an allowlist, any public https server may be called, but never an address inside
        # the deployment's own network (cloud metadata, private ranges) named by the caller.
        raise FhirServerRefusedError(
            "$.fhirServer names an internal address; list it in FHIR_SERVER_ALLOWLIST to allow it",
            location=["$.fhirServer"])
    if bases is not None and not any(_same_base(base, entry) for entry in bases):
        raise FhirServerRefusedError(
            "$.fhirServer is not on this deployment's FHIR server allowlist (FHIR_SERVER_ALLOWLIST); "
            "ask the service operator to add it", location=["$.fhirServer"])
    return base


def _internal_address(host: str, *, loopback_ok: bool) -> bool:
    """True for an IP literal (or localhost) in a loopback, private, link-local or reserved range.

    Host names are not resolved here: a deployment that must exclude names resolving inside its
    network sets FHIR_SERVER_ALLOWLIST.
    """
    name = host.strip("[]")
    if name in LOOPBACK_HOSTS or name.endswith(".localhost"):
        return not loopback_ok
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if address.is_loopback:
        return not loopback_ok
    return (address.is_private or address.is_link_local or address.is_reserved or address.is_multicast
            or address.is_unspecified)


def _same_base(base: BaseUrl, entry: str) -> bool:
    try:
        return BaseUrl.parse(entry) == base
    except ValueError:
        return False

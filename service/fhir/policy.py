"""Which ``fhirServer`` this deployment may call: the scheme rule (``ALLOW_HTTP_FHIR``) and the
allowlist (``FHIR_SERVER_ALLOWLIST``). Without them a caller could make the service fetch any address.

Checked by ``service.hooks.prefetch`` before the first outbound call of a request, and only when a call
is needed: a fully prefetched request never contacts ``fhirServer``, so it is not refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import idna

from service.errors import FhirServerRefusedError

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
    def parse(cls, url: str) -> BaseUrl:
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
        return cls(scheme, canonical_host(parts.hostname), port, _normal_path(parts.path))

    def contains(self, url: str) -> bool:
        """True when ``url`` is this base or a path below it (same scheme, host and port), comparing
        percent-decoded, dot-segment-free paths (``/r4/%2e%2e/admin`` is not below ``/r4``)."""
        try:
            other = BaseUrl.parse(url.split("?", 1)[0].split("#", 1)[0])
        except ValueError:
            return False
        return (other.scheme, other.host, other.port) == (self.scheme, self.host, self.port) and (
            other.path == self.path or other.path.startswith(self.path + "/")
        )


_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)


def canonical_host(raw: str) -> str:
    """The host as the network stack will read it: percent-decoded, IDNA-encoded, lower case, no
    trailing dot, and every numeric IPv4 spelling the C library accepts (``2130706433``,
    ``0x7f000001``, ``127.1``, ``0177.0.0.1``) written as a dotted quad. ValueError when it is none
    of a host name, an IPv4 address or an IPv6 address."""
    host = unquote(raw.strip("[]")).strip().lower()
    if not host or any(c in host for c in "%/\\@?#[] \t\r\n"):
        raise ValueError("the URL's host is not a host name or an IP address")
    host = host[:-1] if host.endswith(".") else host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise ValueError("the URL's host is not a valid internationalised domain name") from None
    if re.fullmatch(r"[0-9a-fx.]+", host):
        try:  # what getaddrinfo() does first with any name: inet_aton's numeric forms
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            pass
    if not _HOST_NAME.match(host):
        raise ValueError("the URL's host is not a host name or an IP address")
    return host


def is_loopback_host(raw: str) -> bool:
    """True for a name or address of this machine only: ``localhost`` or a loopback IP address, read as
    the network stack reads it (``canonical_host``); a name such as ``127.example.org`` is not one."""
    try:
        host = canonical_host(raw)
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normal_path(raw: str) -> str:
    """A URL path percent-decoded, with ``.`` and ``..`` segments resolved and no trailing slash."""
    out: list[str] = []
    for segment in unquote(raw).split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment not in ("", "."):
            out.append(segment)
    return "/" + "/".join(out) if out else ""


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
                location=["$.fhirServer"],
            )
        if policy == "loopback" and base.host.strip("[]") not in LOOPBACK_HOSTS:
            raise FhirServerRefusedError(
                "$.fhirServer must use https; plain http is allowed only to 127.0.0.1, localhost or [::1] "
                "on this deployment",
                location=["$.fhirServer"],
            )
    bases = allowed_bases(allowlist, issuer)
    if bases is None and _internal_address(base.host, loopback_ok=policy == "loopback"):
        # Without an allowlist, any public https server may be called, but never an address inside
        # the deployment's own network (cloud metadata, private ranges) named by the caller.
        raise FhirServerRefusedError(
            "$.fhirServer names an internal address; list it in FHIR_SERVER_ALLOWLIST to allow it",
            location=["$.fhirServer"],
        )
    if bases is not None and not any(base_within(base, entry) for entry in bases):
        raise FhirServerRefusedError(
            "$.fhirServer is not on this deployment's FHIR server allowlist (FHIR_SERVER_ALLOWLIST); "
            "ask the service operator to add it",
            location=["$.fhirServer"],
        )
    return base


def _internal_address(host: str, *, loopback_ok: bool) -> bool:
    """True for a canonical host (see ``canonical_host``) that is localhost or an IP address that is
    not globally routable. Other names are checked when connecting, on the address actually used
    (``address_checker``)."""
    if host == "localhost" or host.endswith(".localhost"):
        return not loopback_ok
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address_allowed(address, loopback_ok=loopback_ok)


def address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, loopback_ok: bool) -> bool:
    """Whether the service may connect to ``address`` for a caller-named fhirServer: globally
    routable only (no private, shared 100.64/10, link-local or metadata, reserved, multicast or
    unspecified address), loopback only when ``loopback_ok``. An IPv6 address that carries an IPv4
    address a translator or tunnel would deliver to (mapped, translated, compatible, NAT64, 6to4,
    Teredo) is judged as that IPv4 address; the local-use NAT64 prefix is never called."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return False  # RFC 8215: the IPv4 address may sit at any of several offsets
        embedded = embedded_ipv4(address)
        if embedded is not None:
            address = embedded
    if address.is_loopback:
        return loopback_ok
    return address.is_global and not address.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use prefix
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 IPv4-compatible (deprecated)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address delivers to through a mapping, translator or tunnel."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64 or address in _TRANSLATED:
        return low32
    if address in _COMPATIBLE and int(address) > 1:  # not :: or ::1, which are IPv6's own
        return low32
    return None


AddressCheck = Callable[[str], bool]


def address_checker(*, allow_http: Any, allowlist: Any, issuer: str | None) -> AddressCheck | None:
    """The check every resolved address of a caller-named fhirServer must pass before the service
    connects to it, or None when the deployment lists its servers (FHIR_SERVER_ALLOWLIST)."""
    if allowed_bases(allowlist, issuer) is not None:
        return None
    loopback_ok = http_policy(allow_http) == "loopback"

    def check(ip: str) -> bool:
        try:
            return address_allowed(ipaddress.ip_address(ip.split("%", 1)[0]), loopback_ok=loopback_ok)
        except ValueError:
            return False

    return check


def base_within(base: BaseUrl, entry: str) -> bool:
    """True when ``base`` is the allowlist ``entry`` or a path below it (same scheme, host and port):
    an operator lists a server's base URL once, and every FHIR base under it is allowed (an EHR
    that serves tenants at ``/fhir/<tenant>``)."""
    try:
        listed = BaseUrl.parse(entry)
    except ValueError:
        return False
    return (base.scheme, base.host, base.port) == (listed.scheme, listed.host, listed.port) and (
        base.path == listed.path or base.path.startswith(listed.path + "/")
    )

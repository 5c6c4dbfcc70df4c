"""Which fhirServer the service may call: https only unless ALLOW_HTTP_FHIR says
otherwise, and FHIR_SERVER_ALLOWLIST globally or per trusted issuer."""

from __future__ import annotations

import pytest

from service.config import load_settings
from service.errors import FhirServerRefusedError
from service.fhir.policy import check_fhir_server, http_policy

ISS_A = "https://ehr-a.example.org"
ISS_B = "https://ehr-b.example.org"
PER_ISSUER = {"*": ["https://shared.example.org/fhir"], ISS_A: ["https://a.example.org/r4"]}

ALLOWED = [
    ("https://fhir.example.org/r4", False, [], None),
    ("https://fhir.example.org/r4/", False, [], None),
    ("http://fhir.example.org/r4", True, [], None),
    ("http://127.0.0.1:8080/fhir", "loopback", [], None),
    ("http://localhost:8080/fhir", "loopback", [], None),
    ("http://[::1]:8080/fhir", "loopback", [], None),
    ("https://remote.example.org/fhir", "loopback", [], None),
    ("https://fhir.example.org/r4", False, ["https://fhir.example.org/r4"], None),
    ("https://FHIR.example.org:443/r4/", False, ["https://fhir.example.org/r4"], None),
    ("https://a.example.org/r4", False, PER_ISSUER, ISS_A),
    ("https://shared.example.org/fhir", False, PER_ISSUER, ISS_B),
    ("https://shared.example.org/fhir", False, PER_ISSUER, None),
]
ALLOWED_IDS = [
    "https",
    "https-trailing-slash",
    "http-when-allowed",
    "loopback-127.0.0.1",
    "loopback-localhost",
    "loopback-ipv6",
    "https-under-loopback-setting",
    "allowlist-hit",
    "allowlist-hit-normalised",
    "issuer-list-hit",
    "shared-list-for-other-issuer",
    "shared-list-without-auth",
]

REFUSED = [
    ("http://fhir.example.org/r4", False, [], None, "https"),
    ("http://127.0.0.1:8080/fhir", False, [], None, "https"),
    ("http://fhir.example.org/r4", "loopback", [], None, "127.0.0.1"),
    ("http://127.0.0.2/fhir", "loopback", [], None, "127.0.0.1"),
    ("ftp://fhir.example.org/r4", True, [], None, "scheme"),
    ("file:///etc/passwd", True, [], None, "scheme"),
    ("https://user:pw@fhir.example.org/r4", False, [], None, "credentials"),
    ("https:///r4", False, [], None, "host"),
    ("https://evil.example.org/r4", False, ["https://fhir.example.org/r4"], None, "allowlist"),
    ("https://fhir.example.org/other", False, ["https://fhir.example.org/r4"], None, "allowlist"),
    ("https://fhir.example.org:8443/r4", False, ["https://fhir.example.org/r4"], None, "allowlist"),
    ("https://a.example.org/r4", False, PER_ISSUER, ISS_B, "allowlist"),
    ("https://a.example.org/r4", False, PER_ISSUER, None, "allowlist"),
    ("https://b.example.org/r4", False, {ISS_A: ["https://a.example.org/r4"]}, ISS_B, "allowlist"),
]
REFUSED_IDS = [
    "http-by-default",
    "http-loopback-by-default",
    "http-remote-under-loopback",
    "other-loopback-address-not-listed",
    "ftp",
    "file",
    "credentials-in-url",
    "no-host",
    "allowlist-miss",
    "allowlist-other-path",
    "allowlist-other-port",
    "other-issuers-list",
    "issuer-list-needs-issuer",
    "issuer-with-no-list-gets-none",
]


@pytest.mark.parametrize("url, allow_http, allowlist, issuer", ALLOWED, ids=ALLOWED_IDS)
def test_allowed_fhir_servers(url, allow_http, allowlist, issuer):
    check_fhir_server(url, allow_http=allow_http, allowlist=allowlist, issuer=issuer)


@pytest.mark.parametrize("url, allow_http, allowlist, issuer, says", REFUSED, ids=REFUSED_IDS)
def test_refused_fhir_servers(url, allow_http, allowlist, issuer, says):
    with pytest.raises(FhirServerRefusedError, match=says) as caught:
        check_fhir_server(url, allow_http=allow_http, allowlist=allowlist, issuer=issuer)
    assert caught.value.status == 400
    assert caught.value.location == ["$.fhirServer"]


@pytest.mark.parametrize(
    "raw, policy", [("true", "any"), ("false", "never"), ("loopback", "loopback"), ("LOOPBACK", "loopback")]
)
def test_allow_http_fhir_from_the_environment(raw, policy):
    config = load_settings(environ={"TACRO_CDS_ALLOW_HTTP_FHIR": raw})
    assert http_policy(config.allow_http_fhir) == policy


def test_an_invalid_allow_http_fhir_stops_start_up():
    with pytest.raises(ValueError):
        load_settings(environ={"TACRO_CDS_ALLOW_HTTP_FHIR": "sometimes"})
    with pytest.raises(ValueError):
        http_policy("sometimes")


# Without an allowlist, a caller still cannot point the service at an address inside its network.
INTERNAL = [
    ("cloud-metadata", "https://169.254.169.254/latest", False, True),
    ("private-10", "https://10.0.0.5/fhir", False, True),
    ("private-192-168", "https://192.168.1.20/fhir", False, True),
    ("loopback-https-by-default", "https://127.0.0.1:8443/admin", False, True),
    ("localhost-https-by-default", "https://localhost/fhir", False, True),
    ("ipv6-link-local", "https://[fe80::1]/fhir", False, True),
    ("loopback-when-local-http-allowed", "http://127.0.0.1:8080/fhir", "loopback", False),
    ("public-name", "https://fhir.example.org/r4", False, False),
]


@pytest.mark.parametrize("url, allow_http, refused", [c[1:] for c in INTERNAL], ids=[c[0] for c in INTERNAL])
def test_internal_addresses_need_the_allowlist(url, allow_http, refused):
    if refused:
        with pytest.raises(FhirServerRefusedError, match="internal address"):
            check_fhir_server(url, allow_http=allow_http, allowlist=[])
        check_fhir_server(url, allow_http=allow_http, allowlist=[url])  # listed explicitly: allowed
    else:
        check_fhir_server(url, allow_http=allow_http, allowlist=[])


def test_an_allowlist_entry_allows_the_base_and_paths_below_it_only():
    """An operator names an EHR's base URL once; its tenants' bases below it are allowed, nothing
    beside it (a sibling path, a longer segment, an escape with dot segments)."""
    listed = ["https://ehr.example.org/fhir"]
    for url in (
        "https://ehr.example.org/fhir",
        "https://ehr.example.org/fhir/tenant-1",
        "https://EHR.example.org/fhir/",
    ):
        check_fhir_server(url, allow_http=False, allowlist=listed)
    for url in (
        "https://ehr.example.org/fhirx",
        "https://ehr.example.org/other",
        "https://ehr.example.org/fhir/../admin",
        "https://ehr.example.org:8443/fhir",
        "http://ehr.example.org/fhir",
    ):
        with pytest.raises(FhirServerRefusedError):
            check_fhir_server(url, allow_http=True, allowlist=listed)

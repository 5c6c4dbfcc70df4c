"""The SMART app under the same outbound policy as the hook path. Each test replays an attack on the
app (attacker servers on 127.0.0.1, host names mapped inside this process) and checks it now does
no harm: no connection to an internal address, no redirect followed, no credential sent to a host an
``iss`` chose, no serving thread held by a slow EHR, no page showing another launch's patient, no
session written by a launch or callback that did not succeed."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from attack_servers import AttackServer, Seen, Trickler, json_answer, map_names
from smart_doubles import ISS, FakeEhr, fixture_resources
from ssrf_matrix import EMBEDDED_IPV4, INTERNAL, loopback_spellings

from service.smart_app import ExpiredSessionSweep


@pytest.fixture
def smart_app(make_app, tmp_path):
    def factory(**overrides):
        config = {
            "SMART_SESSION_DIR": str(tmp_path / "sessions"),
            "SECRET_KEY": "test-secret",
            "SMART_COOKIE_SECURE": False,
            "SMART_HTTP_TIMEOUT_S": 2.0,
            "ALLOW_HTTP_FHIR": True,  # the attacker servers speak plain http; the address policy is under test
        }
        config.update(overrides)
        return make_app(**config)

    return factory


@pytest.fixture
def counter():
    """A listener on 127.0.0.1 that only counts connections (a port the attack wants reached)."""
    server = Trickler(step_s=0.05, limit_s=2.0)
    yield server
    server.close()


class Ehr:
    """A complete EHR on 127.0.0.1 (discovery, token endpoint, key set), reached as ``ehr.test``."""

    def __init__(self, host: str = "ehr.test", patient: str = "trough-high") -> None:
        self.host = host
        self.patient = patient
        self.server = AttackServer().start()
        self.token_endpoint: str | None = None
        self.jwks_uri: str | None = None
        self.token_extra: dict[str, object] = {}
        self.server.routes["GET /fhir/.well-known/smart-configuration"] = lambda seen: json_answer(
            {
                "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": self.token_endpoint or f"{self.base}/token",
                "jwks_uri": self.jwks_uri or f"{self.base}/jwks",
                "capabilities": ["launch-ehr", "client-public", "permission-v2"],
            }
        )
        self.server.routes["POST /token"] = self._token

    @property
    def base(self) -> str:
        return self.server.url(self.host)

    @property
    def iss(self) -> str:
        return self.base + "/fhir"

    def _token(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        body = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "patient": self.patient}
        body.update(self.token_extra)
        return json_answer(body)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def ehr(monkeypatch):
    server = Ehr()
    with map_names(monkeypatch, {"ehr.test": "127.0.0.1", "inside.test": "127.0.0.1", "meta.test": "169.254.169.254"}):
        yield server
    server.close()


def start(client, iss, launch="l-1"):
    return client.get("/smart/launch", query_string={"iss": iss, "launch": launch})


def finish(client, launched, code="code-1"):
    state = parse_qs(urlsplit(launched.headers["Location"]).query)["state"][0]
    return client.get("/smart/callback", query_string={"code": code, "state": state})


def session_files(tmp_path: Path) -> list[Path]:
    """The session store's entries (not its own 9-byte entry counter)."""
    folder = tmp_path / "sessions"
    return [p for p in folder.iterdir() if p.is_file() and p.stat().st_size > 16] if folder.exists() else []


# -- high: SSRF through the app ------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"SMART_ISSUERS": ["https://ehr.example.org/fhir"]},  # listed EHRs: anything else is refused
        {},  # nothing listed, not in development: the app serves no EHR at all
    ],
    ids=["listed", "unconfigured"],
)
def test_every_internal_spelling_of_iss_is_refused_before_any_connection(smart_app, counter, config):
    client = smart_app(**config).test_client()
    urls = loopback_spellings(counter.port) + INTERNAL + EMBEDDED_IPV4
    for url in urls:
        response = start(client, url)
        assert response.status_code == 400, (url, response.status_code)
        assert "Location" not in response.headers  # never a redirect to the attacker's authorize page
    assert counter.connections == 0
    assert len(urls) == 46 + len(INTERNAL) + len(EMBEDDED_IPV4)


def test_in_development_only_this_machine_is_served(smart_app, counter):
    """No EHR listed and ALLOW_HTTP_FHIR=loopback (``serve --dev``): the development EHR only."""
    client = smart_app(ALLOW_HTTP_FHIR="loopback").test_client()
    for url in INTERNAL + EMBEDDED_IPV4 + ["https://fhir.example.org/r4"]:
        response = start(client, url)
        assert response.status_code == 400, url
    assert "SMART_ISSUERS" in start(client, "https://fhir.example.org/r4").get_data(as_text=True)
    assert counter.connections == 0


def test_a_listed_ehr_cannot_point_the_token_call_at_an_internal_name(smart_app, ehr, counter):
    ehr.token_endpoint = f"http://inside.test:{counter.port}/token"
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    launched = start(client, ehr.iss)
    assert launched.status_code == 302
    done = finish(client, launched)
    assert done.status_code == 502
    assert counter.connections == 0  # the name resolved to 127.0.0.1: no connection was made


def test_a_listed_ehr_cannot_point_the_key_set_fetch_at_an_internal_name(smart_app, ehr, counter):
    ehr.jwks_uri = f"http://inside.test:{counter.port}/jwks"
    ehr.token_extra = {"id_token": "x.y.z"}
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    done = finish(client, start(client, ehr.iss))
    assert done.status_code == 502 and counter.connections == 0


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_from_the_ehr_are_not_followed(smart_app, ehr, counter, status):
    target = {"Location": f"http://127.0.0.1:{counter.port}/"}
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    ehr.server.routes["POST /token"] = (status, target, b"")
    done = finish(client, start(client, ehr.iss))
    assert done.status_code == 502
    ehr.server.routes["GET /fhir/.well-known/smart-configuration"] = (status, target, b"")
    assert start(client, ehr.iss).status_code == 502
    assert counter.connections == 0


def test_error_pages_do_not_tell_an_open_port_from_a_closed_one(smart_app, counter):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    open_iss, closed_iss = f"http://127.0.0.1:{counter.port}/fhir", f"http://127.0.0.1:{closed_port}/fhir"
    client = smart_app(SMART_ISSUERS=[open_iss, closed_iss], SMART_HTTP_TIMEOUT_S=0.5).test_client()
    answers = [start(client, iss) for iss in (open_iss, closed_iss)]
    assert [a.status_code for a in answers] == [502, 502]
    assert answers[0].get_data() == answers[1].get_data()


# -- high: credentials only to a listed issuer's token endpoint ------------------------------------


def test_a_client_secret_never_goes_to_an_ehr_nobody_listed(smart_app, monkeypatch):
    """Development mode accepts an EHR on this machine without a list, but not with a secret."""
    dev = Ehr(host="127.0.0.1")
    try:
        client = smart_app(ALLOW_HTTP_FHIR="loopback", SMART_CLIENT_SECRET="s3cret").test_client()
        response = start(client, dev.iss)
        assert response.status_code == 400 and "confidential client" in response.get_data(as_text=True)
        assert dev.server.seen == []
    finally:
        dev.close()


def test_netrc_and_proxy_variables_add_no_credentials(smart_app, ehr, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("default login stolen password leaked\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    ehr.token_extra = {"id_token": "x.y.z"}
    client = smart_app(SMART_ISSUERS=[ehr.iss], SMART_CLIENT_SECRET="s3cret").test_client()
    finish(client, start(client, ehr.iss))
    paths = {seen.path.split("?")[0]: seen for seen in ehr.server.seen}
    assert {"/fhir/.well-known/smart-configuration", "/token", "/jwks"} <= set(paths)
    assert "Authorization" not in paths["/fhir/.well-known/smart-configuration"].headers
    assert "Authorization" not in paths["/jwks"].headers
    # The listed EHR's token endpoint is the one place the secret goes.
    assert paths["/token"].headers["Authorization"] == "Basic " + base64.b64encode(b"tacro-cds:s3cret").decode()
    assert b"leaked" not in b"".join(s.body + json.dumps(s.headers).encode() for s in ehr.server.seen)


# -- high: a slow iss holds no more than a few threads ---------------------------------------------


def test_forty_launches_against_a_trickling_ehr_hold_at_most_the_per_origin_limit(smart_app):
    trickler = Trickler(step_s=0.5, limit_s=10.0)
    try:
        iss = f"http://127.0.0.1:{trickler.port}/fhir"
        app = smart_app(SMART_ISSUERS=[iss], SMART_HTTP_TIMEOUT_S=1.5)

        def one(_: int) -> tuple[int, float]:
            began = time.monotonic()
            status = start(app.test_client(), iss).status_code
            return status, time.monotonic() - began

        began = time.monotonic()
        with ThreadPoolExecutor(40) as pool:
            results = list(pool.map(one, range(40)))
        elapsed = time.monotonic() - began
    finally:
        trickler.close()
    assert {status for status, _ in results} == {502}
    assert trickler.connections <= 4  # the rest were refused at once, without a connection
    assert (
        max(took for _, took in results) < 1.5 + 5.0
    )  # the deadline, plus a busy machine's margin (the EHR trickles 10 s)
    assert elapsed < 10.0


# -- high: each launch its own page, the patient always named --------------------------------------


@pytest.fixture
def fake_ehr():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeEhr(rsps, extra_resources=fixture_resources("trough-low"))


def _sign_in(client, ehr, patient):
    ehr.token_extra = {"patient": patient}
    launched = client.get("/smart/launch", query_string={"iss": ISS, "launch": f"launch-{patient}"})
    ehr.note_authorize(launched.headers["Location"])
    state = parse_qs(urlsplit(launched.headers["Location"]).query)["state"][0]
    done = client.get("/smart/callback", query_string={"code": "code-1", "state": state})
    assert done.status_code == 303, done.get_data(as_text=True)
    return done.headers["Location"]


def test_reloading_patient_a_after_launching_patient_b_still_shows_a(smart_app, fake_ehr):
    client = smart_app(SMART_ISSUERS=[ISS], ALLOW_HTTP_FHIR=False).test_client()
    fake_ehr.install()
    page_a = _sign_in(client, fake_ehr, "trough-high")
    page_b = _sign_in(client, fake_ehr, "trough-low")
    assert page_a != page_b
    html_a = client.get(page_a).get_data(as_text=True)  # the reload of A's tab
    html_b = client.get(page_b).get_data(as_text=True)
    assert "Fixture-Novak" in html_a and "Fixture-Dvorak" not in html_a
    assert "Fixture-Dvorak" in html_b and "Fixture-Novak" not in html_b
    # The app's bare address belongs to no patient.
    assert client.get("/smart/").status_code == 401


def test_the_patient_is_named_even_when_the_ehr_shows_its_own_banner(smart_app, fake_ehr):
    client = smart_app(SMART_ISSUERS=[ISS], ALLOW_HTTP_FHIR=False).test_client()
    fake_ehr.install()
    fake_ehr.token_extra = {"need_patient_banner": False}
    launched = client.get("/smart/launch", query_string={"iss": ISS, "launch": "x"})
    fake_ehr.note_authorize(launched.headers["Location"])
    state = parse_qs(urlsplit(launched.headers["Location"]).query)["state"][0]
    page = client.get(
        client.get("/smart/callback", query_string={"code": "code-1", "state": state}).headers["Location"]
    )
    html = page.get_data(as_text=True)
    assert 'class="banner"' not in html
    assert "Hana Fixture-Novak" in html and "1987-03-21" in html


def test_a_launch_from_another_site_does_not_replace_a_signed_in_page(smart_app, fake_ehr):
    """Launch CSRF: a top-level navigation to /smart/launch with the attacker's iss."""
    client = smart_app(SMART_ISSUERS=[ISS], ALLOW_HTTP_FHIR=False).test_client()
    fake_ehr.install()
    page_a = _sign_in(client, fake_ehr, "trough-high")
    forged = start(client, "https://attacker.example/fhir")
    assert forged.status_code == 400 and "Location" not in forged.headers  # no open redirect either
    html = client.get(page_a).get_data(as_text=True)
    assert "Fixture-Novak" in html


# -- medium: bounded data, no session without a successful callback --------------------------------


def test_a_huge_token_response_is_refused_and_writes_no_session(smart_app, ehr, tmp_path):
    ehr.token_extra = {"padding": "x" * (2 * 1024 * 1024)}
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    assert finish(client, start(client, ehr.iss)).status_code == 502
    assert session_files(tmp_path) == []


def test_a_huge_context_value_is_not_kept(smart_app, ehr, tmp_path):
    ehr.token_extra = {"fhirContext": [{"reference": "x" * 20_000}]}
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    assert finish(client, start(client, ehr.iss)).status_code == 303
    assert all(f.stat().st_size < 16 * 1024 for f in session_files(tmp_path))


def test_a_huge_key_set_is_refused(smart_app, ehr):
    ehr.token_extra = {"id_token": "x.y.z"}
    ehr.server.routes["GET /jwks"] = json_answer({"keys": [{"kty": "oct", "k": "A" * (1024 * 1024)}]})
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    assert finish(client, start(client, ehr.iss)).status_code == 502


def test_unauthenticated_callbacks_and_failed_launches_write_no_session(smart_app, ehr, tmp_path):
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    for i in range(300):
        assert client.get("/smart/callback", query_string={"state": f"s{i}", "code": "c"}).status_code == 400
    assert start(client, "https://attacker.example/fhir").status_code == 400
    assert start(client, ehr.iss).status_code == 302  # a pending launch: in the browser's cookie only
    assert session_files(tmp_path) == []


# -- low: answers that ended in a 500 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, status",
    [({"expires_in": 10**400}, 303), ({"expires_in": -5}, 303), ({"expires_in": "soon"}, 502)],
    ids=["huge", "negative", "text"],
)
def test_odd_expires_in_is_no_500(smart_app, ehr, extra, status):
    ehr.server.routes["POST /token"] = lambda seen: (
        200,
        {"Content-Type": "application/json"},
        json.dumps({"access_token": "at-1", "token_type": "Bearer", "patient": "p"})[:-1].encode()
        + b', "expires_in": '
        + json.dumps(extra["expires_in"]).encode()
        + b"}",
    )
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    assert finish(client, start(client, ehr.iss)).status_code == status


@pytest.mark.parametrize("key_set", [[1, 2], {"keys": "none"}, {"keys": [{"kty": "nonsense"}]}, "text"])
def test_a_key_set_that_is_json_but_no_key_set_is_no_500(smart_app, ehr, key_set):
    ehr.token_extra = {"id_token": "x.y.z"}
    ehr.server.routes["GET /jwks"] = json_answer(key_set)
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    assert finish(client, start(client, ehr.iss)).status_code == 502


def test_a_discovery_body_cut_short_is_no_500(smart_app):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"authoriz')
        conn.close()

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    iss = f"http://127.0.0.1:{port}/fhir"
    try:
        response = start(smart_app(SMART_ISSUERS=[iss]).test_client(), iss)
    finally:
        thread.join(5)
        listener.close()
    assert response.status_code == 502


def test_the_ehrs_error_text_is_shown_safely_and_logged(smart_app, ehr):
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    launched = start(client, ehr.iss)
    state = parse_qs(urlsplit(launched.headers["Location"]).query)["state"][0]
    response = client.get(
        "/smart/callback",
        query_string={
            "state": state,
            "error": "<b>call 555-0100</b>",
            "error_description": "Scope\u0000 refused " * 40,
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "555-0100" not in html and "an unrecognised error" in html  # an unknown code is not echoed
    assert "Scope  refused" in html and "\u0000" not in html and len(html) < 20_000
    launched = start(client, ehr.iss)
    state = parse_qs(urlsplit(launched.headers["Location"]).query)["state"][0]
    ehr.server.routes["POST /token"] = json_answer({"error": "invalid_grant", "error_description": "code expired"}, 400)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tacro_cds.smart_app")  # the service's loggers do not propagate
    logger.addHandler(handler)
    try:
        refused = finish(client, launched)
    finally:
        logger.removeHandler(handler)
    assert refused.status_code == 502 and "invalid_grant: code expired" in refused.get_data(as_text=True)
    assert any(getattr(r, "oauth_error_description", "") == "code expired" for r in records)


def test_the_callback_address_never_comes_from_a_foreign_host_header(smart_app, ehr):
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    response = client.get(
        "/smart/launch", query_string={"iss": ehr.iss, "launch": "l"}, headers={"Host": "evil.example"}
    )
    assert response.status_code == 400 and "EXTERNAL_BASE_URL" in response.get_data(as_text=True)
    configured = smart_app(SMART_ISSUERS=[ehr.iss], EXTERNAL_BASE_URL="https://cds.example.org").test_client()
    launched = configured.get(
        "/smart/launch", query_string={"iss": ehr.iss, "launch": "l"}, headers={"Host": "evil.example"}
    )
    sent = parse_qs(urlsplit(launched.headers["Location"]).query)
    assert sent["redirect_uri"] == ["https://cds.example.org/smart/callback"]


# -- low: the session folder -------------------------------------------------------------------------


def test_an_existing_session_folder_is_tightened(smart_app, tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    smart_app()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_expired_sessions_are_deleted_with_their_tokens(smart_app, ehr, tmp_path):
    app = smart_app(SMART_ISSUERS=[ehr.iss], SMART_SESSION_LIFETIME_S=1)
    client = app.test_client()
    assert finish(client, start(client, ehr.iss)).status_code == 303
    files = session_files(tmp_path)
    assert files and any(b"at-1" in f.read_bytes() for f in files)
    time.sleep(2.1)
    ExpiredSessionSweep(app.config["SESSION_CACHELIB"], interval_s=0)()
    assert not any(b"at-1" in f.read_bytes() for f in session_files(tmp_path))


# -- medium: slow page loads of one launch do not lock out the others --------------------------------


def test_two_slow_page_loads_of_one_launch_leave_other_launches_served(smart_app, fake_ehr):
    app = smart_app(SMART_ISSUERS=[ISS], ALLOW_HTTP_FHIR=False, FHIR_FALLBACK_MAX_PER_ISSUER=2)
    client = app.test_client()
    release = threading.Event()
    original = fake_ehr._fhir

    def slow_for_a(request):
        if "trough-high" in str(request.url):
            release.wait(10)  # A's FHIR reads hang until B's page has been measured
        return original(request)

    fake_ehr._fhir = slow_for_a  # before install(), which registers the FHIR callback
    fake_ehr.install()
    page_a = _sign_in(client, fake_ehr, "trough-high")
    page_b = _sign_in(client, fake_ehr, "trough-low")
    cookie = client.get_cookie("tacro_cds_smart", path="/smart").value

    def load(url: str) -> int:
        other = app.test_client()
        other.set_cookie("tacro_cds_smart", cookie, path="/smart")
        return other.get(url).status_code

    with ThreadPoolExecutor(3) as pool:
        slow = [pool.submit(load, page_a) for _ in range(2)]
        time.sleep(0.5)  # both of A's loads hold their gate slots
        status_b = load(page_b)
        release.set()
        statuses_a = [f.result() for f in slow]
    assert status_b == 200
    assert statuses_a == [200, 200]


def test_the_apps_issuers_follow_a_per_caller_fhir_allowlist(smart_app, fake_ehr):
    """No SMART_ISSUERS: the EHRs of FHIR_SERVER_ALLOWLIST, a base-URL prefix each; the record is
    read under the entry that names the EHR."""
    listed = {"https://cds-client.example.org": ["https://ehr.example.org"]}
    client = smart_app(SMART_ISSUERS=[], FHIR_SERVER_ALLOWLIST=listed, ALLOW_HTTP_FHIR=False).test_client()
    assert start(client, "https://other.example.org/fhir").status_code == 400
    fake_ehr.install()
    page = _sign_in(client, fake_ehr, "trough-high")  # ISS is https://ehr.example.org/fhir: below the entry
    assert "Fixture-Novak" in client.get(page).get_data(as_text=True)


def test_long_launches_keep_the_pending_cookie_within_what_browsers_keep(smart_app, ehr):
    """Each launch adds to the pending cookie; the oldest give way so the newest always fits in 4 KB."""
    long_iss = ehr.iss + "/" + "t" * 900
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    ehr.server.routes[f"GET /fhir/{'t' * 900}/.well-known/smart-configuration"] = ehr.server.routes[
        "GET /fhir/.well-known/smart-configuration"
    ]
    for i in range(4):
        launched = start(client, long_iss, launch=f"l{i}")
        assert launched.status_code == 302
        cookie = [c for c in launched.headers.getlist("Set-Cookie") if c.startswith("tacro_cds_smart_pending=")][0]
        assert len(cookie.split(";")[0]) < 4000
    assert finish(client, launched).status_code == 303  # the newest launch completes


@pytest.mark.parametrize("host", ["evil.example", "127.evil.example", "cds.example.org:443"])
def test_card_links_never_point_at_a_host_the_caller_named(smart_app, host):
    from fhir_fixtures import load_request

    body = load_request("trough-high", "patient-view")
    client = smart_app().test_client()
    foreign = client.post("/cds-services/tacrolimus-patient-view", json=body, headers={"Host": host}).get_json()
    assert foreign["cards"] and not [link for c in foreign["cards"] for link in c.get("links", [])]
    local = client.post("/cds-services/tacrolimus-patient-view", json=body, headers={"Host": "127.0.0.1:8080"})
    links = [link["url"] for c in local.get_json()["cards"] for link in c.get("links", [])]
    assert links and set(links) == {"http://127.0.0.1:8080/smart/launch"}
    configured = smart_app(EXTERNAL_BASE_URL="https://cds.example.org").test_client()
    answer = configured.post("/cds-services/tacrolimus-patient-view", json=body, headers={"Host": host}).get_json()
    assert {link["url"] for c in answer["cards"] for link in c.get("links", [])} == {
        "https://cds.example.org/smart/launch"
    }


def test_every_internal_spelling_named_by_a_listed_ehr_is_refused_without_a_connection(smart_app, ehr, counter):
    """The SSRF matrix on the hosts an EHR's SMART configuration names (token endpoint, key set):
    the EHR is listed, the hosts it names are not, so they must be public."""
    client = smart_app(SMART_ISSUERS=[ehr.iss]).test_client()
    targets = [u.removesuffix("/fhir") for u in loopback_spellings(counter.port) + INTERNAL + EMBEDDED_IPV4]
    for target in targets:
        ehr.token_endpoint, ehr.jwks_uri = target + "/token", None
        launched = start(client, ehr.iss)
        if launched.status_code == 302:  # a host that is no host at all is refused at discovery
            assert finish(client, launched).status_code == 502, target
        else:
            assert launched.status_code == 502, target
        ehr.token_endpoint, ehr.jwks_uri = None, target + "/jwks"
        ehr.token_extra = {"id_token": "x.y.z"}
        launched = start(client, ehr.iss)
        if launched.status_code == 302:
            assert finish(client, launched).status_code == 502, target
        ehr.token_extra = {}
    assert counter.connections == 0

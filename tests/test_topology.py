"""The production topology without containers: two instances of the service (gunicorn, as
``tacro-cds serve`` runs it) on two ports, sharing one PostgreSQL database, behind the shipped
proxy configuration (deploy/nginx.conf, run by Debian's nginx; see proxy_support).

What the replicas of docker-compose.yml must share, checked across two processes that share
nothing but the database: a JWT accepted by one instance is refused by the other (the jti replay
cache), feedback posted to one is counted in the other's summary (issued cards and feedback), and
the proxy spreads calls over both. Both instances are configured as Compose configures replicas:
the same EXTERNAL_BASE_URL (the proxy's URL), so a token's audience is valid at either.

Needs TACRO_CDS_TEST_POSTGRES_URL (.ci/postgres.sh) and nginx: skipped without them, failed under
CI=true (.ci/run provides both).
"""

from __future__ import annotations

import base64
import collections
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from db_support import POSTGRES_URL, postgres_schema
from jwt_support import ISSUER, Signer, ec_signer
from proxy_support import nginx_binary, running_proxy, upstreams_used

from bench.samples import builtin_request
from bench.server import Server, free_port, gunicorn

pytestmark = [pytest.mark.topology, pytest.mark.postgres]

SERVICE = "tacrolimus-patient-view"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A PostgreSQL schema of its own, shared by both instances; dropped afterwards."""
    if not POSTGRES_URL:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("TACRO_CDS_TEST_POSTGRES_URL not set (.ci/run starts PostgreSQL)")
        pytest.skip("TACRO_CDS_TEST_POSTGRES_URL not set; .ci/postgres.sh starts a PostgreSQL and sets it")
    with postgres_schema("topology") as url:
        yield url


class Fleet:
    """Instances A and B, the proxy in front of them, and the one key the EHR signs with."""

    def __init__(self, a: Server, b: Server, proxy: str, proxy_folder: Path, signer: Signer) -> None:
        self.a, self.b, self.proxy, self.proxy_folder, self.signer = a, b, proxy, proxy_folder, signer

    def token(self, path: str) -> str:
        """A fresh token for ``path`` (aud: the public URL, the proxy's, as every replica is told)."""
        # The instances check exp and iat against their real clock.
        return self.signer.mint(self.proxy + path, now=datetime.now(UTC))

    @staticmethod
    def call(base: str, path: str, token: str, body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if body is None:
            return requests.get(base + path, headers=headers, timeout=30)
        return requests.post(base + path, json=body, headers=headers, timeout=30)


def _rejections(server: Server) -> list[dict[str, Any]]:
    """The instance's 'caller rejected' log records (reason and jti), in order."""
    return [
        record
        for record in (json.loads(line) for line in server.log().splitlines() if line.startswith("{"))
        if record.get("message") == "caller rejected"
    ]


def _hook_calls(server: Server) -> int:
    """Hook calls the instance answered, by its own log."""
    return sum(
        1
        for line in server.log().splitlines()
        if line.startswith("{")
        and (record := json.loads(line)).get("message") == "call"
        and record.get("path") == "/cds-services/<service_id>"
        and record.get("status") == 200
    )


@pytest.fixture(scope="module")
def fleet(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    nginx_binary()  # skip or fail before starting anything
    signer = ec_signer()
    proxy_port = free_port()
    env = {
        "TACRO_CDS_AUTH_REQUIRED": "true",
        "TACRO_CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: {"jwks": signer.jwks()}}),
        "TACRO_CDS_EXTERNAL_BASE_URL": f"http://127.0.0.1:{proxy_port}",
        "TACRO_CDS_FEEDBACK_DB": database,
        "TACRO_CDS_LOG_LEVEL": "INFO",
    }
    folder = tmp_path_factory.mktemp("proxy")
    with gunicorn(workers=1, threads=2, env=env) as a, gunicorn(workers=1, threads=2, env=env) as b:
        with running_proxy(folder, [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"], proxy_port) as proxy:
            yield Fleet(a, b, proxy, folder, signer)


def test_a_token_accepted_by_one_instance_is_refused_by_the_other(fleet: Fleet) -> None:
    path = f"/cds-services/{SERVICE}"
    body = builtin_request("patient-view", with_token=False)
    token = fleet.token(path)
    jti = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]

    first = fleet.call(fleet.a.base_url, path, token, body)
    assert first.status_code == 200, first.text[:300]
    assert first.json()["cards"]

    replayed = fleet.call(fleet.b.base_url, path, token, body)
    assert replayed.status_code == 401
    assert replayed.json()["resourceType"] == "OperationOutcome"
    # Refused for the replay, by B: its log says why (the answer says nothing of the reason).
    assert {"reason": "replayed jti", "jti": jti} in [
        {"reason": r.get("reason"), "jti": r.get("jti")} for r in _rejections(fleet.b)
    ]
    # B accepts a fresh token for the same call: the refusal was the replay, not B's configuration.
    assert fleet.call(fleet.b.base_url, path, fleet.token(path), body).status_code == 200


def test_feedback_posted_to_one_instance_is_in_the_other_instances_summary(fleet: Fleet) -> None:
    path = f"/cds-services/{SERVICE}"
    summary_path = f"{path}/feedback/summary"
    before = fleet.call(fleet.b.base_url, summary_path, fleet.token(summary_path))
    assert before.status_code == 200, before.text[:300]

    answer = fleet.call(fleet.a.base_url, path, fleet.token(path), builtin_request("patient-view", with_token=False))
    assert answer.status_code == 200, answer.text[:300]
    card = next(c for c in answer.json()["cards"] if c.get("suggestions"))
    entry = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    posted = fleet.call(fleet.a.base_url, f"{path}/feedback", fleet.token(f"{path}/feedback"), {"feedback": [entry]})
    assert posted.status_code == 200, posted.text[:300]
    assert posted.json() == {"stored": 1}

    after = fleet.call(fleet.b.base_url, summary_path, fleet.token(summary_path))
    assert after.status_code == 200, after.text[:300]
    assert after.json()["total"] == before.json()["total"] + 1
    # One more "accepted", under the kind of the card A issued (B found the card on record).
    grown = _counts(after.json())
    grown.subtract(_counts(before.json()))
    assert [(outcome, n) for (_, outcome), n in grown.items() if n] == [("accepted", 1)], grown


def _counts(summary: dict[str, Any]) -> collections.Counter[tuple[str, str]]:
    """A feedback summary's counts per (card kind, outcome)."""
    return collections.Counter(
        {(kind, outcome): n for kind, outcomes in summary["byKind"].items() for outcome, n in outcomes.items()}
    )


def test_calls_through_the_proxy_reach_both_instances_and_share_the_replay_cache(fleet: Fleet) -> None:
    path = f"/cds-services/{SERVICE}"
    body = builtin_request("patient-view", with_token=False)
    logged_before = len(upstreams_used(fleet.proxy_folder))
    calls_before = {"a": _hook_calls(fleet.a), "b": _hook_calls(fleet.b)}

    answers = [fleet.call(fleet.proxy, path, fleet.token(path), body) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 6, [r.text[:200] for r in answers]
    assert [r.headers.get("X-Content-Type-Options") for r in answers] == ["nosniff"] * 6

    # Seen from the proxy (which upstream answered) and from each instance (its own log).
    used = collections.Counter(upstreams_used(fleet.proxy_folder)[logged_before:])
    assert set(used) == {f"127.0.0.1:{fleet.a.port}", f"127.0.0.1:{fleet.b.port}"}, used
    assert _hook_calls(fleet.a) > calls_before["a"] and _hook_calls(fleet.b) > calls_before["b"]

    # One token through the proxy: accepted once, then refused wherever the proxy sends it.
    token = fleet.token(path)
    statuses = [fleet.call(fleet.proxy, path, token, body).status_code for _ in range(4)]
    assert statuses == [200, 401, 401, 401]
    replay_hosts = upstreams_used(fleet.proxy_folder)[-3:]
    assert len(set(replay_hosts)) == 2, replay_hosts  # the replays met both instances


def _feedback_calls(server: Server) -> list[int]:
    """Statuses of the feedback posts the instance answered, by its own log."""
    return [
        record["status"]
        for line in server.log().splitlines()
        if line.startswith("{")
        and (record := json.loads(line)).get("message") == "call"
        and record.get("path") == "/cds-services/<service_id>/feedback"
    ]


def test_the_proxy_passes_bodies_up_to_the_services_limit_and_refuses_larger_ones(fleet: Fleet) -> None:
    """nginx's body limit is the service's (5 MiB): a body just under it reaches an instance whole
    (spooled to nginx's temporary files first, being over its 1 MiB memory buffer); one over it is
    refused by the proxy, and no instance sees it."""
    path = f"/cds-services/{SERVICE}/feedback"
    headers = {"Content-Type": "application/json"}
    seen = len(_feedback_calls(fleet.a)) + len(_feedback_calls(fleet.b))

    padded = b'{"feedback": [' + b" " * (5 * 1024 * 1024 - 100) + b"]}"
    answer = requests.post(
        fleet.proxy + path, data=padded, timeout=60, headers={**headers, "Authorization": f"Bearer {fleet.token(path)}"}
    )
    # The service parsed the whole body (the empty list is its answer, a schema violation, not nginx's).
    assert answer.status_code == 400, answer.text[:300]
    assert answer.json()["issue"][0]["diagnostics"] == "schema-violation"
    assert len(_feedback_calls(fleet.a)) + len(_feedback_calls(fleet.b)) == seen + 1

    too_big = b'{"feedback": [' + b" " * (5 * 1024 * 1024 + 100) + b"]}"
    refused = requests.post(
        fleet.proxy + path,
        data=too_big,
        timeout=60,
        headers={**headers, "Authorization": f"Bearer {fleet.token(path)}"},
    )
    assert refused.status_code == 413
    assert len(_feedback_calls(fleet.a)) + len(_feedback_calls(fleet.b)) == seen + 1

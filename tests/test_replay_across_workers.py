"""A token replayed to another worker is rejected, end to end.

``tacro-cds serve`` under gunicorn with 2 workers, caller authentication on (one trusted issuer, an
inline ES384 JWK Set) and FEEDBACK_DB one SQLite file, so the jti replay cache is the shared
database, not a worker's memory. Each token (aud = the exact URL called) is sent once, then replayed
many times, each call on a fresh TCP connection, several at a time so both workers take
connections. Every first use must be answered 200 and every replay 401, for the reason "replayed
jti".

Which worker answered is read from outside the service: after each answer, while gunicorn keeps
the connection alive, /proc tells which worker process holds its socket. That shows replays
answered by a worker other than the one that accepted the token.
"""

from __future__ import annotations

import collections
import concurrent.futures
import http.client
import json
import random
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from jwt_support import ISSUER, ec_signer

from bench.samples import builtin_request
from bench.server import Server, gunicorn

SERVICE = "tacrolimus-patient-view"
TOKENS = 12
REPLAYS_PER_TOKEN = 15
CLIENTS = 6


def _call(server: Server, url: str, token: str, body: bytes) -> tuple[int, str, int | None]:
    """POST on a new connection: status, body, and the worker that answered (None if unseen)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        conn.request(
            "POST",
            parts.path,
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = conn.getresponse()
        text = response.read().decode()
        # The connection is still open (HTTP/1.1 keep-alive): its socket sits in one worker.
        return response.status, text, server.worker_serving(client_port)
    finally:
        conn.close()


@pytest.mark.slow
def test_a_token_replayed_to_another_worker_is_rejected():
    signer = ec_signer()  # ES384, a fresh P-384 key
    env = {
        "TACRO_CDS_AUTH_REQUIRED": "true",
        "TACRO_CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: {"jwks": signer.jwks()}}),
        "TACRO_CDS_LOG_LEVEL": "INFO",
    }
    body = json.dumps(builtin_request("patient-view", with_token=False)).encode()
    with gunicorn(workers=2, threads=2, env=env) as server:
        assert len(server.workers) == 2
        url = f"{server.base_url}/cds-services/{SERVICE}"
        now = datetime.now(UTC)  # the server checks exp and iat against its real clock
        tokens = [signer.mint(url, now=now) for _ in range(TOKENS)]

        first = {i: _call(server, url, token, body) for i, token in enumerate(tokens)}
        replays = [i for i in range(TOKENS) for _ in range(REPLAYS_PER_TOKEN)]
        random.Random(5).shuffle(replays)
        with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            answers = list(pool.map(lambda i: (i, _call(server, url, tokens[i], body)), replays))
        log = server.log()

    assert [status for status, _, _ in first.values()] == [200] * TOKENS, [t[:300] for _, t, _ in first.values()]
    assert [len(json.loads(text)["cards"]) > 0 for _, text, _ in first.values()] == [True] * TOKENS
    replay_statuses = collections.Counter(status for _, (status, _, _) in answers)
    assert replay_statuses == {401: TOKENS * REPLAYS_PER_TOKEN}
    # 401 for replay, not for any other reason (audience, time, signature): the log says why.
    reasons = collections.Counter(
        json.loads(line).get("reason")
        for line in log.splitlines()
        if line.startswith("{") and '"caller rejected"' in line
    )
    assert reasons == {"replayed jti": TOKENS * REPLAYS_PER_TOKEN}

    # Replays reached the other worker: seen from /proc, not from anything the service reports.
    first_worker = {i: pid for i, (_, _, pid) in first.items()}
    crossed = [
        i for i, (_, _, pid) in answers if pid is not None and first_worker[i] is not None and pid != first_worker[i]
    ]
    seen = collections.Counter(pid for _, (_, _, pid) in answers)
    print(
        f"\nreplay: {TOKENS} tokens accepted once, {len(answers)} replays rejected; replays per worker "
        f"{dict(seen)}; {len(crossed)} replays answered by another worker than the first use, "
        f"covering {len(set(crossed))} of {TOKENS} tokens"
    )
    assert len([pid for pid in seen if pid is not None]) == 2
    assert len(crossed) >= len(answers) // 10

"""A slow EHR cannot take the service down through the SMART app: under ``tacro-cds serve`` (one worker,
the default eight threads), 40 concurrent ``/smart/launch`` requests against a listed ``iss`` that
trickles its discovery answer (one byte every half second) leave ``/healthz`` and a fully prefetched
hook call answering within twice their calm time (plus a small absolute allowance for the noise of a
shared 2-core machine). The outbound transport lets at most a few calls wait on one origin and cuts
each at its deadline; the other launches are refused at once."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from attack_servers import Trickler

from bench.samples import builtin_request
from bench.server import gunicorn

VIEW = "/cds-services/tacrolimus-patient-view"
LAUNCHES = 40
# What one median may lose to another test run on the machine, whatever the calm time; a call waiting
# on a held thread would wait for the launch's deadline (seconds).
NOISE_S = 0.25


def _timed(call: Callable[[], requests.Response]) -> float:
    started = time.monotonic()
    response = call()
    assert response.status_code == 200, response.text[:300]
    return time.monotonic() - started


@pytest.mark.slow
def test_forty_launches_against_a_trickling_iss_leave_health_and_hook_calls_answering():
    trickler = Trickler(step_s=0.5, limit_s=60.0)
    iss = f"http://127.0.0.1:{trickler.port}/fhir"
    env = {
        "TACRO_CDS_SMART_ISSUERS": json.dumps([iss]),
        "TACRO_CDS_ALLOW_HTTP_FHIR": "loopback",
        "TACRO_CDS_SMART_COOKIE_SECURE": "false",
    }
    body = json.dumps(builtin_request("patient-view", with_token=False)).encode()
    try:
        with gunicorn(workers=1, threads=8, env=env) as server:
            session = requests.Session()

            def health() -> requests.Response:
                return session.get(server.base_url + "/healthz", timeout=30)

            def prefetched() -> requests.Response:
                return session.post(
                    server.base_url + VIEW, data=body, timeout=30, headers={"Content-Type": "application/json"}
                )

            for _ in range(3):
                _timed(health), _timed(prefetched)
            calm = {
                "health": statistics.median(_timed(health) for _ in range(7)),
                "prefetched": statistics.median(_timed(prefetched) for _ in range(7)),
            }

            def launch(_: int) -> int:
                return requests.get(
                    server.base_url + "/smart/launch", params={"iss": iss, "launch": "l"}, timeout=60
                ).status_code

            with ThreadPoolExecutor(LAUNCHES) as pool:
                attack = [pool.submit(launch, i) for i in range(LAUNCHES)]
                reached = time.monotonic() + 30  # the launches are in the worker's hands: the EHR was reached
                while not trickler.connections and time.monotonic() < reached:
                    time.sleep(0.05)
                time.sleep(0.5)  # and the rest of them with it
                under = {
                    "health": statistics.median(_timed(health) for _ in range(7)),
                    "prefetched": statistics.median(_timed(prefetched) for _ in range(7)),
                }
                statuses = [f.result() for f in attack]
            held = trickler.connections
    finally:
        trickler.close()
    print(f"40 launches on a trickling iss: calm {calm}; under attack (median of 7) {under}; EHR connections {held}")
    assert set(statuses) == {502}  # refused at once (origin busy) or cut at the deadline
    assert held <= 4
    for kind in calm:
        assert under[kind] <= 2 * calm[kind] + NOISE_S, (kind, calm, under)

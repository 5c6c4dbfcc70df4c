"""The service under real gunicorn (``tacro-cds serve``, which runs ``gunicorn -c`` with the package's
gunicorn.conf.py), two workers:

- ``/metrics`` sums what both workers counted (prometheus-client's multiprocess mode), whichever
  worker answers the scrape;
- SIGTERM lets a call in flight finish with its answer, then the server exits.

Which worker answered a call is read from outside the service: while gunicorn keeps the connection
alive after the answer, /proc tells which worker process holds its socket.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jwt_support import ISSUER, ec_signer
from prometheus_client.parser import text_string_to_metric_families

from bench.fhir_standin import FhirStandIn, synthetic_answers
from bench.samples import ACCESS_TOKEN, PATIENT_ID, builtin_request, with_secrets
from bench.server import Server, gunicorn

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "tacrolimus-patient-view"
METRICS_TOKEN = "scrape-token-0b9e4d"
CALLS = 16


def _post(server: Server, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, int | None]:
    """POST on a new connection: status, JSON answer, and the worker that answered (None if unseen)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        conn.request(
            "POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
        )
        response = conn.getresponse()
        answer = json.loads(response.read() or b"null")
        return response.status, answer, server.worker_serving(client_port)
    finally:
        conn.close()


def _scrape(server: Server) -> tuple[str, int | None]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, text[:500]
        return text, server.worker_serving(client_port)
    finally:
        conn.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.slow
def test_metrics_are_summed_across_two_workers():
    signer = ec_signer()
    env = {
        "TACRO_CDS_AUTH_REQUIRED": "true",
        "TACRO_CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: {"jwks": signer.jwks()}}),
        "TACRO_CDS_METRICS_TOKEN": METRICS_TOKEN,
        "TACRO_CDS_ALLOW_HTTP_FHIR": "loopback",
    }
    path = f"/cds-services/{SERVICE}"
    body = with_secrets(builtin_request("patient-view"))
    fallback = builtin_request("patient-view")
    del fallback["prefetch"]
    fallback["fhirAuthorization"]["access_token"] = ACCESS_TOKEN
    tokens: list[str] = []

    def mint(url: str) -> dict[str, str]:
        token = signer.mint(url, now=datetime.now(UTC))  # the server checks against its clock
        tokens.append(token)
        return {"Authorization": f"Bearer {token}"}

    with (
        gunicorn(workers=2, threads=2, env=env) as server,
        FhirStandIn(synthetic_answers(PATIENT_ID), token=ACCESS_TOKEN) as fhir,
    ):
        assert len(server.workers) == 2
        url = server.base_url + path
        fallback["fhirServer"] = fhir.url
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda _: _post(server, path, body, mint(url)), range(CALLS)))
            # Spread until both workers have answered calls (bounded: the kernel picks the worker).
            extra = 0
            while len({w for _, _, w in answers if w is not None}) < 2 and extra < 48:
                answers += list(pool.map(lambda _: _post(server, path, body, mint(url)), range(8)))
                extra += 8
        statuses = [status for status, _, _ in answers]
        workers_seen = {w for _, _, w in answers if w is not None}
        fetched = [_post(server, path, fallback, mint(url)) for _ in range(2)]
        rejected = [
            _post(server, path, body, {}),  # no Authorization header
            _post(server, path, body, {"Authorization": "Bearer not.a.jwt"}),
            _post(server, path, body, {"Authorization": f"Bearer {tokens[0]}"}),
        ]  # replayed
        card = answers[0][1]["cards"][0]["uuid"]
        feedback = _post(
            server,
            f"{path}/feedback",
            {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": datetime.now(UTC).isoformat()}]},
            mint(f"{url}/feedback"),
        )
        scrapes = [_scrape(server) for _ in range(4)]
        while len({w for _, w in scrapes if w is not None}) < 2 and len(scrapes) < 40:
            scrapes.append(_scrape(server))

    assert statuses == [200] * len(answers)
    assert len(workers_seen) == 2, workers_seen
    assert [status for status, _, _ in fetched] == [200, 200], fetched
    assert [status for status, _, _ in rejected] == [401, 401, 401]
    assert feedback[:2] == (200, {"stored": 1})

    calls = len(answers) + len(fetched)
    for text, _ in scrapes:
        # Whichever worker answers the scrape, it reports both workers' counts.
        samples = _samples(text)
        assert _get(samples, "tacro_cds_hook_calls_total", service=SERVICE, hook="patient-view", status="200") == calls
        assert _get(samples, "tacro_cds_hook_calls_total", service=SERVICE, hook="patient-view", status="401") == 3
        assert (
            _get(samples, "tacro_cds_hook_call_duration_seconds_count", service=SERVICE, hook="patient-view")
            == calls + 3
        )
        assert (
            _get(
                samples, "tacro_cds_hook_call_duration_seconds_bucket", service=SERVICE, hook="patient-view", le="+Inf"
            )
            == calls + 3
        )
        for reason in ("no-authorization-header", "malformed-token", "replayed-jti"):
            assert _get(samples, "tacro_cds_jwt_rejections_total", reason=reason) == 1, reason
        assert _get(samples, "tacro_cds_feedback_stored_total", service=SERVICE, outcome="overridden") == 1
        cards = sum(v for (name, labels), v in samples.items() if name == "tacro_cds_cards_issued_total")
        assert cards == sum(len(answer["cards"]) for _, answer, _ in [*answers, *fetched])
        gets = sum(
            _get(samples, "tacro_cds_fhir_request_duration_seconds_count", result=result) for result in ("ok", "failed")
        )
        assert gets == fhir.served and gets > 0
        assert ("tacro_cds_fhir_request_duration_seconds_bucket", (("le", "0.5"), ("result", "ok"))) in samples
        for secret in (PATIENT_ID, ACCESS_TOKEN, METRICS_TOKEN, ISSUER, *tokens):
            assert secret not in text
    # Both workers answered scrapes (the sums above held for each).
    assert len({w for _, w in scrapes if w is not None}) == 2


def _slow_answers(started: threading.Event, delay: float):
    answer = synthetic_answers(PATIENT_ID)

    def slow(relative: str):
        started.set()
        time.sleep(delay)
        return answer(relative)

    return slow


@pytest.mark.slow
def test_sigterm_lets_a_call_in_flight_finish_then_the_server_exits():
    started = threading.Event()
    env = {
        "TACRO_CDS_ALLOW_HTTP_FHIR": "loopback",
        "TACRO_CDS_FHIR_TIMEOUT_S": "20",
        "TACRO_CDS_FHIR_TOTAL_BUDGET_S": "30",
        "GUNICORN_GRACEFUL_TIMEOUT": "40",
    }
    body = builtin_request("patient-view")
    del body["prefetch"]
    result: dict[str, Any] = {}
    with FhirStandIn(_slow_answers(started, 3.0), token=ACCESS_TOKEN) as fhir:
        body["fhirServer"] = fhir.url
        with gunicorn(workers=2, threads=2, env=env) as server:

            def send() -> None:
                try:
                    result["answer"] = _post(server, f"/cds-services/{SERVICE}", body, {})
                except OSError as exc:  # the connection was dropped: the call was not let finish
                    result["error"] = exc

            call = threading.Thread(target=send)
            call.start()
            assert started.wait(60), "the call never reached the FHIR stand-in"
            sent = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            call.join(120)
            try:
                code = server.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                pytest.fail(f"gunicorn still running 120 s after SIGTERM:\n{server.log()[-3000:]}")
            stopped_after = time.monotonic() - sent
            log = server.log()
    assert "error" not in result, (result, log[-3000:])
    status, answer, _ = result["answer"]
    assert status == 200, (answer, log[-3000:])
    assert isinstance(answer["cards"], list)
    assert code == 0, log[-3000:]
    assert stopped_after < 40, stopped_after  # it did not wait out graceful_timeout
    assert "Forcing close" not in log


def _print_config(
    tmp_path, env: dict[str, str], config: Path = ROOT / "gunicorn.conf.py"
) -> subprocess.CompletedProcess[str]:
    """``gunicorn -c <config> --print-config``: the settings gunicorn ends up with (no worker starts)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GUNICORN_", "PROMETHEUS_"))
        and k not in ("PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS")
    }
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(config), "--print-config"],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _settings(output: str) -> dict[str, str]:
    return {
        name.strip(): value.strip() for name, _, value in (line.partition("=") for line in output.splitlines()) if value
    }


def test_the_settings_file_reads_its_variables_and_gunicorn_cmd_args_wins(tmp_path):
    defaults = _settings(_print_config(tmp_path, {}).stdout)
    assert defaults["bind"] == "['0.0.0.0:8080']"
    assert (defaults["workers"], defaults["threads"], defaults["timeout"]) == ("2", "8", "60")
    assert (defaults["graceful_timeout"], defaults["keepalive"]) == ("30", "5")
    assert defaults["forwarded_allow_ips"] == "['127.0.0.1', '::1']"
    assert defaults["worker_class"] == "service.ops.worker.Worker"
    assert defaults["wsgi_app"] == "service:create_app()"

    env = {
        "PORT": "9123",
        "WEB_CONCURRENCY": "3",
        "GUNICORN_THREADS": "4",
        "GUNICORN_TIMEOUT": "90",
        "GUNICORN_GRACEFUL_TIMEOUT": "17",
        "GUNICORN_KEEPALIVE": "7",
        "FORWARDED_ALLOW_IPS": "10.0.0.2",
        "GUNICORN_CMD_ARGS": "--keep-alive 11 --graceful-timeout 19",
    }
    # The package's file directly (what `tacro-cds serve` runs) and the checkout's, which runs it.
    for config in (ROOT / "gunicorn.conf.py", ROOT / "service" / "ops" / "gunicorn.conf.py"):
        chosen = _settings(_print_config(tmp_path, env, config).stdout)
        assert chosen["bind"] == "['0.0.0.0:9123']"
        assert (chosen["workers"], chosen["threads"], chosen["timeout"]) == ("3", "4", "90")
        assert chosen["forwarded_allow_ips"] == "['10.0.0.2']"
        assert (chosen["keepalive"], chosen["graceful_timeout"]) == ("11", "19")  # GUNICORN_CMD_ARGS
    assert not list(tmp_path.iterdir())  # nothing written where it ran
    assert _settings(_print_config(tmp_path, {"GUNICORN_BIND": "127.0.0.1:9"}).stdout)["bind"] == "['127.0.0.1:9']"


def test_a_bad_settings_variable_stops_gunicorn_naming_it(tmp_path):
    done = _print_config(tmp_path, {"GUNICORN_GRACEFUL_TIMEOUT": "soon"})
    assert done.returncode != 0
    assert "GUNICORN_GRACEFUL_TIMEOUT must be a whole number" in done.stdout + done.stderr


def test_the_image_runs_gunicorn_with_the_settings_file():
    """The image's CMD is gunicorn itself (exec form, so SIGTERM reaches it) with the settings file it
    copies into its working folder."""
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    cmd = [line for line in lines if line.startswith("CMD ")]
    assert len(cmd) == 1 and json.loads(cmd[0][len("CMD ") :]) == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert any(line.startswith("COPY ") and "gunicorn.conf.py" in line.split() for line in lines)
    assert any(line.startswith("WORKDIR /app") for line in lines)


def test_a_missing_site_file_stops_gunicorn_in_one_line(tmp_path):
    """gunicorn run directly (the image's command) reads the site file once in the master: a wrong
    SITE_CONFIG is one line naming it and no worker starts, not a traceback from every worker."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "PROMETHEUS_", "TACRO_CDS_"))}
    env = {
        **clean,
        "PYTHONPATH": str(ROOT),
        "TACRO_CDS_DATA_DIR": str(tmp_path / "data"),
        "TACRO_CDS_SITE_CONFIG": str(tmp_path / "no-such-site.yaml"),
        "GUNICORN_BIND": "127.0.0.1:0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "service" / "ops" / "gunicorn.conf.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "tacro-cds: knowledge:" in line]
    assert len(lines) == 1 and "no-such-site.yaml" in lines[0] and "cannot be read" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "Booting worker" not in done.stderr, done.stderr

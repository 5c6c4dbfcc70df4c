"""docker-compose.yml as Compose reads it: interpolation, the required database password, only the
proxy published (on loopback by default), and the production shape: replicas of the service behind
the proxy, PostgreSQL, the integrators' FHIR server with a health check and the one-shot job that
loads it. Every assertion reads the *resolved* configuration (Debian's docker-compose `config`,
which CI installs; skipped without it outside CI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from service.config import load_settings
from service.errors import FhirServerRefusedError
from service.fhir.policy import check_fhir_server

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ISSUERS = {"https://ehr.example.org": {"jwks_url": "https://ehr.example.org/.well-known/jwks.json"}}


def _compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("docker-compose is missing (.ci/run installs Debian's docker-compose)")
        pytest.skip("Debian's docker-compose is not installed")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TACRO_", "COMPOSE_"))}
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _config(**env: str) -> dict[str, Any]:
    result = _compose_config(**env)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def test_trusted_issuers_reach_the_service_unchanged_and_parse() -> None:
    config = _config(TACRO_DB_PASSWORD="s3cret0hex", TACRO_CDS_TRUSTED_ISSUERS=json.dumps(ISSUERS))
    environment = config["services"]["tacro-cds"]["environment"]
    assert json.loads(environment["TACRO_CDS_TRUSTED_ISSUERS"]) == ISSUERS
    # What the container gets is what the service accepts: every variable a setting, every value parsed.
    settings = load_settings(environ={k: str(v) for k, v in environment.items()})
    assert settings.trusted_issuers == ISSUERS
    assert settings.feedback_db == "postgresql+psycopg://tacro:s3cret0hex@db:5432/tacro"
    assert settings.cors_origins == []


def test_database_password_is_required_and_shared_by_database_and_service() -> None:
    refused = _compose_config()
    assert refused.returncode != 0 and "TACRO_DB_PASSWORD" in refused.stderr
    config = _config(TACRO_DB_PASSWORD="abc123def")
    assert config["services"]["db"]["environment"]["POSTGRES_PASSWORD"] == "abc123def"


def test_only_the_proxy_is_published_on_loopback_by_default() -> None:
    config = _config(TACRO_DB_PASSWORD="x1")
    published = {name: service.get("ports") for name, service in config["services"].items() if service.get("ports")}
    assert list(published) == ["proxy"]
    assert [str(p) for p in published["proxy"]] == ["127.0.0.1:8080:8080/tcp"]
    moved = _config(TACRO_DB_PASSWORD="x1", TACRO_PUBLISH_ADDRESS="0.0.0.0", TACRO_PUBLISH_PORT="8443")
    assert [str(p) for p in moved["services"]["proxy"]["ports"]] == ["0.0.0.0:8443:8080/tcp"]


def test_compose_file_holds_no_password_and_no_brace_defaults() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    services = yaml.safe_load(text)["services"]
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${TACRO_DB_PASSWORD:?")
    assert ":tacro@" not in text
    # Compose ends a ${VAR:-default} at the first "}": a JSON object default leaves a stray brace.
    assert ":-{" not in text


FHIR_BASE = "http://fhir:8080/fhir"


def test_the_service_runs_as_replicas_with_the_images_own_command() -> None:
    service = _config(TACRO_DB_PASSWORD="x1")["services"]["tacro-cds"]
    assert service["deploy"]["replicas"] >= 2
    assert _config(TACRO_DB_PASSWORD="x1", TACRO_REPLICAS="4")["services"]["tacro-cds"]["deploy"]["replicas"] == 4
    # The image decides how the service is served (Dockerfile CMD) and probed (HEALTHCHECK).
    assert "command" not in service and "entrypoint" not in service and "healthcheck" not in service
    assert service["depends_on"]["db"]["condition"] == "service_healthy"
    # Every replica shares one database: the replay cache and feedback are the same for all.
    assert service["environment"]["TACRO_CDS_FEEDBACK_DB"].startswith("postgresql+psycopg://")
    # ... and one data folder (SMART sessions, their signing key): a named volume, not one per replica.
    data = [v for v in service["volumes"] if v.split(":")[1] == "/var/lib/tacro-cds"]
    assert len(data) == 1 and data[0].split(":")[0] in _config(TACRO_DB_PASSWORD="x1")["volumes"]


def test_the_proxy_serves_deploy_nginx_conf_and_names_the_replicated_service() -> None:
    config = _config(TACRO_DB_PASSWORD="x1")
    proxy = config["services"]["proxy"]
    mounts = {volume.split(":")[1]: Path(volume.split(":")[0]) for volume in proxy["volumes"]}
    command = proxy["command"]
    main = Path(command[command.index("-c") + 1])
    assert mounts[str(main.parent)] == ROOT / "deploy" and (ROOT / "deploy" / main.name).is_file()
    assert proxy["depends_on"]["tacro-cds"]["condition"] == "service_healthy"
    # nginx's upstream is the Compose service name, re-resolved, on the port the service exposes.
    upstream = (ROOT / "deploy" / "upstream.conf").read_text(encoding="utf-8")
    port = config["services"]["tacro-cds"]["expose"][0]
    assert f"server tacro-cds:{port} resolve;" in upstream and "resolver 127.0.0.11" in upstream
    # "resolve" in an upstream server needs open-source nginx 1.27.3 or later.
    image, tag = proxy["image"].split(":")
    assert image == "nginx" and Version(tag) >= Version("1.27.3")


def test_the_fhir_server_for_integrators_is_pinned_health_checked_and_unpublished() -> None:
    fhir = _config(TACRO_DB_PASSWORD="x1", **INTEGRATORS)["services"]["fhir"]
    image, tag = fhir["image"].split(":")
    assert image == "hapiproject/hapi" and tag not in ("", "latest") and tag[0] == "v"
    assert "ports" not in fhir
    check = fhir["healthcheck"]["test"]
    assert check[0] == "CMD" and check[-1] == "http://127.0.0.1:8080/fhir"
    # The probe's source file is mounted from the repository where the health check runs it.
    mounts = {volume.split(":")[1]: Path(volume.split(":")[0]) for volume in fhir["volumes"]}
    probe = Path(next(arg for arg in check if arg.endswith(".java")))
    assert (mounts[str(probe.parent)] / probe.name).is_file()


def test_the_fixtures_job_runs_once_when_the_fhir_server_is_healthy() -> None:
    config = _config(TACRO_DB_PASSWORD="x1", **INTEGRATORS)
    job, service = config["services"]["fixtures"], config["services"]["tacro-cds"]
    assert job["depends_on"]["fhir"]["condition"] == "service_healthy"
    assert job["restart"] == "no"
    assert job["image"] == service["image"] and job["build"] == service["build"]
    command = job["command"]
    # The image carries no development tools: the job runs the checkout's, mounted read-only.
    assert command[:5] == ["python", "-m", "tacro_dev", "fixtures", "load"]
    assert job["working_dir"] == "/src" and any(v.endswith(":/src:ro") for v in job["volumes"])
    assert command[command.index("--fhir-server") + 1] == FHIR_BASE
    # The job needs nothing secret: no database password, no issuer keys.
    assert set(job.get("environment", {})) <= {"PYTHONDONTWRITEBYTECODE"}


def test_replicas_stop_after_gunicorn_s_graceful_timeout() -> None:
    service = _config(TACRO_DB_PASSWORD="x1")["services"]["tacro-cds"]
    grace = service["stop_grace_period"]
    seconds = int(grace.rstrip("s")) if isinstance(grace, str) else grace / 1e9
    assert seconds > 30  # gunicorn's graceful_timeout (gunicorn.conf.py)


INTEGRATORS = {
    "COMPOSE_PROFILES": "integrators",
    "TACRO_CDS_ALLOW_HTTP_FHIR": "true",
    "TACRO_CDS_FHIR_SERVER_ALLOWLIST": json.dumps([FHIR_BASE]),
}


def test_the_production_shape_starts_no_unauthenticated_fhir_server_and_refuses_plain_http() -> None:
    config = _config(TACRO_DB_PASSWORD="x1")
    # Started only with `--profile integrators` (Compose's `config` lists every profile's services).
    for name in ("fhir", "fixtures"):
        assert config["services"][name]["profiles"] == ["integrators"], name
    assert all("profiles" not in config["services"][name] for name in ("proxy", "tacro-cds", "db"))
    environment = config["services"]["tacro-cds"]["environment"]
    settings = load_settings(environ={k: str(v) for k, v in environment.items()})
    assert settings.allow_http_fhir == "never"
    with pytest.raises(FhirServerRefusedError):
        check_fhir_server(FHIR_BASE, allow_http=settings.allow_http_fhir, allowlist=settings.fhir_server_allowlist)


def test_the_service_may_fetch_from_the_integrators_fhir_server_and_nothing_else() -> None:
    environment = _config(TACRO_DB_PASSWORD="x1", **INTEGRATORS)["services"]["tacro-cds"]["environment"]
    settings = load_settings(environ={k: str(v) for k, v in environment.items()})
    assert settings.fhir_server_allowlist == [FHIR_BASE]
    policy = {"allow_http": settings.allow_http_fhir, "allowlist": settings.fhir_server_allowlist}
    assert check_fhir_server(FHIR_BASE, **policy)
    for other in ("http://db:5432/fhir", "http://169.254.169.254/latest", "https://elsewhere.example.org/fhir"):
        with pytest.raises(FhirServerRefusedError):
            check_fhir_server(other, **policy)
    # A production allowlist replaces the test environment's.
    mine = ["https://ehr.example.org/fhir"]
    environment = _config(
        TACRO_DB_PASSWORD="x1", TACRO_CDS_FHIR_SERVER_ALLOWLIST=json.dumps(mine), TACRO_CDS_ALLOW_HTTP_FHIR="false"
    )["services"]["tacro-cds"]["environment"]
    settings = load_settings(environ={k: str(v) for k, v in environment.items()})
    assert settings.fhir_server_allowlist == mine and settings.allow_http_fhir == "never"


def test_no_secret_is_written_in_the_resolved_configuration() -> None:
    password = "Pw" + "7" * 30
    config = _config(TACRO_DB_PASSWORD=password)
    holders = sorted(
        f"{name}.{key}"
        for name, service in config["services"].items()
        for key, value in (service.get("environment") or {}).items()
        if password in str(value)
    )
    assert holders == ["db.POSTGRES_PASSWORD", "tacro-cds.TACRO_CDS_FEEDBACK_DB"]
    # Whatever names a secret takes its value from the environment, never from the file.
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    for name, service in raw.items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "TOKEN", "ISSUERS", "_KEY")):
                assert str(value).startswith("${"), f"{name}.{key} is written in the file"

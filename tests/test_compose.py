"""docker-compose.yml as Compose reads it: interpolation, the required database password, and only
the proxy published, on loopback by default. Validated by Debian's docker-compose (`config`), which
CI installs; outside CI the file is still checked as YAML."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import load_settings

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
    return subprocess.run([binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
                          env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False)


def _config(**env: str) -> dict[str, Any]:
    result = _compose_config(**env)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def test_trusted_issuers_reach_the_service_unchanged_and_parse():
    config = _config(TACRO_DB_PASSWORD="s3cret0hex", TACRO_CDS_TRUSTED_ISSUERS=json.dumps(ISSUERS))
    environment = config["services"]["tacro-cds"]["environment"]
    assert json.loads(environment["TACRO_CDS_TRUSTED_ISSUERS"]) == ISSUERS
    # What the container gets is what the service accepts: every variable a setting, every value parsed.
    settings = load_settings(environ={k: str(v) for k, v in environment.items()})
    assert settings.trusted_issuers == ISSUERS
    assert settings.feedback_db == "postgresql+psycopg://tacro:s3cret0hex@db:5432/tacro"
    assert settings.cors_origins == [] and settings.fhir_server_allowlist == []


def test_database_password_is_required_and_shared_by_database_and_service():
    refused = _compose_config()
    assert refused.returncode != 0 and "TACRO_DB_PASSWORD" in refused.stderr
    config = _config(TACRO_DB_PASSWORD="abc123def")
    assert config["services"]["db"]["environment"]["POSTGRES_PASSWORD"] == "abc123def"


def test_only_the_proxy_is_published_on_loopback_by_default():
    config = _config(TACRO_DB_PASSWORD="x1")
    published = {name: service.get("ports") for name, service in config["services"].items() if service.get("ports")}
    assert list(published) == ["proxy"]
    assert [str(p) for p in published["proxy"]] == ["127.0.0.1:8080:8080/tcp"]
    moved = _config(TACRO_DB_PASSWORD="x1", TACRO_PUBLISH_ADDRESS="0.0.0.0", TACRO_PUBLISH_PORT="8443")
    assert [str(p) for p in moved["services"]["proxy"]["ports"]] == ["0.0.0.0:8443:8080/tcp"]


def test_compose_file_holds_no_password_and_no_brace_defaults():
    text = COMPOSE.read_text(encoding="utf-8")
    services = yaml.safe_load(text)["services"]
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${TACRO_DB_PASSWORD:?")
    assert ":tacro@" not in text
    # Compose ends a ${VAR:-default} at the first "}": a JSON object default leaves a stray brace.
    assert ":-{" not in text

"""`tacro-cds serve` runs gunicorn with the package's gunicorn.conf.py; `--dev` allows plain-http FHIR
servers on this machine only and binds loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.cli import main as cli
from service.config import load_settings
from service.fhir.policy import http_policy

DEV_VARIABLES = (
    "TACRO_CDS_AUTH_REQUIRED",
    "TACRO_CDS_CORS_ORIGINS",
    "TACRO_CDS_ALLOW_HTTP_FHIR",
    "TACRO_CDS_SMART_COOKIE_SECURE",
    "TACRO_CDS_METRICS_OPEN",
)


@pytest.fixture
def started(monkeypatch):
    """What `serve` would exec (nothing is started); --dev's variables restored afterwards."""
    for name in DEV_VARIABLES:
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    commands: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: commands.append(list(argv)))
    return commands


def test_dev_mode_allows_http_fhir_on_loopback_only(started):
    assert cli.main(["serve", "--dev", "--port", "0"]) == 0
    assert os.environ["TACRO_CDS_ALLOW_HTTP_FHIR"] == "loopback"
    assert http_policy(load_settings().allow_http_fhir) == "loopback"
    assert load_settings().metrics_open is True
    command = started[0]
    assert command[command.index("--bind") + 1] == "127.0.0.1:0"


def test_dev_mode_binds_loopback_whatever_host_is_given(started):
    cli.main(["serve", "--dev", "--host", "0.0.0.0", "--port", "9"])
    assert started[0][started[0].index("--bind") + 1] == "127.0.0.1:9"


def test_serve_runs_gunicorn_with_the_package_settings_file_and_only_the_options_given(started):
    assert cli.main(["serve"]) == 0
    command = started[0]
    assert command[1:5] == ["-m", "gunicorn", "-c", cli.config_path()]
    assert Path(cli.config_path()).is_file()
    # Nothing else: bind, workers and threads come from the file, its variables and GUNICORN_CMD_ARGS.
    assert command[5:] == []
    cli.main(["serve", "--workers", "3", "--threads", "4"])
    assert started[1][5:] == ["--workers", "3", "--threads", "4"]


def test_serve_stops_on_a_bad_setting_before_starting_gunicorn(started, monkeypatch, capsys):
    monkeypatch.setenv("TACRO_CDS_FHIR_MAX_PAGES", "five")
    assert cli.main(["serve"]) == 2
    assert "TACRO_CDS_FHIR_MAX_PAGES" in capsys.readouterr().err
    assert started == []


def test_config_path_is_printed(capsys, started):
    assert cli.main(["serve", "--config-path"]) == 0
    assert capsys.readouterr().out.strip() == cli.config_path()
    assert started == []


def test_dev_mode_lets_only_the_sandbox_drive_it_from_a_browser(started, make_app):
    """Authentication is off in development: an open CORS policy would let any website the developer
    visits call the service on 127.0.0.1 and read the answers (loopback fetches, /metrics)."""
    cli.main(["serve", "--dev", "--port", "0"])
    origins = load_settings().cors_origins
    assert origins == ["https://sandbox.cds-hooks.org"] and "*" not in origins
    client = make_app(CORS_ORIGINS=origins).test_client()
    evil = client.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    sandbox = client.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert sandbox.headers["Access-Control-Allow-Origin"] == "https://sandbox.cds-hooks.org"

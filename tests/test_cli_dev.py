"""`tacro-cds serve --dev` allows plain-http FHIR servers on this machine only."""

from __future__ import annotations

import os

from gunicorn.app.base import BaseApplication

from service import cli
from service.config import load_settings
from service.fhir_policy import http_policy


def test_dev_mode_allows_http_fhir_on_loopback_only(monkeypatch):
    for name in ("TACRO_CDS_AUTH_REQUIRED", "TACRO_CDS_CORS_ORIGINS", "TACRO_CDS_ALLOW_HTTP_FHIR"):
        monkeypatch.setenv(name, "false" if name != "TACRO_CDS_CORS_ORIGINS" else "[]")
    monkeypatch.setattr(BaseApplication, "run", lambda self: None)  # do not start gunicorn
    assert cli.main(["serve", "--dev", "--port", "0"]) == 0
    assert os.environ["TACRO_CDS_ALLOW_HTTP_FHIR"] == "loopback"
    assert http_policy(load_settings().allow_http_fhir) == "loopback"

"""Settings: where the service keeps its files, and how environment variables are read."""

from __future__ import annotations

import json
import logging
import re
import stat
from pathlib import Path

import pytest

from service import create_app
from service.config import (
    SETTING_NAMES,
    TOOL_PREFIXES,
    TOOL_VARIABLES,
    ConfigError,
    Settings,
    data_directory,
    default_data_dir,
    default_settings,
    load_settings,
    settings_table,
)
from tacro_dev.demo import scenario_clock

ROOT = Path(__file__).resolve().parent.parent


def test_default_data_folder_follows_xdg_data_home_else_the_home_folder(tmp_path):
    assert (
        default_data_dir({"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": "/nowhere"}) == tmp_path / "xdg" / "tacro-cds"
    )
    assert default_data_dir({"HOME": str(tmp_path)}) == tmp_path / ".local" / "share" / "tacro-cds"
    # A relative XDG_DATA_HOME is invalid by the XDG convention and ignored.
    assert (
        default_data_dir({"XDG_DATA_HOME": "relative", "HOME": str(tmp_path)})
        == tmp_path / ".local" / "share" / "tacro-cds"
    )


def test_app_without_settings_keeps_its_files_in_the_default_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app = create_app({"AUTH_REQUIRED": False})
    folder = tmp_path / "tacro-cds"
    assert Path(app.instance_path) == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (folder / "tacro-cds.sqlite").is_file()
    assert (folder / "secret_key").is_file()
    assert app.test_client().get("/cds-services").status_code == 200


def test_data_dir_setting_chooses_the_folder(tmp_path):
    app = create_app({"AUTH_REQUIRED": False, "DATA_DIR": str(tmp_path / "state")})
    assert Path(app.instance_path) == tmp_path / "state"
    assert (tmp_path / "state" / "tacro-cds.sqlite").is_file()


def test_unusable_data_folder_refuses_start_naming_the_setting(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="TACRO_CDS_DATA_DIR"):
        create_app({"AUTH_REQUIRED": False, "DATA_DIR": str(blocker / "state")})
    with pytest.raises(ConfigError, match="TACRO_CDS_DATA_DIR") as caught:
        data_directory(default_settings(), {"XDG_DATA_HOME": str(blocker)})
    assert "default" in str(caught.value)


def test_serve_refuses_an_unusable_data_folder_before_starting_workers(tmp_path, monkeypatch, capsys):
    from service.cli.main import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TACRO_CDS_DATA_DIR", str(blocker / "state"))
    monkeypatch.setenv("TACRO_CDS_FHIR_FALLBACK_MAX_CONCURRENT", "4")  # serve sets it when unset
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "TACRO_CDS_DATA_DIR" in err
    assert "Traceback" not in err


def test_misspelt_variable_stops_start_up_naming_the_closest_setting():
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"TACRO_CDS_AUTH_REQURED": "false"})
    assert "TACRO_CDS_AUTH_REQURED is not a setting; did you mean TACRO_CDS_AUTH_REQUIRED?" in str(caught.value)
    with pytest.raises(ConfigError, match="TACRO_CDS_FHIR_SERVER_ALLOWLST .*TACRO_CDS_FHIR_SERVER_ALLOWLIST"):
        load_settings(environ={"TACRO_CDS_FHIR_SERVER_ALLOWLST": '["https://ehr.example.org/fhir"]'})
    with pytest.raises(ConfigError, match=r"TACRO_CDS_ZZZ is not a setting \("):
        load_settings(environ={"TACRO_CDS_ZZZ": "1"})


def test_misspelt_variable_stops_create_app_and_serve(tmp_path, monkeypatch, capsys):
    from service.cli.main import main

    monkeypatch.setenv("TACRO_CDS_AUTH_REQURED", "false")
    with pytest.raises(ConfigError, match="TACRO_CDS_AUTH_REQUIRED"):
        create_app({"DATA_DIR": str(tmp_path)})
    monkeypatch.setenv("TACRO_CDS_FHIR_FALLBACK_MAX_CONCURRENT", "4")
    assert main(["serve", "--port", "1"]) == 2
    assert "did you mean TACRO_CDS_AUTH_REQUIRED?" in capsys.readouterr().err


def test_other_variables_are_not_settings_and_pass():
    config = load_settings(
        environ={
            "PATH": "/bin",
            "TACRO_CDS_TEST_FHIR_URL": "http://x",
            "TACRO_CDS_FIXTURES_DIR": "/f",
            "TACRO_CDS_FHIR_TOKEN": "t",
            "TACRO_CDS_AUTH_REQUIRED": "no",
        }
    )
    assert config.auth_required is False
    assert "fixtures_dir" not in config.model_dump() and "test_fhir_url" not in config.model_dump()


def test_every_variable_the_repository_sets_is_a_setting_or_a_tool_variable():
    """Scripts, compose, image and docs use only names the service accepts."""
    texts = [
        p
        for pattern in ("service/**/*.py", "tests/**/*.py", "bench/**/*.py", ".ci/*", "docs/**/*.md")
        for p in ROOT.glob(pattern)
    ]
    texts += [ROOT / name for name in ("README.md", "Dockerfile", "docker-compose.yml")]
    names = {m for p in texts if p.is_file() for m in re.findall(r"TACRO_CDS_([A-Z][A-Z0-9_]*[A-Z0-9])", p.read_text())}
    names -= {"AUTH_REQURED", "FHIR_SERVER_ALLOWLST", "ZZZ", "LOG_LEVL"}  # the misspellings tested here
    assert names
    stray = sorted(
        n for n in names if n not in SETTING_NAMES and n not in TOOL_VARIABLES and not f"{n}_".startswith(TOOL_PREFIXES)
    )
    assert not stray


@pytest.mark.parametrize(
    ("name", "raw", "said"),
    [
        ("FHIR_MAX_PAGES", "five", "TACRO_CDS_FHIR_MAX_PAGES: must be a whole number, not 'five'"),
        ("FHIR_TIMEOUT_S", "soon", "TACRO_CDS_FHIR_TIMEOUT_S: must be a number, not 'soon'"),
        ("AUTH_REQUIRED", "maybe", "TACRO_CDS_AUTH_REQUIRED: must be true or false, not 'maybe'"),
        ("TRUSTED_ISSUERS", "{not json", "TACRO_CDS_TRUSTED_ISSUERS must be JSON"),
        ("TRUSTED_ISSUERS", "[]", "TACRO_CDS_TRUSTED_ISSUERS: must be a JSON object, not list"),
        ("CORS_ORIGINS", '{"a": 1}', "TACRO_CDS_CORS_ORIGINS: must be a JSON array, not dict"),
        (
            "FHIR_SERVER_ALLOWLIST",
            '"https://x"',
            "TACRO_CDS_FHIR_SERVER_ALLOWLIST: must be a JSON object or a JSON array, not str",
        ),
        ("ALLOW_HTTP_FHIR", "sometimes", "TACRO_CDS_ALLOW_HTTP_FHIR"),
    ],
)
def test_every_parse_error_names_the_variable(name, raw, said):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"TACRO_CDS_{name}": raw})
    assert said in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "policy"),
    [
        ("true", "any"),
        ("on", "any"),
        ("1", "any"),
        ("false", "never"),
        ("no", "never"),
        ("0", "never"),
        ("loopback", "loopback"),
        ("LOOPBACK", "loopback"),
    ],
)
def test_allow_http_fhir_reads_one_vocabulary_from_environment_and_mapping(raw, policy):
    assert load_settings(environ={"TACRO_CDS_ALLOW_HTTP_FHIR": raw}).allow_http_fhir == policy
    assert load_settings({"ALLOW_HTTP_FHIR": raw}, environ={}).allow_http_fhir == policy
    with pytest.raises(ConfigError, match="ALLOW_HTTP_FHIR"):
        load_settings({"ALLOW_HTTP_FHIR": "sometimes"}, environ={})


def _start_up_warnings(caplog, tmp_path, **overrides) -> str:
    with caplog.at_level(logging.WARNING):
        create_app({"DATA_DIR": str(tmp_path), **overrides})
    return caplog.text


def test_authentication_without_trusted_issuers_warns_at_start_up(tmp_path, caplog):
    text = _start_up_warnings(caplog, tmp_path, AUTH_REQUIRED=True, TRUSTED_ISSUERS={})
    assert "TRUSTED_ISSUERS is empty while AUTH_REQUIRED is on" in text


def test_no_trusted_issuers_warning_when_configured_or_auth_off(tmp_path, caplog):
    issuers = {"https://ehr.example.org": {"jwks_url": "https://ehr.example.org/jwks"}}
    assert "TRUSTED_ISSUERS is empty" not in _start_up_warnings(caplog, tmp_path, TRUSTED_ISSUERS=issuers)
    assert "TRUSTED_ISSUERS is empty" not in _start_up_warnings(caplog, tmp_path, AUTH_REQUIRED=False)


def test_empty_variables_mean_not_set():
    """docker compose passes an unset ${VAR:-} as "": the setting keeps its default."""
    config = load_settings(
        environ={
            "TACRO_CDS_TRUSTED_ISSUERS": "",
            "TACRO_CDS_AUTH_REQUIRED": " ",
            "TACRO_CDS_FHIR_MAX_PAGES": "",
            "TACRO_CDS_ALLOW_HTTP_FHIR": "",
            "TACRO_CDS_DATA_DIR": "",
        }
    )
    assert config.trusted_issuers == {} and config.auth_required is True and config.data_dir is None
    assert config.fhir_max_pages == 5 and config.allow_http_fhir == "never"


@pytest.mark.parametrize(
    ("name", "raw", "said"),
    [
        ("FHIR_TIMEOUT_S", "0", "TACRO_CDS_FHIR_TIMEOUT_S: must be greater than 0, not '0'"),
        ("FHIR_TOTAL_BUDGET_S", "-1", "TACRO_CDS_FHIR_TOTAL_BUDGET_S: must be greater than 0, not '-1'"),
        ("JWKS_TIMEOUT_S", "0", "TACRO_CDS_JWKS_TIMEOUT_S: must be greater than 0"),
        ("SMART_HTTP_TIMEOUT_S", "0", "TACRO_CDS_SMART_HTTP_TIMEOUT_S: must be greater than 0"),
        ("FHIR_MAX_PAGES", "0", "TACRO_CDS_FHIR_MAX_PAGES: must be at least 1, not '0'"),
        ("FHIR_FALLBACK_MAX_CONCURRENT", "0", "TACRO_CDS_FHIR_FALLBACK_MAX_CONCURRENT: must be at least 1"),
        ("MAX_REQUEST_BYTES", "-5", "TACRO_CDS_MAX_REQUEST_BYTES: must be at least 1"),
        ("JWT_LEEWAY_S", "-1", "TACRO_CDS_JWT_LEEWAY_S: must be at least 0"),
        ("LOG_LEVEL", "loud", "TACRO_CDS_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'loud'"),
        ("CORS_ORIGINS", "[1]", "TACRO_CDS_CORS_ORIGINS[0]: must be text, not int"),
        (
            "FHIR_SERVER_ALLOWLIST",
            '{"*": "https://x"}',
            "TACRO_CDS_FHIR_SERVER_ALLOWLIST['*']: must be a JSON array, not str",
        ),
        ("SMART_CLIENT_ID", "", None),  # empty: not set, the default stands
    ],
)
def test_values_out_of_range_stop_start_up_naming_the_variable(name, raw, said):
    if said is None:
        assert load_settings(environ={f"TACRO_CDS_{name}": raw}) == default_settings()
        return
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"TACRO_CDS_{name}": raw})
    assert said in str(caught.value)


def test_a_mapping_is_checked_as_the_environment_is():
    with pytest.raises(ConfigError, match="TACRO_CDS_FHIR_MAX_PAGES: must be at least 1, not 0"):
        load_settings({"FHIR_MAX_PAGES": 0}, environ={})
    with pytest.raises(ConfigError, match="FHIR_TIMOUT_S is not a setting; did you mean FHIR_TIMEOUT_S?"):
        load_settings({"FHIR_TIMOUT_S": 2}, environ={})
    # The collaborators are create_app's keyword arguments now, and the message says so.
    with pytest.raises(ConfigError, match=r"CLOCK is not a setting; pass it as create_app\(\.\.\., clock=\.\.\.\)"):
        load_settings({"CLOCK": lambda: None}, environ={})


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"FHIR_TIMOUT_S": 2},
            environ={
                "TACRO_CDS_FHIR_MAX_PAGES": "five",
                "TACRO_CDS_AUTH_REQUIRED": "maybe",
                "TACRO_CDS_LOG_LEVL": "INFO",
            },
        )
    said = str(caught.value)
    assert "TACRO_CDS_FHIR_MAX_PAGES: must be a whole number" in said
    assert "TACRO_CDS_AUTH_REQUIRED: must be true or false" in said
    assert "did you mean TACRO_CDS_LOG_LEVEL?" in said and "did you mean FHIR_TIMEOUT_S?" in said


def test_mapping_overrides_environment_which_overrides_defaults():
    environ = {"TACRO_CDS_FHIR_MAX_PAGES": "7", "TACRO_CDS_FHIR_MAX_ENTRIES": "70"}
    settings = load_settings({"FHIR_MAX_PAGES": 3}, environ=environ)
    assert (settings.fhir_max_pages, settings.fhir_max_entries, settings.fhir_max_parallel) == (3, 70, 16)


def test_settings_are_frozen_and_keep_secrets_out_of_their_text():
    settings = load_settings({"SECRET_KEY": "k-123456", "SMART_CLIENT_SECRET": "c-654321"}, environ={})
    with pytest.raises(ValueError):
        settings.fhir_max_pages = 9  # type: ignore[misc]
    assert "k-123456" not in repr(settings) and "c-654321" not in str(settings.model_dump())
    assert settings.secret_key_value == "k-123456" and settings.smart_client_secret_value == "c-654321"


def test_create_app_takes_a_settings_object_and_its_collaborators_as_arguments(tmp_path):
    settings = load_settings(
        {"AUTH_REQUIRED": False, "DATA_DIR": str(tmp_path), "SMART_APP_ENABLED": False}, environ={}
    )
    scenario = ROOT / "fhir_fixtures" / "azole-fluconazole"
    as_of = json.loads((scenario / "scenario.json").read_text())["asOf"]
    app = create_app(
        settings, uuid_factory=lambda: "00000000-0000-4000-8000-00000000abcd", clock=lambda: scenario_clock(as_of)
    )
    body = json.loads((scenario / "requests" / "order-select.json").read_text())
    answer = app.test_client().post("/cds-services/tacrolimus-order-select", json=body).get_json()
    assert answer["cards"]
    assert {card["uuid"] for card in answer["cards"]} == {"00000000-0000-4000-8000-00000000abcd"}


def test_bad_trusted_issuers_name_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"TACRO_CDS_TRUSTED_ISSUERS: .*needs jwks, jwks_url or jku_allowlist"):
        create_app({"DATA_DIR": str(tmp_path), "TRUSTED_ISSUERS": {"https://ehr.example.org": {}}})


def _table_rows(document: str, heading: str) -> list[str]:
    text = (ROOT / document).read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_configuration_table_is_the_settings_model():
    """Every setting appears in the table of docs/configuration.md with its default and meaning, and
    nothing else does. After changing ``Settings``, paste the output of
    ``python -c "from service.config import settings_table; print(settings_table(), end='')"``."""
    rows = _table_rows("docs/configuration.md", "Settings")
    assert "\n".join(rows) + "\n" == settings_table()
    assert [row.split("`")[1] for row in rows[2:]] == list(SETTING_NAMES)
    assert isinstance(default_settings(), Settings)


def test_readme_configuration_rows_are_rows_of_the_settings_table():
    """The README shows a few settings at a glance: each row exactly as the generated table has it."""
    rows = _table_rows("README.md", "Configuration at a glance")
    generated = settings_table().splitlines()
    assert rows[:2] == generated[:2]
    assert len(rows) > 2
    assert [row for row in rows[2:] if row not in generated] == []


def test_modules_read_settings_as_attributes_with_no_second_default():
    """Defaults live in Settings alone: no module looks a setting up by name with a fallback of its own."""
    lookup = re.compile(r"""(?<!app\.)\b(?:config|settings|cfg)(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""")
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for pattern in ("service/**/*.py", "bench/**/*.py")
        for path in ROOT.glob(pattern)
        for name in lookup.findall(path.read_text(encoding="utf-8"))
        if name in SETTING_NAMES
    ]
    assert not found

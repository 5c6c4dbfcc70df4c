"""Settings: where the service keeps its files, and how environment variables are read."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from service import create_app
from service.config import ConfigError, data_directory, default_data_dir


def test_default_data_folder_follows_xdg_data_home_else_the_home_folder(tmp_path):
    assert default_data_dir({"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": "/nowhere"}) == \
        tmp_path / "xdg" / "tacro-cds"
    assert default_data_dir({"HOME": str(tmp_path)}) == tmp_path / ".local" / "share" / "tacro-cds"
    # A relative XDG_DATA_HOME is invalid by the XDG convention and ignored.
    assert default_data_dir({"XDG_DATA_HOME": "relative", "HOME": str(tmp_path)}) == \
        tmp_path / ".local" / "share" / "tacro-cds"


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
        data_directory({}, {"XDG_DATA_HOME": str(blocker)})
    assert "default" in str(caught.value)


def test_serve_refuses_an_unusable_data_folder_before_starting_workers(tmp_path, monkeypatch, capsys):
    from service.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TACRO_CDS_DATA_DIR", str(blocker / "state"))
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "TACRO_CDS_DATA_DIR" in err
    assert "Traceback" not in err

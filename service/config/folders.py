"""The service's files: its data folder (private to this user) and the database URL that follows
from the settings."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from service.config.environment import ENV_PREFIX, ConfigError
from service.config.settings import Settings
from service.storage.files import private_directory

APP_FOLDER = "tacro-cds"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the service keeps its files when DATA_DIR is not set: ``$XDG_DATA_HOME/tacro-cds``, else
    ``~/.local/share/tacro-cds`` (the XDG base directory convention), whatever the install prefix."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_DATA_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_FOLDER
    home = environ.get("HOME", "").strip() or str(Path.home())
    return Path(home) / ".local" / "share" / APP_FOLDER


def data_directory(settings: Settings, environ: Mapping[str, str] | None = None) -> Path:
    """The service's folder (DATA_DIR or the default), created private to this user; a folder that
    cannot be made stops start-up with a message naming the setting."""
    chosen = settings.data_dir
    folder = Path(chosen).expanduser() if chosen else default_data_dir(environ)
    folder = folder.absolute()
    try:
        private_directory(folder)
        with tempfile.TemporaryFile(dir=folder):
            pass  # writable by this user (the folder may exist, made by someone else)
    except OSError as exc:
        origin = f"{ENV_PREFIX}DATA_DIR={chosen}" if chosen else f"the default {folder}"
        raise ConfigError(
            f"cannot use {origin} as the service's data folder ({exc.strerror or exc}); set "
            f"{ENV_PREFIX}DATA_DIR to a folder this user ({_user()}) may write"
        ) from None
    return folder


def database_url(settings: Settings, folder: Path | None = None) -> str:
    """The store's SQLAlchemy URL: FEEDBACK_DB, else the SQLite file in the data folder (``folder``
    when the caller has it already)."""
    if settings.feedback_db:
        return settings.feedback_db
    return f"sqlite:///{(folder or data_directory(settings)) / 'tacro-cds.sqlite'}"


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.getuid()}"

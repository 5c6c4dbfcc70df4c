"""Configuration: one typed, frozen settings object (``Settings``), read from ``TACRO_CDS_<NAME>``
environment variables over its defaults, with the mapping given to ``create_app`` on top.

``Settings`` is the one place a setting's type, default and meaning live; every module reads its
attributes. The table in docs/configuration.md is ``settings_table()``'s output (a test compares them).

The package, by what each part does: ``environment`` reads the TACRO_CDS_* variables; ``settings``
defines every setting; ``loading`` builds the settings and says, in one message, every variable or
value that does not fit; ``table`` writes the documentation's settings table; ``folders`` places the
service's files."""

from service.config.environment import ENV_PREFIX, ConfigError
from service.config.folders import APP_FOLDER, data_directory, database_url, default_data_dir
from service.config.loading import (
    TOOL_PREFIXES,
    TOOL_VARIABLES,
    default_settings,
    load_settings,
    unknown_variables,
)
from service.config.settings import MIB, SETTING_NAMES, SHOWN, Settings, default
from service.config.table import settings_table

__all__ = [
    "APP_FOLDER",
    "ENV_PREFIX",
    "MIB",
    "SETTING_NAMES",
    "SHOWN",
    "TOOL_PREFIXES",
    "TOOL_VARIABLES",
    "ConfigError",
    "Settings",
    "data_directory",
    "database_url",
    "default",
    "default_data_dir",
    "default_settings",
    "load_settings",
    "settings_table",
    "unknown_variables",
]

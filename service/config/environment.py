"""Reading the environment: the TACRO_CDS_* variables of the process (or of an environment handed in
for one ``load_settings`` call), as text for the settings' validators, and the error a setting the
service cannot start with raises."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

ENV_PREFIX = "TACRO_CDS_"


class ConfigError(ValueError):
    """A setting the service cannot start with; the message names the environment variable."""


class NotJsonError(ValueError):
    """A structured setting whose text is not JSON."""


# The TACRO_CDS_* variables read when settings are built; None: os.environ. Set only for the
# duration of one ``load_settings`` call, so a test can hand in an environment of its own.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("tacro_cds_environ", default=None)


@contextmanager
def reading(environ: Mapping[str, str]) -> Iterator[None]:
    """Settings built inside read ``environ`` instead of the process's variables."""
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


class EnvironmentSource(PydanticBaseSettingsSource):
    """TACRO_CDS_* variables of the process (or of the environment ``load_settings`` was given), as
    text: the settings' validators read them. A variable that is empty or blank counts as unset
    (docker compose passes unset ones as "")."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value = self.environ.get(f"{self.config['env_prefix']}{field_name.upper()}")
        return (value if value and value.strip() else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                found[name] = value
        return found


def environment_source(settings_cls: type[BaseSettings]) -> EnvironmentSource:
    """The variables settings are built from now: those ``reading`` was given, else the process's."""
    environ = _ENVIRON.get()
    return EnvironmentSource(settings_cls, os.environ if environ is None else environ)

"""Loading the settings and validating across them: the defaults, the environment and create_app's
mapping together, every variable or key that names no setting, and every value that does not fit,
said in one message naming the variables."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from service.config.environment import ENV_PREFIX, ConfigError, NotJsonError, reading
from service.config.settings import SETTING_NAMES, SHAPE_TAGS, Settings

# TACRO_CDS_* variables that are not settings of the service: read by the command-line tools
# (``fixtures load``, ``dev-ehr``), the test suite and the CI scripts. Any other TACRO_CDS_* name is
# a misspelt setting and stops start-up.
TOOL_VARIABLES = frozenset(
    {
        "FIXTURES_DIR",
        "FHIR_TOKEN",
        "CI_WORK",
        "PG_STATE",
        "PG_PORT",
        "FHIR_WAIT_S",
        "LOAD_REQUESTS",
        "FUZZ_EXAMPLES",
        "CHROMIUM",
    }
)
TOOL_PREFIXES = ("TEST_",)

# What create_app took as configuration keys before they became its keyword arguments.
_COLLABORATORS = {
    "CLOCK": "clock",
    "STORE": "store",
    "VERIFIER": "verifier",
    "PREFETCH_RESOLVER": "resolver",
    "UUID_FACTORY": "uuid_factory",
}


def _closest(name: str) -> str | None:
    close = difflib.get_close_matches(name, SETTING_NAMES, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Messages for TACRO_CDS_* variables that name no setting, each with the closest valid name."""
    problems = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :]
        if key in SETTING_NAMES or key in TOOL_VARIABLES or key.startswith(TOOL_PREFIXES):
            continue
        close = _closest(key)
        hint = f"; did you mean {ENV_PREFIX}{close}?" if close else ""
        problems.append(f"{name} is not a setting{hint}")
    return problems


def _unknown_keys(keys: Iterable[str]) -> list[str]:
    """Messages for keys of create_app's mapping that name no setting."""
    problems = []
    for key in keys:
        if key.upper() in SETTING_NAMES:
            continue
        if key.upper() in _COLLABORATORS:
            problems.append(f"{key} is not a setting; pass it as create_app(..., {_COLLABORATORS[key.upper()]}=...)")
            continue
        close = _closest(key.upper())
        problems.append(f"{key} is not a setting" + (f"; did you mean {close}?" if close else ""))
    return problems


# How a value that does not fit its setting is said, by pydantic's error type.
_SAID: dict[str, str] = {
    "int_parsing": "must be a whole number, not {input!r}",
    "int_from_float": "must be a whole number, not {input!r}",
    "int_type": "must be a whole number, not {input!r}",
    "float_parsing": "must be a number, not {input!r}",
    "float_type": "must be a number, not {input!r}",
    "bool_parsing": "must be true or false, not {input!r}",
    "bool_type": "must be true or false, not {input!r}",
    "dict_type": "must be a JSON object, not {kind}",
    "list_type": "must be a JSON array, not {kind}",
    "string_type": "must be text, not {kind}",
    "path_type": "must be a path, not {kind}",
    "greater_than": "must be greater than {gt}, not {input!r}",
    "greater_than_equal": "must be at least {ge}, not {input!r}",
    "string_too_short": "must not be empty",
    "literal_error": "must be one of {expected}, not {input!r}",
}


def _said(error: Mapping[str, Any]) -> str:
    """One pydantic error as a line naming the environment variable."""
    loc = error["loc"]
    name = f"{ENV_PREFIX}{str(loc[0]).upper()}"
    within = "".join(f"[{part!r}]" for i, part in enumerate(loc[1:]) if not (i == 0 and part in SHAPE_TAGS))
    ctx = {
        key: f"{value:g}" if isinstance(value, (int, float)) else value
        for key, value in (error.get("ctx") or {}).items()
    }
    if isinstance(ctx.get("error"), NotJsonError):
        return f"{name}{within} {ctx['error']}"
    if error["type"] == "value_error":
        text = str(ctx.get("error", error["msg"]))
    elif error["type"] == "extra_forbidden":
        text = "is not a setting"
    elif error["type"] in _SAID:
        text = _SAID[error["type"]].format(input=error.get("input"), kind=type(error.get("input")).__name__, **ctx)
    else:
        text = error["msg"]
    return f"{name}{within}: {text}"


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings: defaults, then TACRO_CDS_* variables of ``environ`` (default: the process's),
    then ``overrides`` (keys are setting names, e.g. ``{"AUTH_REQUIRED": False}``). An unknown
    variable or key, or a value that does not fit its setting, raises ConfigError naming the
    variable (and the closest valid name when it is misspelt)."""
    chosen = os.environ if environ is None else environ
    unknown = unknown_variables(chosen) + _unknown_keys(overrides or {})
    values = {key.lower(): value for key, value in (overrides or {}).items() if key.upper() in SETTING_NAMES}
    try:
        with reading(chosen):
            settings = Settings(**values)
        wrong: list[str] = []
    except ValidationError as exc:
        wrong = list(dict.fromkeys(_said(e) for e in exc.errors()))
    if unknown or wrong:  # every problem in one message, not one per start attempt
        hint = " (see the settings in docs/configuration.md)" if unknown else ""
        raise ConfigError("; ".join(unknown + wrong) + hint)
    return settings


def default_settings() -> Settings:
    """The settings as shipped: every default, no environment."""
    return load_settings(environ={})

"""The generated settings table of docs/configuration.md."""

from __future__ import annotations

import json

from service.config.settings import SHOWN, Settings


def settings_table() -> str:
    """The configuration table of docs/configuration.md: one row per setting, its default and its meaning."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        shown = extra.get(SHOWN)
        if shown is None:
            default = field.get_default(call_default_factory=True)
            shown = "none" if default is None else f"`{default if isinstance(default, str) else json.dumps(default)}`"
        rows.append(f"| `{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows) + "\n"

"""Structured JSON logs. One line per call: service, hook, status, duration, hookInstance, cards.

Every field the code passes in ``extra=`` is written (``reason_code``, ``cap``, ``entries``, ...), so
a new field needs no change here. The guard that keeps request bodies, tokens and patient data out
of the log is on the values and names, not a list of fields:

- a value is written only when it is a number, a boolean, ``None``, a short string or a short list
  of those; a mapping or any other object (a FHIR resource, a request, a response) is written as
  its type name only, and long strings are cut;
- fields whose name says they hold a secret or a record (``token``, ``authorization``, ``body``,
  ``patient``, ...) are written as ``"[withheld]"``;
- an exception is written as its type and its traceback's frames (file, line, function), never its
  message or any variable's value: both may quote input.

Call sites still decide what they emit: never pass a header, a token or a value from the patient's
record.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from functools import lru_cache
from types import TracebackType
from typing import Any

# Attributes every LogRecord has: not fields the caller chose.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Field names that never carry a value to the log, whoever passes them.
WITHHELD_NAME_PARTS = (
    "token",
    "authorization",
    "secret",
    "password",
    "cookie",
    "body",
    "patient",
    "resource",
    "prefetch",
    "context",
    "name",
    "birth",
)
MAX_STRING = 200
MAX_ITEMS = 20
MAX_FRAMES = 40
_SCALARS = (bool, int, float)


@lru_cache(maxsize=512)
def _withheld(field: str) -> bool:
    # Asked for every field of every line (the call line has eight): answered once per field name.
    # The names are the code's own (``extra=`` keywords), so the cache holds a few dozen.
    lowered = field.lower()
    return any(part in lowered for part in WITHHELD_NAME_PARTS) and lowered not in _NAMED_ON_PURPOSE


# Fields whose names contain a withheld word but hold no patient data or secret.
_NAMED_ON_PURPOSE = frozenset({"hookinstance"})


def _safe_value(value: Any) -> Any:
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "..."
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if all(item is None or isinstance(item, (*_SCALARS, str)) for item in items):
            return [_safe_value(item) for item in items[:MAX_ITEMS]] + (["..."] if len(items) > MAX_ITEMS else [])
    return f"<{type(value).__name__}>"


def traceback_frames(tb: TracebackType | None) -> list[dict[str, Any]]:
    """Where an exception went: file, line and function of each frame, innermost last; no values."""
    frames = [
        {"file": frame.filename, "line": frame.lineno, "function": frame.name} for frame in traceback.extract_tb(tb)
    ]
    return frames[-MAX_FRAMES:]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field, value in record.__dict__.items():
            if field in _RECORD_ATTRIBUTES or field in out or field.startswith("_"):
                continue
            out[field] = "[withheld]" if _withheld(field) else _safe_value(value)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and where it was raised; not its message, which may quote input.
            out["exception"] = record.exc_info[0].__name__
            out["frames"] = traceback_frames(record.exc_info[2])
        # ASCII only: line and paragraph separators, C1 controls and bidi overrides from a caller
        # (iss, jti, hookInstance) are written as \\u escapes and cannot split or disguise a line.
        return json.dumps(out, ensure_ascii=True, default=str)


def configure_logging(level: str) -> None:
    root = logging.getLogger("tacro_cds")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    # urllib3 logs each request line (path and query, i.e. the patient id of a FHIR search) at
    # DEBUG; keep it at WARNING so a DEBUG root logger cannot leak the FHIR fallback's URLs.
    logging.getLogger("urllib3").setLevel(logging.WARNING)

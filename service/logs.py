"""Structured JSON logs. One line per call: service, hook, status, duration, hookInstance, cards.

Never log a request body, a header value, a token or anything about the patient: log records carry
only the whitelisted fields below.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

SAFE_FIELDS = ("service", "hook", "hookInstance", "status", "duration_ms", "cards", "method", "path",
               "reason", "iss", "jti", "tenant", "error", "fhir_status", "key", "keys", "worker")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in SAFE_FIELDS:
            if name in record.__dict__:
                out[name] = record.__dict__[name]
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and where it was raised; not its message, which may quote input.
            out["exception"] = record.exc_info[0].__name__
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

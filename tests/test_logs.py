"""Log lines carry every field the code emits on purpose, and where an unhandled error happened,
but no value from a request, a token or the patient's record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fhir_doubles import hook_body

from service.ops.logs import JsonFormatter

SECRET = "Hanako-Yamada-1987-03-14"


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The lines the service's loggers have written so far in the test, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tacro_cds")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


def _format(message: str, level: int = logging.WARNING, exc_info: Any = None, **extra: Any) -> dict[str, Any]:
    record = logging.makeLogRecord(
        {
            "name": "tacro_cds.test",
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": message,
            "exc_info": exc_info,
            **extra,
        }
    )
    result: dict[str, Any] = json.loads(JsonFormatter().format(record))
    return result


def test_prefetch_and_cap_fields_are_written():
    line = _format("prefetch data unavailable", key="medications", reason_code="fhir-timeout", optional=False)
    assert (line["key"], line["reason_code"], line["optional"]) == ("medications", "fhir-timeout", False)
    line = _format("search capped", level=logging.INFO, cap="entries", entries=1000)
    assert (line["cap"], line["entries"]) == ("entries", 1000)
    assert _format("search capped", cap="pages", pages=5)["pages"] == 5


def test_structured_values_are_written_as_their_type_only():
    resource = {"resourceType": "Patient", "name": [{"text": SECRET}]}
    line = _format("odd", detail=resource, items=[resource], obj=object(), codes=["a", "b"])
    assert (line["detail"], line["items"], line["obj"]) == ("<dict>", "<list>", "<object>")
    assert line["codes"] == ["a", "b"]
    assert SECRET not in json.dumps(line)


def test_fields_named_for_secrets_or_records_are_withheld_and_long_strings_cut():
    line = _format(
        "odd",
        access_token=SECRET,
        patient_id=SECRET,
        request_body=SECRET,
        family_name=SECRET,
        hookInstance="d1577c69",
        note="x" * 1000,
    )
    assert SECRET not in json.dumps(line)
    assert line["access_token"] == line["patient_id"] == line["request_body"] == "[withheld]"
    assert line["hookInstance"] == "d1577c69"
    assert len(line["note"]) < 250


class _BrokenResolver:
    optional: frozenset[str] = frozenset()

    def resolve_partial(self, *_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"failed while reading {SECRET}")


def test_unhandled_error_logs_type_and_frames_without_values(make_app, logged):
    app = make_app(resolver=_BrokenResolver())
    response = app.test_client().post("/cds-services/tacrolimus-patient-view", json=hook_body({}))
    assert response.status_code == 500
    assert SECRET not in response.get_data(as_text=True)
    lines = logged()
    errors = [line for line in lines if line.get("exception")]
    assert len(errors) == 1
    error = errors[0]
    assert error["exception"] == "RuntimeError"
    assert SECRET not in json.dumps(lines)
    frames = error["frames"]
    assert all(set(frame) == {"file", "line", "function"} for frame in frames)
    innermost = frames[-1]
    assert innermost["function"] == "resolve_partial" and innermost["file"].endswith("test_logs.py")
    assert any(frame["file"].endswith("pipeline.py") for frame in frames)

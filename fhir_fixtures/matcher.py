"""A small in-memory FHIR search: answers the service's prefetch templates over one patient's
resources the way a FHIR R4 server would, so the generated prefetch equals the server's answer.

Supported (exactly what the templates use): reads ``Type/id``; searches with ``patient``, ``code``
and ``service-type`` (token lists ``system|code,...``, percent-encoded or not), ``status`` (lists),
``_sort=date`` / ``-date`` (``authoredon`` on MedicationRequest), ``_include=MedicationRequest:medication``
and ``_count``. Anything else raises ``UnsupportedQuery`` so a new template cannot be
answered wrongly in silence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


class UnsupportedQuery(ValueError):
    """The query uses a search feature this matcher does not implement."""


def substitute(template: str, context: Mapping[str, Any]) -> str:
    """Replace the CDS Hooks 2.0 prefetch tokens with values from the hook context."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("context."):
            field = context.get(name[len("context.") :])
            if isinstance(field, (str, int, float)) and not isinstance(field, bool):
                return str(field)
            raise UnsupportedQuery(f"token {{{{{name}}}}} has no primitive value in the context")
        if name in _USER_TOKENS:
            user = str(context.get("userId") or "")
            prefix = _USER_TOKENS[name] + "/"
            if user.startswith(prefix):
                return user[len(prefix) :]
        raise UnsupportedQuery(f"token {{{{{name}}}}} cannot be resolved")

    return _TOKEN.sub(value, template)


def _codeable(node: Any) -> list[tuple[str | None, str | None]]:
    nodes = node if isinstance(node, list) else [node]
    out: list[tuple[str | None, str | None]] = []
    for cc in nodes:
        if isinstance(cc, dict):
            out += [(c.get("system"), c.get("code")) for c in cc.get("coding") or [] if isinstance(c, dict)]
    return out


def _references(resource: Mapping[str, Any], param: str) -> list[str]:
    if resource["resourceType"] == "Appointment":
        refs = [(p.get("actor") or {}).get("reference") for p in resource.get("participant") or []]
    else:
        # Immunization names her in ``patient``; the other types in ``subject``.
        refs = [(resource.get("subject") or resource.get("patient") or {}).get("reference")]
    return [r for r in refs if isinstance(r, str)]


def _token_values(resource: Mapping[str, Any], param: str) -> list[tuple[str | None, str | None]]:
    rtype = resource["resourceType"]
    if param == "code":
        if rtype in ("MedicationRequest", "MedicationStatement"):
            return _codeable(resource.get("medicationCodeableConcept"))
        return _codeable(resource.get("code"))
    if param == "service-type":
        return _codeable(resource.get("serviceType"))
    if param == "status":
        return [(None, resource.get("status"))]
    raise UnsupportedQuery(f"token parameter {param!r}")


def _token_match(values: list[tuple[str | None, str | None]], query: str) -> bool:
    for wanted in query.split(","):
        system, bar, code = wanted.partition("|")
        for have_system, have_code in values:
            if (
                bar
                and (system == "" and have_system is None or have_system == system)
                and (code == "" or have_code == code)
            ):
                return True
            if not bar and have_code == wanted:
                return True
    return False


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value if "T" in value else value + "T00:00:00+00:00"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_DATED = {
    "Observation": "date",
    "Appointment": "date",
    "Procedure": "date",
    "Immunization": "date",
    "MedicationRequest": "authoredon",
}


def _date(resource: Mapping[str, Any]) -> datetime | None:
    """The value of the ``date`` (or ``authoredon``) search parameter (start of a period, as servers
    index it)."""
    rtype = resource["resourceType"]
    if rtype == "Procedure":
        return _instant(resource.get("performedDateTime") or (resource.get("performedPeriod") or {}).get("start"))
    if rtype == "Immunization":
        return _instant(resource.get("occurrenceDateTime"))
    if rtype == "MedicationRequest":
        return _instant(resource.get("authoredOn"))
    if rtype == "Observation":
        return _instant(
            resource.get("effectiveDateTime")
            or resource.get("effectiveInstant")
            or (resource.get("effectivePeriod") or {}).get("start")
        )
    if rtype == "Appointment":
        return _instant(resource.get("start"))
    raise UnsupportedQuery(f"_sort=date on {rtype}")


def matches(resource: Mapping[str, Any], name: str, value: str) -> bool:
    """Does one resource satisfy one search parameter?"""
    if name == "patient":
        wanted = value if "/" in value else f"Patient/{value}"
        return wanted in _references(resource, name)
    if name in ("code", "service-type", "status"):
        return _token_match(_token_values(resource, name), value)
    raise UnsupportedQuery(f"search parameter {name!r}")


def search(query: str, resources: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Answer one relative FHIR query (read or search) over ``resources``."""
    path, _, qs = query.partition("?")
    pool = list(resources)
    if not qs:
        rtype, _, rid = path.partition("/")
        if not rid or "/" in rid:
            raise UnsupportedQuery(f"query {query!r}")
        return next((dict(r) for r in pool if r["resourceType"] == rtype and r.get("id") == rid), None)
    rtype = path
    found = [r for r in pool if r["resourceType"] == rtype]
    count: int | None = None
    sort: str | None = None
    include = False
    for name, value in parse_qsl(qs, keep_blank_values=True, strict_parsing=True):
        if name == "_count":
            count = int(value)
        elif name == "_sort":
            sort = value
        elif name == "_include":
            if value != "MedicationRequest:medication" or rtype != "MedicationRequest":
                raise UnsupportedQuery(f"_include={value} on {rtype}")
            include = True
        else:
            found = [r for r in found if matches(r, name, value)]
    if sort is not None:
        if sort.lstrip("-") != _DATED.get(rtype):
            raise UnsupportedQuery(f"_sort={sort} on {rtype}")
        dated = [(r, _date(r)) for r in found]
        # Undated resources last, as the server sorts them; ties keep their stored order.
        present = sorted(
            (p for p in dated if p[1] is not None),
            key=lambda p: p[1],  # type: ignore[arg-type,return-value]
            reverse=sort.startswith("-"),
        )
        found = [r for r, _ in present] + [r for r, d in dated if d is None]
    total = len(found)
    if count is not None:
        found = found[:count]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total}
    entries = [{"resource": dict(r), "search": {"mode": "match"}} for r in found]
    if include:
        wanted = {
            ref.split("/")[-1]
            for r in found
            if isinstance(ref := (r.get("medicationReference") or {}).get("reference"), str)
            and ref.startswith("Medication/")
        }
        entries += [
            {"resource": dict(m), "search": {"mode": "include"}}
            for m in pool
            if m["resourceType"] == "Medication" and m.get("id") in wanted
        ]
    if entries:
        bundle["entry"] = entries
    return bundle

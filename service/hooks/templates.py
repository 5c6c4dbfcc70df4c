"""Prefetch templates (CDS Hooks 2.0 token syntax, R4 search syntax), one key per data group, and the
pure token substitution that turns a template into a query for one request.

Nothing here does I/O: ``service.hooks.prefetch`` substitutes and fetches. Spec:
https://cds-hooks.hl7.org/2.0/#prefetch-template
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from cards.knowledge_model import CodesTable, typed
from cards.vocab import (
    CBC,
    CHEMISTRY,
    CONDITIONS,
    ENDED_MEDICATION_REQUESTS,
    IMMUNIZATIONS,
    IMMUNOLOGY,
    MEDICATION_REQUESTS,
    MEDICATION_STATEMENTS,
    PATIENT,
    PREGNANCY_TESTS,
    TACROLIMUS_LEVELS,
    TRANSFER_APPOINTMENTS,
    TRANSFER_PROCEDURES,
    TRANSFER_REQUESTS,
    VITALS,
)

P = "{{context.patientId}}"
INCLUDE_MEDICATION = "_include=MedicationRequest:medication"

# Prefetch key -> how many of the newest results it asks for. One page each: CDS clients answer a
# prefetch template with its first page, so the count is also the depth of history we read.
OBSERVATION_KEYS: dict[str, int] = {
    IMMUNOLOGY: 50,
    TACROLIMUS_LEVELS: 50,
    CHEMISTRY: 200,
    CBC: 50,
    VITALS: 50,
    PREGNANCY_TESTS: 20,
}

# CDS Hooks 2.0 user tokens -> the resource type userId must name.
USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}

_TOKEN = re.compile(r"\{\{(.*?)\}\}")
_PATH_END = re.compile(r"[/?]")
# A relative reference as context.userId holds one ("PractitionerRole/r9"): a type and one id segment.
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([^/\s]+)$")
_CONTEXT_FIELD = re.compile(r"^context\.([A-Za-z][A-Za-z0-9_]*)$")


class UnresolvableTokenError(ValueError):
    """A template token cannot be filled from this request (unknown token, a context field that is
    absent or not a primitive, or a user token that does not match ``context.userId``). The
    prefetch key counts as unfetchable: report it, never query with the token left in."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(f"{{{{{token}}}}}: {reason}")
        self.token = token
        self.reason = reason


def substitute(template: str, context: Mapping[str, Any], user: str | None = None) -> str:
    """Fill every CDS Hooks 2.0 token of ``template``; values are percent-encoded.

    ``user`` is the user's ``Type/id`` (default: ``context.userId``); it feeds the four user tokens.
    A value that is a relative reference (``PractitionerRole/r9``, what ``context.userId`` holds)
    keeps its one ``/`` where a reference belongs: as the whole path of a read template
    (``{{context.userId}}`` reads that resource, CDS Hooks 2.0.1 "Prefetch tokens identifying the user") or as a
    search parameter value (``performer={{context.userId}}``); everywhere else, and in the id
    part, every reserved character is encoded, so no value can add a path segment or a parameter.
    Raises UnresolvableTokenError for any token that cannot be filled.
    """
    if user is None and isinstance(context.get("userId"), str):
        user = context["userId"]
    path_end = template.find("?")
    path_end = len(template) if path_end < 0 else path_end
    whole_path = _TOKEN.fullmatch(template[:path_end]) is not None

    def fill(match: re.Match[str]) -> str:
        token = match.group(1).strip()
        value = _token_value(token, context, user)
        in_query = match.start() > path_end
        if whole_path and not in_query:
            reference = _REFERENCE.match(value)
            if reference is None or set(reference.group(2)) <= {"."}:
                raise UnresolvableTokenError(token, "a read template's whole path needs a Type/id value")
            return f"{reference.group(1)}/{quote(reference.group(2), safe='')}"
        if in_query:
            reference = _REFERENCE.match(value)
            if reference is not None:
                return f"{reference.group(1)}/{quote(reference.group(2), safe='')}"
        return quote(value, safe="")

    result = _TOKEN.sub(fill, template)
    if "{{" in result or "}}" in result:
        raise UnresolvableTokenError(result[result.find("{{") :][:40], "unbalanced token braces")
    return result


def _token_value(token: str, context: Mapping[str, Any], user: str | None) -> str:
    field = _CONTEXT_FIELD.match(token)
    if field:
        name = field.group(1)
        if name not in context:
            raise UnresolvableTokenError(token, f"context has no field {name!r}")
        return _primitive(token, context[name])
    if token in USER_TOKENS:
        wanted = USER_TOKENS[token]
        if not user:
            raise UnresolvableTokenError(token, "context.userId is absent")
        # userId is "Type/id"; tolerate an absolute reference by reading its last two segments.
        parts = user.rstrip("/").split("/")
        if len(parts) < 2 or parts[-2] != wanted:
            raise UnresolvableTokenError(token, f"the user is not a {wanted}")
        return _primitive(token, parts[-1])
    raise UnresolvableTokenError(token, "not a CDS Hooks 2.0 prefetch token")


def _primitive(token: str, value: Any) -> str:
    # Only root-level primitives may be substituted (2.0): never draftOrders, selections, objects.
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise UnresolvableTokenError(token, "value is not a primitive")
    # An empty or dot-only value would turn "Patient/{{context.patientId}}" into another path.
    if not text.strip() or set(text) <= {"."}:
        raise UnresolvableTokenError(token, "value is empty")
    return text


@lru_cache(maxsize=1024)
def template_resource_type(template: str) -> str:
    """The resource type a template or a substituted query names: ``Observation?...`` and
    ``Patient/{{...}}`` alike. A template whose whole path is a token (``{{context.userId}}``)
    names its type only once substituted: this returns the token then. Asked for every prefetch
    key of every call, of the same few templates: answered once per text (bounded, as a
    substituted query carries the call's ids)."""
    return _PATH_END.split(template, maxsplit=1)[0] if not _TOKEN.match(template) else template


def template_is_read(template: str) -> bool:
    """True for a read (``Type/id``, or a template whose whole path is a token, which must fill
    it with a ``Type/id``), False for a search (``Type?...``)."""
    path = template.split("?", 1)[0]
    return "/" in path or _TOKEN.fullmatch(path) is not None


def _token(system: str, code: str) -> str:
    """A token search value, percent-encoded whole: ``http%3A%2F%2Floinc.org%7C77348-1``.

    Servers decode it before they read it. Sent unencoded, ``//`` meets proxies that collapse it to
    ``/`` anywhere in a URL (a public SMART launcher's does), and the search then finds nothing and
    answers an empty 200; a code with "&", "," or "#" also stays one value."""
    return f"{quote(system, safe='')}%7C{quote(code, safe='')}"


def _join(pairs: Iterable[tuple[str, str]]) -> str:
    seen: list[str] = []
    for system, code in pairs:
        token = _token(system, code)
        if token not in seen:
            seen.append(token)
    return ",".join(seen)


def _observation_codes(codes_table: CodesTable) -> dict[str, list[tuple[str, str]]]:
    grouped: dict[str, list[tuple[str, str]]] = {key: [] for key in OBSERVATION_KEYS}
    for concept, entry in codes_table.observations.items():
        group = entry.group
        if group not in grouped:
            raise ValueError(
                f"codes.observations.{concept}: group {group!r} is not a prefetch key; "
                f"use one of {', '.join(OBSERVATION_KEYS)}"
            )
        grouped[group].extend((c.system, c.code) for c in entry.codes)
    empty = [key for key, pairs in grouped.items() if not pairs]
    if empty:
        raise ValueError(f"codes.observations: no codes for prefetch key(s) {', '.join(empty)}")
    return grouped


def prefetch_templates(knowledge: Mapping[str, Any]) -> dict[str, str]:
    """Bounded queries for everything the rules read (docs/data-profile.md), codes from ``codes.yaml``.

    Observation concepts are grouped by their ``group`` (the prefetch key). Raises ValueError when the
    table leaves a key empty.
    """
    codes_table = typed(knowledge).codes
    obs_codes = _observation_codes(codes_table)
    transfer = [(c.system, c.code) for c in (*codes_table.transfer.standard, *codes_table.transfer.euploid)]
    if not transfer:
        raise ValueError("codes.transfer: no embryo-transfer codes for the transfer prefetch keys")

    templates = {PATIENT: f"Patient/{P}"}
    for key, count in OBSERVATION_KEYS.items():
        templates[key] = f"Observation?patient={P}&code={_join(obs_codes[key])}&_sort=-date&_count={count}"
    transfer_codes = _join(transfer)
    templates.update(
        {
            CONDITIONS: f"Condition?patient={P}&_count=100",
            # The Medications the orders refer to come in the same searchset (search.mode "include").
            MEDICATION_REQUESTS: f"MedicationRequest?patient={P}&status=active,on-hold&{INCLUDE_MEDICATION}&_count=100",
            # Ended orders, newest first: an interacting drug's effect outlasts its last dose (an azole's
            # by 4-5 days), and a recent tacrolimus order is evidence of therapy. FHIR R4 searches have no
            # relative date, so the count bounds them; the rules keep those inside the effect window.
            ENDED_MEDICATION_REQUESTS: (
                f"MedicationRequest?patient={P}&status=stopped,completed&_sort=-authoredon&{INCLUDE_MEDICATION}&_count=50"
            ),
            MEDICATION_STATEMENTS: f"MedicationStatement?patient={P}&status=active&_count=100",
            # Vaccines given (a live vaccine in the last 30 days matters on tacrolimus), newest first.
            IMMUNIZATIONS: f"Immunization?patient={P}&status=completed&_sort=-date&_count=20",
            # Completed transfers too: a transfer done dates the course's end, the euploid cut-off and
            # the pregnancy; newest first, the course window is well inside the count.
            TRANSFER_REQUESTS: (
                f"ServiceRequest?patient={P}&code={transfer_codes}&status=draft,active,on-hold,completed&_count=20"
            ),
            TRANSFER_PROCEDURES: (
                f"Procedure?patient={P}&code={transfer_codes}&status=preparation,in-progress,completed&_sort=-date&_count=20"
            ),
            TRANSFER_APPOINTMENTS: f"Appointment?patient={P}&service-type={transfer_codes}&_sort=-date&_count=20",
        }
    )
    return templates

"""Hypothesis strategies for CDS Hooks request bodies: valid skeletons, odd but legal FHIR in prefetch
and draftOrders, and the hostile variants (mutated fields, wrong types, unicode, deep nesting, huge
arrays). Each generated body comes with what a correct service must answer."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from cards.knowledge import load_knowledge
from service.hooks.templates import prefetch_templates

HOOKS = ("order-select", "order-sign", "patient-view")
TEMPLATE_KEYS = tuple(prefetch_templates(load_knowledge()))
LOINC = "http://loinc.org"
LOCAL = "http://example.org/fhir/CodeSystem/tacro-cds"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SCT = "http://snomed.info/sct"
# The only fhirServer the fuzzer names: a closed local port, so a fallback fetch fails at once.
LOCAL_FHIR = "https://127.0.0.1:9/fhir"

fhir_ids = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True)
# Any unicode, surrogates included (JSON escapes them), plus control characters and RTL marks.
any_text = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(
    ["", " ", "\x00", "\u202e", "\ud800", "🧪💊", "Ω" * 50, "'; DROP TABLE feedback;--", "{{context.patientId}}"]
)
dates = st.sampled_from(
    [
        "2026-11-20",
        "2026-11-25T08:00:00Z",
        "2026-11",
        "2026",
        "2026-11-25T08:00:00+14:00",
        "1900-01-01",
        "2099-12-31T23:59:59.999Z",
    ]
)
numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 1e308, 5e-324, 10**30]),
)
codes = st.sampled_from(
    [
        (LOINC, "77348-1"),
        (LOINC, "11253-2"),
        (LOINC, "2160-0"),
        (LOINC, "14682-9"),
        (LOINC, "2823-3"),
        (LOINC, "2345-7"),
        (LOINC, "4548-4"),
        (LOINC, "85354-9"),
        (LOINC, "8480-6"),
        (LOINC, "2106-3"),
        (LOINC, "21198-7"),
        (LOINC, "9728-7"),
        (LOCAL, "th1-th2-ratio"),
        (LOCAL, "th1-cd4-ifng-pct"),
        (LOCAL, "th2-cd4-il4-pct"),
        (LOCAL, "embryo-transfer"),
        (LOCAL, "euploid-blastocyst-transfer"),
        (LOCAL, "recurrent-implantation-failure"),
        (SCT, "77386006"),
        (SCT, "102878001"),
        (RXNORM, "42316"),
        (RXNORM, "198377"),
        (RXNORM, "1431971"),
        ("urn:other", "x"),
    ]
)
units = st.sampled_from(
    [
        "ng/mL",
        "ug/L",
        "µg/L",
        "mg/dL",
        "umol/L",
        "mmol/L",
        "mEq/L",
        "%",
        "{ratio}",
        "mm[Hg]",
        "IU/L",
        "U/L",
        "mg",
        "{pill}",
        "{tbl}",
        "1",
        "furlongs",
        "",
    ]
)


@st.composite
def codeable_concept(draw: st.DrawFn) -> dict[str, Any]:
    system, code = draw(codes)
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code}]}
    if draw(st.booleans()):
        concept["coding"][0]["display"] = draw(any_text)
    if draw(st.booleans()):
        concept["text"] = draw(st.sampled_from(["Tacrolimus", "tacrolimus 1 mg", "TACROLIMUS", "other"]))
    return concept


@st.composite
def quantity(draw: st.DrawFn) -> dict[str, Any]:
    q: dict[str, Any] = {"value": draw(numbers)}
    unit = draw(units)
    if unit:
        q["unit"] = unit
        if draw(st.booleans()):
            q["system"], q["code"] = "http://unitsofmeasure.org", unit
    if draw(st.booleans()):
        q["comparator"] = draw(st.sampled_from(["<", "<=", ">=", ">"]))
    return q


@st.composite
def observation(draw: st.DrawFn) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": draw(fhir_ids),
        "status": draw(
            st.sampled_from(
                ["final", "amended", "corrected", "preliminary", "entered-in-error", "cancelled", "unknown"]
            )
        ),
        "code": draw(codeable_concept()),
    }
    when = draw(st.sampled_from(["effectiveDateTime", "effectivePeriod", "issued", None]))
    if when == "effectivePeriod":
        obs[when] = {"end": draw(dates)} if draw(st.booleans()) else {"start": draw(dates)}
    elif when:
        obs[when] = draw(dates)
    value = draw(st.sampled_from(["valueQuantity", "valueString", "valueCodeableConcept", "valueInteger", None]))
    if value == "valueQuantity":
        obs[value] = draw(quantity())
    elif value == "valueString":
        obs[value] = draw(any_text)
    elif value == "valueCodeableConcept":
        obs[value] = {"coding": [{"system": SCT, "code": draw(st.sampled_from(["10828004", "260385009"]))}]}
    elif value == "valueInteger":
        obs[value] = draw(st.integers(-5, 10**6))
    if draw(st.booleans()):
        obs["component"] = [
            {"code": draw(codeable_concept()), "valueQuantity": draw(quantity())}
            for _ in range(draw(st.integers(1, 3)))
        ]
    return obs


@st.composite
def medication_request(draw: st.DrawFn, status: str | None = None) -> dict[str, Any]:
    mr: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": draw(fhir_ids),
        "status": status or draw(st.sampled_from(["active", "on-hold", "draft", "stopped"])),
    }
    if draw(st.booleans()):
        mr["intent"] = "order"
    medication = draw(st.sampled_from(["concept", "reference", "contained", None]))
    if medication == "concept":
        mr["medicationCodeableConcept"] = draw(codeable_concept())
    elif medication == "reference":
        mr["medicationReference"] = {"reference": f"Medication/{draw(fhir_ids)}"}
    elif medication == "contained":
        mr["contained"] = [{"resourceType": "Medication", "id": "med1", "code": draw(codeable_concept())}]
        mr["medicationReference"] = {"reference": "#med1"}
    if draw(st.booleans()):
        dose_and_rate = {"doseQuantity": draw(quantity())}
        dosage: dict[str, Any] = {
            # doseAndRate as an object instead of an array: a quirk real clients send.
            "doseAndRate": dose_and_rate if draw(st.booleans()) else [dose_and_rate],
            "timing": {
                "repeat": {
                    "frequency": draw(st.integers(0, 6)),
                    "period": draw(numbers),
                    "periodUnit": draw(st.sampled_from(["d", "h", "wk", "mo", "a"])),
                }
            },
        }
        if draw(st.booleans()):
            dosage["timing"]["repeat"]["boundsPeriod"] = {"start": draw(dates)}
        mr["dosageInstruction"] = [dosage]
    if draw(st.booleans()):
        category = {"coding": [{"code": "outpatient"}]}
        mr["category"] = category if draw(st.booleans()) else [category]
    if draw(st.booleans()):
        mr["authoredOn"] = draw(dates)
    return mr


@st.composite
def other_resource(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["Condition", "ServiceRequest", "Procedure", "Appointment", "MedicationStatement", "Patient", "Basic"]
        )
    )
    res: dict[str, Any] = {"resourceType": kind, "id": draw(fhir_ids)}
    if kind == "Condition":
        res["code"] = draw(codeable_concept())
        res["clinicalStatus"] = {"coding": [{"code": draw(st.sampled_from(["active", "recurrence", "resolved"]))}]}
        if draw(st.booleans()):
            res["verificationStatus"] = {"coding": [{"code": draw(st.sampled_from(["confirmed", "refuted"]))}]}
    elif kind == "ServiceRequest":
        res.update(
            status=draw(st.sampled_from(["draft", "active", "revoked"])), intent="order", code=draw(codeable_concept())
        )
        res[draw(st.sampled_from(["occurrenceDateTime", "occurrencePeriod"]))] = draw(dates)
    elif kind == "Procedure":
        res.update(
            status=draw(st.sampled_from(["preparation", "in-progress", "completed"])),
            code=draw(codeable_concept()),
            performedDateTime=draw(dates),
        )
    elif kind == "Appointment":
        res.update(status="booked", start=draw(dates), serviceType=[draw(codeable_concept())])
    elif kind == "MedicationStatement":
        res.update(status="active", medicationCodeableConcept=draw(codeable_concept()))
    elif kind == "Patient":
        res.update(gender="female", birthDate=draw(dates), name=[{"family": draw(any_text)}])
    if draw(st.booleans()):
        res["extension"] = [{"url": "http://example.org/ext", "valueString": draw(any_text)}]
    return res


resources = st.one_of(observation(), medication_request(), other_resource())


@st.composite
def prefetch_value(draw: st.DrawFn, max_entries: int = 8, fetchable: bool = True) -> Any:
    """One prefetch value; ``fetchable=False`` leaves out the OperationOutcome that makes the service
    fetch the key again."""
    # A single resource in a search key is of the wrong type, which the service fetches again too.
    kinds = ["searchset", "searchset", "null"] + (["resource", "outcome"] if fetchable else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "null":
        return None
    if kind == "outcome":
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing", "diagnostics": draw(any_text)}],
        }
    if kind == "resource":
        return draw(resources)
    entries = draw(st.lists(resources, max_size=max_entries))
    bundle: dict[str, Any] = {"resourceType": "Bundle"}
    if draw(st.booleans()):
        bundle["type"] = "searchset"
    bundle["entry"] = [
        {"resource": r} if draw(st.booleans()) else {"fullUrl": f"urn:uuid:{i}", "resource": r}
        for i, r in enumerate(entries)
    ]
    if draw(st.booleans()):
        bundle["link"] = [{"relation": "next", "url": f"{LOCAL_FHIR}/Observation?page=2"}]
    if draw(st.booleans()):
        bundle["total"] = len(entries)
    return bundle


@dataclass
class Generated:
    """A body, the service it is sent to, and the statuses a correct service may answer."""

    service: str
    body: Any
    expected: frozenset[int]
    kind: str
    diagnostics: str | None = None  # expected OperationOutcome diagnostics code, when known


@st.composite
def valid_body(draw: st.DrawFn, hook: str | None = None, drafts: int | None = None) -> dict[str, Any]:
    """A well-formed request with odd but legal FHIR in prefetch and draftOrders."""
    hook = hook or draw(st.sampled_from(HOOKS))
    context: dict[str, Any] = {"userId": f"Practitioner/{draw(fhir_ids)}", "patientId": draw(fhir_ids)}
    if draw(st.booleans()):
        context["encounterId"] = draw(fhir_ids)
    if hook != "patient-view":
        n = drafts if drafts is not None else draw(st.integers(0, 4))
        orders = [draw(medication_request(status="draft")) for _ in range(n)]
        for i, order in enumerate(orders):
            order["id"] = f"draft-{i}"
        bundle: dict[str, Any] = {"resourceType": "Bundle", "entry": [{"resource": o} for o in orders]}
        if draw(st.booleans()):
            bundle["type"] = "collection"
        context["draftOrders"] = bundle
        if hook == "order-select":
            if not orders:
                orders = [{"resourceType": "MedicationRequest", "id": "draft-0", "status": "draft"}]
                bundle["entry"] = [{"resource": orders[0]}]
            context["selections"] = [
                f"MedicationRequest/{o['id']}"
                for o in draw(st.lists(st.sampled_from(orders), min_size=1, max_size=3, unique_by=id))
            ]
    body: dict[str, Any] = {"hook": hook, "hookInstance": draw(st.uuids()).__str__(), "context": context}
    if draw(st.booleans()):
        # Complete: nothing to fetch, so the body goes all the way through extraction and the rules.
        # (At most 3 entries a key: the fuzz app caps prefetch entries low.)
        body["prefetch"] = {k: draw(prefetch_value(max_entries=3, fetchable=False)) for k in TEMPLATE_KEYS}
    else:
        keys = draw(st.lists(st.sampled_from(TEMPLATE_KEYS), unique=True))
        if keys or draw(st.booleans()):
            body["prefetch"] = {k: draw(prefetch_value()) for k in keys}
    if draw(st.booleans()):
        body["fhirServer"] = LOCAL_FHIR
        if draw(st.booleans()):
            body["fhirAuthorization"] = {
                "access_token": "fuzz-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "tacro-cds",
            }
    return body


def service_of(hook: str) -> str:
    return f"tacrolimus-{hook}"


VALID_STATUSES = frozenset({200, 412})
ANY_ANSWER = frozenset({200, 400, 404, 412, 413})


@st.composite
def valid_requests(draw: st.DrawFn) -> Generated:
    body = draw(valid_body())
    return Generated(service_of(body["hook"]), body, VALID_STATUSES, "valid")


# Values of the wrong type (or right type, wrong content) to put anywhere in a body.
junk = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, any_text),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, prefix + (i,)))
    return out


@st.composite
def mutated_requests(draw: st.DrawFn) -> Generated:
    """A valid body with one place replaced by junk, deleted, or given a unicode key."""
    body = draw(valid_body())
    service = service_of(body["hook"])
    if draw(st.integers(0, 9)) == 0:
        service = service_of(draw(st.sampled_from(HOOKS)))  # maybe the wrong service for the hook
    paths = [p for p in _paths(body) if p]
    path = draw(st.sampled_from(paths))
    parent = body
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "replace", "delete", "add-key"]))
    if action == "replace":
        parent[path[-1]] = draw(junk)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(any_text)] = draw(junk)
    return Generated(service, body, ANY_ANSWER, "mutated")


@st.composite
def wrong_top_level(draw: st.DrawFn) -> Generated:
    """Not an object at all, or an object missing everything."""
    body = draw(st.one_of(junk, st.just({}), st.just([]), st.just("")))
    return Generated(service_of(draw(st.sampled_from(HOOKS))), body, frozenset({400}), "wrong-type")


def nest(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels of alternating arrays and objects around ``leaf``."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"n": value}
    return value


@st.composite
def deep_requests(draw: st.DrawFn, max_depth: int) -> Generated:
    """A valid body with a deeply nested value somewhere legal (an extension): over the limit → 400."""
    body = draw(valid_body(hook="patient-view"))
    # The body itself is 2 levels deep where the value goes (body → context → value).
    depth = draw(
        st.sampled_from(
            [max_depth - 3, max_depth - 2, max_depth - 1, max_depth, max_depth + 5, max_depth * 4, max_depth * 10]
        )
    )
    body["context"]["extension"] = nest(depth)
    total = depth + 2
    if total > max_depth:
        return Generated(service_of("patient-view"), body, frozenset({400}), "too-deep", "limit-exceeded")
    return Generated(service_of("patient-view"), body, VALID_STATUSES, "deep-but-allowed")


@st.composite
def many_drafts(draw: st.DrawFn, limit: int) -> Generated:
    hook = draw(st.sampled_from(["order-select", "order-sign"]))
    n = draw(st.sampled_from([limit - 1, limit, limit + 1, limit * 3]))
    body = draw(valid_body(hook=hook, drafts=n))
    if n > limit:
        return Generated(service_of(hook), body, frozenset({400}), "too-many-drafts", "limit-exceeded")
    return Generated(service_of(hook), body, VALID_STATUSES, "drafts-at-limit")


@st.composite
def many_prefetch_entries(draw: st.DrawFn, limit: int) -> Generated:
    body = draw(valid_body(hook="patient-view"))
    n = draw(st.sampled_from([limit - 1, limit, limit + 1, limit * 3]))
    obs = draw(observation())
    # Spread over two keys: the limit is on the total, not per key.
    first = n // 2
    body["prefetch"] = {
        "chemistry": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": copy.deepcopy(obs)} for _ in range(first)],
        },
        "cbc": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": copy.deepcopy(obs)} for _ in range(n - first)],
        },
    }
    if n > limit:
        return Generated(service_of("patient-view"), body, frozenset({400}), "too-many-entries", "limit-exceeded")
    return Generated(service_of("patient-view"), body, VALID_STATUSES, "entries-at-limit")


@st.composite
def huge_arrays(draw: st.DrawFn) -> Generated:
    """Huge arrays where the schema allows any array: answered without a 5xx (or 413 when too big)."""
    body = draw(valid_body(hook="patient-view"))
    n = draw(st.sampled_from([1_000, 20_000, 200_000]))
    body["context"]["extension"] = [draw(st.sampled_from([0, "x", None, {}]))] * n
    return Generated(service_of("patient-view"), body, VALID_STATUSES | {413}, "huge-array")


def cds_requests(*, max_depth: int, max_drafts: int, max_entries: int) -> st.SearchStrategy[Generated]:
    """Every kind above, weighted towards the bodies that reach the pipeline."""
    return st.one_of(
        valid_requests(),
        valid_requests(),
        mutated_requests(),
        mutated_requests(),
        mutated_requests(),
        wrong_top_level(),
        deep_requests(max_depth),
        many_drafts(max_drafts),
        many_prefetch_entries(max_entries),
        huge_arrays(),
    )

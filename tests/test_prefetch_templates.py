"""Prefetch templates and their token substitution (CDS Hooks 2.0, "Prefetch tokens")."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cards.knowledge import load_knowledge
from service.hooks.templates import (
    OBSERVATION_KEYS,
    UnresolvableTokenError,
    prefetch_templates,
    substitute,
    template_is_read,
    template_resource_type,
)

CONTEXT = {
    "userId": "Practitioner/doc-1",
    "patientId": "pat-1",
    "encounterId": "enc-9",
    "selections": ["MedicationRequest/m1"],
    "draftOrders": {"resourceType": "Bundle"},
}

KEYS = [
    "patient",
    "immunology",
    "tacrolimusLevels",
    "chemistry",
    "cbc",
    "vitals",
    "pregnancyTests",
    "conditions",
    "medicationRequests",
    "endedMedicationRequests",
    "medicationStatements",
    "immunizations",
    "transferRequests",
    "transferProcedures",
    "transferAppointments",
]


@pytest.mark.parametrize(
    "template, user, expected",
    [
        ("Patient/{{context.patientId}}", None, "Patient/pat-1"),
        ("Encounter/{{context.encounterId}}", None, "Encounter/enc-9"),
        ("Observation?patient={{ context.patientId }}&_count=5", None, "Observation?patient=pat-1&_count=5"),
        ("Practitioner/{{userPractitionerId}}", None, "Practitioner/doc-1"),
        ("PractitionerRole/{{userPractitionerRoleId}}", "PractitionerRole/role-2", "PractitionerRole/role-2"),
        ("Patient/{{userPatientId}}", "Patient/self-3", "Patient/self-3"),
        ("RelatedPerson/{{userRelatedPersonId}}", "RelatedPerson/mum-4", "RelatedPerson/mum-4"),
        (
            "Practitioner/{{userPractitionerId}}",
            "https://ehr.example.org/fhir/Practitioner/doc-5",
            "Practitioner/doc-5",
        ),
        (
            "Condition?patient={{context.patientId}}&encounter={{context.encounterId}}",
            None,
            "Condition?patient=pat-1&encounter=enc-9",
        ),
    ],
    ids=[
        "context.patientId",
        "context.encounterId",
        "spaces-inside-braces",
        "userPractitionerId-from-userId",
        "userPractitionerRoleId",
        "userPatientId",
        "userRelatedPersonId",
        "absolute-userId",
        "two-tokens",
    ],
)
def test_every_2_0_token_is_substituted(template, user, expected):
    """2.0: "{{context.<field>}}" for root-level primitive context fields, and the four user tokens
    derived from userId."""
    assert substitute(template, CONTEXT, user) == expected


@pytest.mark.parametrize(
    "patient_id, expected",
    [
        ("a&_count=100000", "Observation?patient=a%26_count%3D100000&_sort=-date"),
        ("x/../../metadata", "Observation?patient=x%2F..%2F..%2Fmetadata&_sort=-date"),
        ("name with space#frag", "Observation?patient=name%20with%20space%23frag&_sort=-date"),
        ("ünï", "Observation?patient=%C3%BCn%C3%AF&_sort=-date"),
    ],
    ids=["ampersand-cannot-add-parameters", "slashes-cannot-change-path", "space-and-hash", "unicode"],
)
def test_substituted_values_are_percent_encoded(patient_id, expected):
    result = substitute("Observation?patient={{context.patientId}}&_sort=-date", {"patientId": patient_id})
    assert result == expected
    assert parse_qs(urlsplit(result).query)["patient"] == [patient_id]


@pytest.mark.parametrize(
    "template, context, user",
    [
        ("Patient/{{context.missing}}", CONTEXT, None),
        ("MedicationRequest?_id={{context.selections}}", CONTEXT, None),
        ("Bundle/{{context.draftOrders}}", CONTEXT, None),
        ("Patient/{{context.patientId}}", {"patientId": None}, None),
        ("Patient/{{context.patientId}}", {"patientId": ""}, None),
        ("Patient/{{context.patientId}}", {"patientId": ".."}, None),
        ("Practitioner/{{userPractitionerId}}", {"userId": "PractitionerRole/r1"}, None),
        ("Practitioner/{{userPractitionerId}}", {}, None),
        ("RelatedPerson/{{userRelatedPersonId}}", CONTEXT, None),
        ("Observation?date=ge{{today() - 90 days}}", CONTEXT, None),
        ("Patient/{{patientId}}", CONTEXT, None),
        ("Patient/{{context.patientId", CONTEXT, None),
    ],
    ids=[
        "absent-field",
        "selections-is-an-array",
        "draftOrders-is-an-object",
        "null-value",
        "empty-value",
        "dot-segment-value",
        "user-is-not-a-practitioner",
        "no-userId",
        "practitioner-is-not-related-person",
        "3.0-fhirpath-token",
        "unknown-token",
        "unbalanced-braces",
    ],
)
def test_an_unresolvable_token_raises(template, context, user):
    """2.0 allows only root-level primitive context fields; anything else cannot be filled, and the
    key must then count as unfetchable rather than be queried with the token left in."""
    with pytest.raises(UnresolvableTokenError):
        substitute(template, context, user)


def test_substitute_is_pure():
    context = dict(CONTEXT)
    assert substitute("Patient/{{context.patientId}}", context) == substitute("Patient/{{context.patientId}}", context)
    assert context == CONTEXT


def test_shipped_templates_keep_every_key_and_are_bounded():
    templates = prefetch_templates(load_knowledge())
    assert list(templates) == KEYS
    for key, template in templates.items():
        if not template_is_read(template):
            assert "_count=" in template, key
    for key in OBSERVATION_KEYS:
        assert templates[key].startswith("Observation?patient={{context.patientId}}&code=")
        assert templates[key].endswith(f"&_sort=-date&_count={OBSERVATION_KEYS[key]}")


CODES = {
    "observations": {
        "creatinine": {
            "group": "chemistry",
            "canonical_unit": "mg/dL",
            "codes": [
                {"system": "http://loinc.org", "code": "2160-0"},
                {"system": "http://lab.example.org", "code": "CREA&1"},
            ],
        },
        "potassium": {"group": "chemistry", "codes": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "th1_th2_ratio": {
            "group": "immunology",
            "codes": [{"system": "http://example.org/fhir/CodeSystem/tacro-cds", "code": "th1-th2-ratio"}],
        },
        "tacrolimus": {
            "group": "tacrolimusLevels",
            "codes": [{"system": "http://loinc.org", "code": "77348-1", "timing": "trough"}],
        },
        "hemoglobin": {"group": "cbc", "codes": [{"system": "http://loinc.org", "code": "718-7"}]},
        "blood_pressure": {
            "group": "vitals",
            "codes": [{"system": "http://loinc.org", "code": "85354-9", "role": "panel"}],
        },
        "hcg": {"group": "pregnancyTests", "codes": [{"system": "http://loinc.org", "code": "21198-7"}]},
    },
    "transfer": {
        "standard": [{"system": "http://site.example.org/cs", "code": "ET"}],
        "euploid": [{"system": "http://site.example.org/cs", "code": "ET-PGT"}],
    },
}


def with_codes(codes: dict[str, Any]) -> dict[str, Any]:
    """The shipped knowledge with its observation and transfer codes replaced by ``codes``'s (each
    observation given the unit and source every entry carries)."""
    knowledge = copy.deepcopy(load_knowledge())
    knowledge["codes"]["observations"] = {
        concept: {"canonical_unit": None, "source": "test", **entry} for concept, entry in codes["observations"].items()
    }
    knowledge["codes"]["transfer"] = codes["transfer"]
    return knowledge


def test_templates_come_from_the_codes_table_grouped_by_concept_group():
    templates = prefetch_templates(with_codes(CODES))
    assert list(templates) == KEYS
    chemistry = parse_qs(urlsplit(templates["chemistry"]).query)
    assert chemistry["code"] == [
        "http://loinc.org|2160-0,http://lab.example.org|CREA&1,http://loinc.org|2823-3"
    ]  # "&" stayed in the value
    assert chemistry["_sort"] == ["-date"] and chemistry["_count"] == ["200"]
    # Sent percent-encoded whole, so no proxy can collapse "//" in the query (servers decode it).
    assert "code=http%3A%2F%2Floinc.org%7C77348-1&" in templates["tacrolimusLevels"]
    assert (
        "code=http%3A%2F%2Fsite.example.org%2Fcs%7CET,http%3A%2F%2Fsite.example.org%2Fcs%7CET-PGT&"
        in templates["transferRequests"]
    )
    assert "service-type=http%3A%2F%2Fsite.example.org%2Fcs%7CET," in templates["transferAppointments"]
    assert all("//" not in query for query in templates.values())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"creatinine": {"group": "labs", "codes": [{"system": "s", "code": "c"}]}}, "group 'labs'"),
        # The only cbc concept moved to another key (an entry with no codes at all the model refuses).
        ({"hemoglobin": {"group": "chemistry", "codes": [{"system": "http://loinc.org", "code": "718-7"}]}}, "cbc"),
    ],
    ids=["unknown-group", "group-left-empty"],
)
def test_a_codes_table_that_leaves_a_key_wrong_fails_at_start_up(change, message):
    codes = {**CODES, "observations": {**CODES["observations"], **change}}
    with pytest.raises(ValueError, match=message):
        prefetch_templates(with_codes(codes))


@pytest.mark.parametrize(
    "template, kind, is_read",
    [
        ("Patient/{{context.patientId}}", "Patient", True),
        ("Observation?patient=x", "Observation", False),
        ("Condition?patient=x/y", "Condition", False),
    ],
)
def test_template_shape(template, kind, is_read):
    assert template_resource_type(template) == kind
    assert template_is_read(template) is is_read


# -- every 2.0 token, in a read template and in a search template ----------------------------------
#
# CDS Hooks 2.0.1, "Prefetch tokens identifying the user": the template "{{context.userId}}" is a
# FHIR read of the user's resource (userId holds "Type/id", e.g. PractitionerRole/r9), {{context.patientId}}
# and {{context.encounterId}} for ids, and the four user tokens for the id part of userId when it is
# of their type. A reference keeps its "/" where a reference belongs; an id never gains one.

USERS = {
    "userPractitionerId": "Practitioner/p1",
    "userPractitionerRoleId": "PractitionerRole/r9",
    "userPatientId": "Patient/pt1",
    "userRelatedPersonId": "RelatedPerson/rp1",
}


@pytest.mark.parametrize(
    "token, user_id, read, read_query, search, search_query",
    [
        (
            "context.userId",
            "PractitionerRole/r9",
            "{{context.userId}}",
            "PractitionerRole/r9",
            "Observation?performer={{context.userId}}",
            "Observation?performer=PractitionerRole/r9",
        ),
        (
            "context.patientId",
            "Practitioner/p1",
            "Patient/{{context.patientId}}",
            "Patient/pat-1",
            "Observation?patient={{context.patientId}}",
            "Observation?patient=pat-1",
        ),
        (
            "context.encounterId",
            "Practitioner/p1",
            "Encounter/{{context.encounterId}}",
            "Encounter/enc-9",
            "Observation?encounter={{context.encounterId}}",
            "Observation?encounter=enc-9",
        ),
        *[
            (
                token,
                user_id,
                f"{user_id.split('/')[0]}/{{{{{token}}}}}",
                user_id,
                f"{user_id.split('/')[0]}?_id={{{{{token}}}}}",
                f"{user_id.split('/')[0]}?_id={user_id.split('/')[1]}",
            )
            for token, user_id in USERS.items()
        ],
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith(("context.", "user")) and "/" not in v else "",
)
def test_every_2_0_token_in_a_read_and_a_search_template(token, user_id, read, read_query, search, search_query):
    context = {**CONTEXT, "userId": user_id}
    assert substitute(read, context) == read_query
    assert template_is_read(read) and template_is_read(read_query)
    assert substitute(search, context) == search_query
    assert not template_is_read(search)


def test_a_user_id_read_template_names_its_type_once_substituted():
    assert (
        template_resource_type(substitute("{{context.userId}}", {"userId": "PractitionerRole/r9"}))
        == "PractitionerRole"
    )


@pytest.mark.parametrize(
    "template, user_id",
    [
        ("{{context.userId}}", "r9"),
        ("{{context.userId}}", "PractitionerRole/r9/_history/1"),
        ("{{context.userId}}", "PractitionerRole/.."),
        ("{{context.patientId}}", None),
    ],
    ids=["bare-id", "more-segments", "dot-segment", "an-id-is-not-a-reference"],
)
def test_a_whole_path_token_must_be_one_type_and_id(template, user_id):
    context = {**CONTEXT, "userId": user_id} if user_id else CONTEXT
    with pytest.raises(UnresolvableTokenError):
        substitute(template, context)


def test_a_reference_value_inside_a_path_is_still_one_encoded_segment():
    assert substitute("Patient/{{context.patientId}}", {"patientId": "Patient/x"}) == "Patient/Patient%2Fx"


def test_a_codes_table_without_transfer_codes_fails_at_start_up():
    with pytest.raises(ValueError, match="codes.transfer"):
        prefetch_templates(with_codes({**CODES, "transfer": {"standard": [], "euploid": []}}))

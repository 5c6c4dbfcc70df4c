"""What the service implements of CDS Hooks 3.0 (ballot and post-ballot text) beside 2.0.1, each
test naming the clause. The README's "CDS Hooks versions" section is the reader's view of this."""

from __future__ import annotations

import pytest

from service.services import CDS_HOOKS_VERSION, HOOK_VERSIONS

# The fields of a 2.0 discovery entry ("Discovery", CDS Service): a 2.0 client knows only these.
FIELDS_2_0 = {"hook", "id", "title", "description", "prefetch", "usageRequirements"}


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def test_discovery_names_the_specification_and_hook_versions(client):
    """3.0 ballot, "Discovery": each CDS Service SHOULD give the specification ``version`` it
    implements (semver in the post-ballot text) and MAY give the ``hookVersion`` of the hook's
    definition in the Hooks Library (1.0 for order-select, order-sign and patient-view)."""
    services = client.get("/cds-services").get_json()["services"]
    assert {s["hook"]: (s["version"], s["hookVersion"]) for s in services} == {
        "order-select": ("2.0.1", "1.0"), "order-sign": ("2.0.1", "1.0"), "patient-view": ("2.0.1", "1.0")}
    assert CDS_HOOKS_VERSION == "2.0.1" and set(HOOK_VERSIONS) == {s["hook"] for s in services}


def test_a_2_0_client_sees_the_same_entries_as_before(client):
    """2.0.1, "Discovery": a client reads hook, id, title, description, prefetch and
    usageRequirements; the public sandbox copies each entry as it is and reads only those, so the
    two 3.0 fields are the only additions and every 2.0 field keeps its form."""
    for service in client.get("/cds-services").get_json()["services"]:
        assert set(service) - FIELDS_2_0 == {"version", "hookVersion"}
        assert isinstance(service["hook"], str) and isinstance(service["id"], str)
        assert isinstance(service["description"], str) and isinstance(service["prefetch"], dict)
        assert all(isinstance(q, str) for q in service["prefetch"].values())

"""fhir_fixtures/EXPECTED.md, the scenario -> (card kind, indicator, verdict) table a clinician
reviews, is what the service decides today, and it agrees with the golden responses card by card."""

from __future__ import annotations

import json

import pytest

from cards.vocab import card_family
from fhir_fixtures import FIXTURES_DIR
from fhir_fixtures.expected import TABLE, markdown, rows


@pytest.fixture(scope="module")
def table():
    return rows()


def test_the_table_is_what_the_service_decides(table):
    assert TABLE.read_text(encoding="utf-8") == markdown(table), (
        "fhir_fixtures/EXPECTED.md differs from the service's decisions: if the change is intended, "
        "run python -m fhir_fixtures.expected --write and review the diff"
    )


def test_the_table_and_the_goldens_agree(table):
    """Per scenario and hook, the golden response has the table's cards: as many, in the same order,
    with the same indicators and the topic of the same card family."""
    by_case: dict[tuple[str, str], list] = {}
    for row in table:
        by_case.setdefault((row.scenario, row.hook), [])
        if row.kind is not None:
            by_case[(row.scenario, row.hook)].append(row)
    for (scenario, hook), cards in by_case.items():
        golden = json.loads((FIXTURES_DIR / scenario / "expected" / f"{hook}.response.json").read_text("utf-8"))
        answered = golden["cards"]
        assert [c["indicator"] for c in answered] == [r.indicator for r in cards], (scenario, hook)
        for card, row in zip(answered, cards, strict=True):
            topic = card["source"].get("topic")
            if topic is not None:
                assert topic["code"] == card_family(row.kind), (scenario, hook, row.kind)


def test_a_changed_decision_shows_in_the_table(table):
    """The check can fail: one verdict changed is one row changed."""
    first = next(r for r in table if r.kind is not None)
    changed = [r if r is not first else type(r)(r.scenario, r.hook, r.kind, r.indicator, "other") for r in table]
    assert markdown(changed) != markdown(table)
    assert sum(a != b for a, b in zip(markdown(changed).splitlines(), markdown(table).splitlines(), strict=True)) == 1

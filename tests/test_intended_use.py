"""docs/intended-use.md: its evidence table is what the fixture scenarios produce today, and its list
of numbers to confirm is the knowledge base's; it makes no claim of regulatory clearance."""

from __future__ import annotations

import re
from pathlib import Path

from cards.knowledge import load_knowledge
from fhir_fixtures import FIXTURES_DIR, scenario_dirs
from service.review.rulebook import confirm_list, evidence_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "intended-use.md"


def _between(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def test_the_evidence_table_is_what_the_scenarios_produce():
    """Regenerate with ``service.review.rulebook.evidence_table(FIXTURES_DIR, load_knowledge())``."""
    assert _between("evidence") == evidence_table(FIXTURES_DIR, load_knowledge())


def test_the_evidence_table_has_every_scenario_and_the_ones_without_cards():
    table = _between("evidence")
    for scenario in scenario_dirs():
        assert f"| `{scenario.name}` |" in table
    assert "| `trough-in-range` |" in table and "no card | no card | no card" in table
    assert re.search(r"\| `trough-critical` \|[^\n]*critical trough", table)


def test_the_numbers_to_confirm_are_the_knowledge_bases():
    assert _between("confirm") == confirm_list(load_knowledge())


def test_no_claim_of_regulatory_clearance():
    text = DOC.read_text(encoding="utf-8").lower()
    for claim in ("fda", "ce mark", "cleared", "certified", "approved", "510(k)", "compliant"):
        assert claim not in text, claim

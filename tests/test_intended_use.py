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


def _rewrite(name: str, text: str) -> None:
    whole = DOC.read_text(encoding="utf-8")
    head, rest = whole.split(f"<!-- {name}:start -->\n", 1)
    tail = rest.split(f"<!-- {name}:end -->", 1)[1]
    DOC.write_text(f"{head}<!-- {name}:start -->\n{text}<!-- {name}:end -->{tail}", encoding="utf-8")


def test_the_evidence_table_is_what_the_scenarios_produce(request):
    """``pytest --update-goldens`` rewrites the table (as it does the golden responses): read the diff."""
    table = evidence_table(FIXTURES_DIR, load_knowledge())
    if request.config.getoption("--update-goldens"):
        _rewrite("evidence", table)
    assert _between("evidence") == table


def test_the_evidence_table_has_every_scenario_and_the_ones_without_cards():
    table = _between("evidence")
    for scenario in scenario_dirs():
        assert f"| `{scenario.name}` |" in table
    assert "| `trough-in-range` |" in table and "no card | no card | no card" in table
    assert re.search(r"\| `trough-critical` \|[^\n]*critical trough", table)


def test_the_numbers_to_confirm_are_the_knowledge_bases(request):
    listed = confirm_list(load_knowledge())
    if request.config.getoption("--update-goldens"):
        _rewrite("confirm", listed)
    assert _between("confirm") == listed


def test_no_claim_of_regulatory_clearance():
    text = DOC.read_text(encoding="utf-8").lower()
    for claim in ("fda", "ce mark", "cleared", "certified", "approved", "510(k)", "compliant"):
        # Whole words: "timeOfDay" holds the letters of "fda".
        assert not re.search(rf"(?<![a-z]){re.escape(claim)}(?![a-z])", text), claim

"""cards/ reads no clock (the rules take today's date as an argument) and handles no FHIR resource.
(What cards/ may import is an import-linter contract in setup.cfg, checked by .ci/run.)"""

import ast
from pathlib import Path

import pytest

CARDS = Path(__file__).resolve().parent.parent / "cards"
FORBIDDEN_CALLS = {"now", "today", "utcnow"}


def _py_files():
    return sorted(CARDS.rglob("*.py"))


@pytest.mark.parametrize("path", _py_files(), ids=lambda p: str(p.relative_to(CARDS)))
def test_cards_module_reads_no_clock(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno} reads the clock"


@pytest.mark.parametrize("path", _py_files(), ids=lambda p: str(p.relative_to(CARDS)))
def test_cards_module_builds_and_reads_no_fhir_resource(path):
    """The rules decide typed proposals; service.hooks.orders writes the resources (no "resourceType" here)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Constant) and node.value == "resourceType"), (
            f"{path.name}:{node.lineno} handles a FHIR resource"
        )

"""cards/ is pure: no Flask, requests, service, clock or uuid (the one direction of dependency: service imports cards)."""

import ast
from pathlib import Path

import pytest

CARDS = Path(__file__).resolve().parent.parent / "cards"
FORBIDDEN_MODULES = {"flask", "requests", "service", "uuid", "sqlalchemy", "werkzeug", "time", "random"}
FORBIDDEN_CALLS = {"now", "today", "utcnow"}


def _py_files():
    return sorted(CARDS.rglob("*.py"))


@pytest.mark.parametrize("path", _py_files(), ids=lambda p: str(p.relative_to(CARDS)))
def test_cards_module_is_pure(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        assert not set(names) & FORBIDDEN_MODULES, f"{path.name}:{node.lineno} imports {names}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno} reads the clock"

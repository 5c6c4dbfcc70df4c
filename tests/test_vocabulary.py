"""One vocabulary: a hook name, a service id, a prefetch key or a card family is written as a literal
in cards/vocab.py only; every other module of service/ and cards/ imports the name.

The scan reads the source with ast. A string used to look something up in data (``table["care"]``,
``entry.get("timing")``) is a key of a knowledge table or a FHIR resource that happens to be spelled
like one of our words, not a use of the word: it is not counted. The few remaining literals that mean
something else are listed below, each with what it means there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cards import vocab

ROOT = Path(__file__).resolve().parent.parent
VOCABULARY_MODULE = "cards/vocab.py"
WORDS = frozenset({*vocab.HOOKS, *vocab.SERVICE_IDS.values(), *vocab.DATA_GROUPS, *vocab.CARD_FAMILIES})

# (module, word): why the literal there is not the vocabulary's word.
OTHER_MEANINGS: dict[tuple[str, str], str] = {
    ("cards/units.py", vocab.FAMILY_DOSE): "a unit dimension (mg) of a dose, not the card family",
    ("cards/dosage.py", vocab.FAMILY_DOSE): "the unit dimension a dose is converted in",
    ("cards/evaluate.py", vocab.FAMILY_DOSE): "the check's name in words, shown when it could not run",
    ("cards/facts.py", vocab.FAMILY_TROUGH): "an Observation's timing (drawn as a trough)",
    ("cards/rules/trough.py", vocab.FAMILY_TROUGH): "an Observation's timing (drawn as a trough)",
    ("cards/knowledge.py", vocab.FAMILY_CARE): "the name of the care knowledge table",
    ("cards/site_merge.py", vocab.FAMILY_CARE): "the name of the care knowledge table",
    ("cards/site_merge.py", vocab.CONDITIONS): "the conditions section of the codes table",
    ("cards/rules/interactions/decide.py", vocab.FAMILY_INTERACTION): "a verdict of the interaction card",
    (
        "cards/rules/interactions/decide.py",
        vocab.PATIENT_VIEW,
    ): "a dose plan's problem in a Literal type (no name allowed)",
    ("cards/rules/interactions/render.py", vocab.PATIENT_VIEW): "a dose plan's problem, as decided",
    ("service/hooks/extract/codes.py", vocab.FAMILY_TROUGH): "an Observation's timing, a value of codes.yaml",
    ("service/smart_app/page.py", vocab.FAMILY_ELIGIBILITY): "a section of the protocol table read",
    ("service/smart_app/page.py", vocab.FAMILY_TROUGH): "a section of the protocol table read",
    ("service/smart_app/page.py", vocab.FAMILY_SAFETY): "a section of the protocol table read",
    ("service/smart_app/charts.py", vocab.FAMILY_TROUGH): "the id of the trough chart in the page",
    ("service/cli/knowledge.py", vocab.FAMILY_ELIGIBILITY): "a section of the protocol table printed",
    ("service/cli/knowledge.py", vocab.FAMILY_TIMING): "a section of the protocol table printed",
    ("service/cli/knowledge.py", vocab.FAMILY_TROUGH): "a section of the protocol table printed",
    ("service/cli/knowledge.py", vocab.FAMILY_SAFETY): "a section of the protocol table printed",
    ("service/smart_app/page.py", vocab.FAMILY_DOSE): "a column of the SMART app's medication table",
    ("service/ops/logs.py", vocab.PATIENT): "a JSON field name kept out of the logs",
    ("service/hooks/extract/__init__.py", vocab.PATIENT): "a FHIR resource's patient field",
    ("service/smart_app/oauth.py", vocab.PATIENT): "the SMART launch context's patient field",
    ("service/smart_app/record.py", vocab.PATIENT): "the SMART token's patient field",
    ("service/config/settings.py", vocab.PATIENT): "the SMART launch context requested",
}


def _modules() -> list[Path]:
    return sorted(p for top in ("service", "cards") for p in (ROOT / top).rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _lookup_keys(tree: ast.AST) -> set[int]:
    """Constants used as a key to read data: ``x["k"]``, ``x.get("k")``, ``x.setdefault("k", ...)``."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            ids.add(id(node.slice))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"get", "setdefault", "pop"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            ids.add(id(node.args[0]))
    return ids


def literal_uses(path: Path) -> list[tuple[int, str]]:
    """(line, word) for each literal of a vocabulary word in one module, kinds ("family:detail") and
    f-string parts ("interaction:" in f"interaction:{drug}") included. A kind is reported as
    ``family:``, so no other meaning below excuses it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree) | _lookup_keys(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in skip:
            continue
        text = node.value
        if text in WORDS:
            found.append((node.lineno, text))
        elif ":" in text and text.split(":", 1)[0] in WORDS:
            found.append((node.lineno, text.split(":", 1)[0] + ":"))
    return found


def test_each_word_is_written_once_in_the_vocabulary_module():
    defined = [word for _, word in literal_uses(ROOT / VOCABULARY_MODULE)]  # no kind there either
    assert sorted(defined) == sorted(WORDS), "cards/vocab.py writes each word exactly once"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_repeats_a_word_of_the_vocabulary(path):
    name = path.relative_to(ROOT).as_posix()
    if name == VOCABULARY_MODULE:
        return
    repeated = [f"{name}:{line}: {word!r}" for line, word in literal_uses(path) if (name, word) not in OTHER_MEANINGS]
    assert not repeated, "import the name from cards.vocab instead:\n" + "\n".join(repeated)


def test_the_scan_finds_a_repeated_word(tmp_path):
    """The check can fail: a module that writes a hook name, a kind and a prefetch key is caught."""
    module = tmp_path / "m.py"
    module.write_text(
        '"""order-select in a docstring is prose."""\n'
        'HOOK = "order-select"\n'
        'KIND = f"interaction:{1}"\n'
        'value = table["chemistry"]\n'
        'KEYS = ("chemistry",)\n',
        encoding="utf-8",
    )
    assert literal_uses(module) == [(2, vocab.ORDER_SELECT), (3, "interaction:"), (5, vocab.CHEMISTRY)]

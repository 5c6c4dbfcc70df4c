"""Remembered recognitions (cards/recognise.py): the same answer as recognising afresh, and a
bounded memory."""

from __future__ import annotations

import pytest

from cards import recognise
from cards.knowledge import load_knowledge
from cards.knowledge_model import typed
from cards.recognise import DrugRecogniser

ORDERS = [
    ((), ("fluconazole 150 mg capsule",)),
    (("4450",), ("Diflucan",)),
    ((), ("tacrolimus 1 mg capsule", "2 mg once daily")),
    ((), ("Advagraf 1 mg prolonged-release capsule",)),
    ((), ("progesterone 200 mg vaginal capsule",)),
    ((), ("fluc\u043enazole 150 mg",)),  # a Cyrillic o: not recognised, reported
    ((), ()),
]


def _recogniser() -> DrugRecogniser:
    return DrugRecogniser.from_codes(typed(load_knowledge()).codes)


@pytest.mark.parametrize(("codes", "texts"), ORDERS)
def test_a_remembered_answer_is_the_answer_of_a_fresh_recogniser(codes, texts):
    warm = _recogniser()
    first = warm.recognise(list(codes), list(texts))
    assert warm.recognise(list(codes), list(texts)) is first  # remembered
    assert first == _recogniser().recognise(list(codes), list(texts))
    ingredients = first.ingredients or ("tacrolimus",)
    release = warm.release_in(list(texts), ingredients)
    assert warm.release_in(list(texts), ingredients) == release == _recogniser().release_in(texts, ingredients)


def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(recognise, "REMEMBERED_ANSWERS", 3)
    rec = _recogniser()
    for i in range(10):
        rec.recognise([], [f"drug {i}"])
        rec.release_in([f"drug {i}"], ["tacrolimus"])
    assert len(rec._recognised) <= 3
    assert len(rec._releases) <= 3

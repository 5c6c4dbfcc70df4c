"""What the rules derive from one call's facts is kept on the facts (``PatientFacts.derived``, the
index by ingredient): computed once, never a field, never carried to other facts."""

from __future__ import annotations

from dataclasses import replace

from cards.facts import MedicationFact, PatientFacts


def _order(source: str, *ingredients: str) -> MedicationFact:
    return MedicationFact(
        source=source,
        resource_type="MedicationRequest",
        status="active",
        display=source,
        ingredients=ingredients,
        recognised_by="text",
        matched=None,
    )


def test_a_derivation_is_computed_once_per_key() -> None:
    facts = PatientFacts(hook="patient-view", patient_id="p1")
    calls: list[str] = []

    def compute(name: str) -> str:
        calls.append(name)
        return name.upper()

    assert facts.derived(("a",), lambda: compute("a")) == "A"
    assert facts.derived(("a",), lambda: compute("a")) == "A"
    assert facts.derived(("b", 1), lambda: compute("b")) == "B"
    assert calls == ["a", "b"]


def test_other_facts_start_afresh_and_equality_ignores_what_was_derived() -> None:
    orders = (_order("MedicationRequest/1", "tacrolimus"), _order("MedicationRequest/2", "fluconazole", "tacrolimus"))
    facts = PatientFacts(hook="patient-view", patient_id="p1", medications=orders)
    assert facts.medications_with("tacrolimus") == orders
    assert facts.medications_with("fluconazole") == orders[1:]
    assert facts.medications_with("sirolimus") == ()
    facts.derived(("x",), lambda: 1)
    fresh = replace(facts)
    assert fresh == facts and repr(fresh) == repr(facts)
    assert fresh.derived(("x",), lambda: 2) == 2
    changed = replace(facts, medications=orders[:1])
    assert changed.medications_with("fluconazole") == ()

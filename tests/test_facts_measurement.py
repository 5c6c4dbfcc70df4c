"""``Measurement``'s and ``MedicationFact``'s written-out ``__init__`` is the dataclass's: same
parameters, same defaults, same instance, still frozen."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from cards.facts import Measurement, MedicationFact


@pytest.mark.parametrize("cls", [Measurement, MedicationFact])
def test_init_parameters_are_the_fields_in_order_with_their_defaults(cls: type) -> None:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert f.default_factory is dataclasses.MISSING
        assert p.default == expected, f.name
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


def test_an_instance_holds_every_field_and_stays_frozen() -> None:
    when = datetime(2026, 11, 20, tzinfo=UTC)
    m = Measurement("creatinine", "Observation/1", "http://loinc.org|2160-0", "final", when, 0.9, "mg/dL", "0.9")
    assert vars(m) == {f.name: getattr(m, f.name) for f in dataclasses.fields(Measurement)}
    assert m.problem is None and m.derived_from == () and m.conflicts_with == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.value = 1.0  # type: ignore[misc]
    other = dataclasses.replace(m, conflicts_with=("Observation/2",))
    assert other.conflicts_with == ("Observation/2",) and other.value == 0.9 and other != m
    assert m == Measurement(
        concept="creatinine",
        source="Observation/1",
        code="http://loinc.org|2160-0",
        status="final",
        when=when,
        value=0.9,
        unit="mg/dL",
        shown="0.9",
    )
    assert hash(m) == hash(dataclasses.replace(m))
    assert repr(m).startswith("Measurement(concept='creatinine', source='Observation/1'")


def test_a_medication_fact_holds_every_field_and_stays_frozen() -> None:
    m = MedicationFact("MedicationRequest/1", "MedicationRequest", "active", "tacrolimus", ("tacrolimus",), None, None)
    assert vars(m) == {f.name: getattr(m, f.name) for f in dataclasses.fields(MedicationFact)}
    assert m.timing_rewritable is True and m.key == "" and m.dosage_timings == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.status = "stopped"  # type: ignore[misc]
    keyed = dataclasses.replace(m, key="MedicationRequest/1#2", daily_dose_mg=2.0)
    assert keyed.daily_dose_mg == 2.0 and keyed != m and dataclasses.replace(keyed, daily_dose_mg=None) == m
    assert hash(m) == hash(dataclasses.replace(m, key="other"))  # the key is not compared
    assert repr(m).startswith("MedicationFact(source='MedicationRequest/1', resource_type='MedicationRequest'")

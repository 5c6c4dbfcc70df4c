"""Request bodies of the side-by-side bench (bench/side_by_side.py), built from the fixture recipes.

A woman with RIF on tacrolimus, followed for a year: ``observations`` monitoring results spread
evenly over the 365 days before the scenario date (creatinine, potassium, glucose, tacrolimus
troughs, CBC, liver tests, blood pressure panels, HbA1c, Th1/Th2 panels, in that rotation), and
``medications`` active MedicationRequests (tacrolimus and the usual IVF support drugs). The
prefetch is what a FHIR server answers for the service's own prefetch templates over her record
(``fhir_fixtures.matcher``), except that ``_count`` is not applied: the body holds her whole history,
which is what the history sizes measure. The service accepts at most ``MAX_PREFETCH_ENTRIES``
prefetch entries (5,000); a history is cut to fit, and its name says how many Observations it holds.

    year_of_monitoring("order-select")       # ~140 KiB: 180 Observations, 25 MedicationRequests
    year_of_monitoring("order-select", cards=True)  # the same year, ending with cards to issue
    history("patient-view", 5000)            # as many Observations as fit the entry limit
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cards.knowledge import load_knowledge
from fhir_fixtures.build import build_request
from fhir_fixtures.scenarios import Dose, Scenario
from service.config import default_settings
from service.hooks.templates import prefetch_templates

SERVICE_FOR_HOOK = {"order-select": "tacrolimus-order-select", "patient-view": "tacrolimus-patient-view"}

# (OBS key, unit, value) in the order a monitoring visit rotates through them.
MONITORING: list[tuple[str, str | None, float | None]] = [
    ("creatinine", "mg/dL", 0.72),
    ("potassium", "mmol/L", 4.2),
    ("glucose", "mg/dL", 91.0),
    ("trough", "ng/mL", 6.2),
    ("hemoglobin", "g/dL", 12.8),
    ("platelets", "10*3/uL", 240.0),
    ("alt", "U/L", 19.0),
    ("ast", "U/L", 22.0),
    ("bp", None, None),
    ("wbc", "10*3/uL", 6.1),
    ("hba1c", "%", 5.3),
    ("ratio", "{ratio}", 12.6),
]
# Active support drugs of an IVF cycle, recorded as text (no RxNorm code), besides tacrolimus.
SUPPORT_DRUGS = [
    "progesterone 200 mg vaginal capsule",
    "estradiol valerate 2 mg tablet",
    "folic acid 0.4 mg tablet",
    "aspirin 81 mg tablet",
    "prenatal multivitamin tablet",
    "vitamin D3 1000 unit tablet",
]
YEAR_OBSERVATIONS = 180
YEAR_MEDICATIONS = 25


def _scenario(hook: str, observations: int, medications: int, *, cards: bool = False) -> Scenario:
    s = Scenario(f"bench-{hook}", "A year of monitoring on tacrolimus", "Bench", "Fixture-Year", "1989-05-20")
    s.rif()
    s.transfer(-200)
    s.medication(
        "tacrolimus_1mg",
        Dose(2, "{capsule}", start=-330, text="2 mg once daily after dinner"),
        authored=-331,
        text="tacrolimus 1 mg capsule",
    )
    for i in range(medications - 1):
        s.medication(
            None,
            Dose(1, "{tablet}", start=-300 + i),
            text=SUPPORT_DRUGS[i % len(SUPPORT_DRUGS)],
            authored=-301 + i,
            status="active" if i % 4 else "on-hold",
        )
    for i in range(observations):
        key, unit, value = MONITORING[i % len(MONITORING)]
        days = -1 - (364 * i) // max(observations - 1, 1)
        wobble = (i % 7) * 0.01
        if key == "bp":
            s.bp(118 + i % 9, 74 + i % 5, days=days)
        elif key == "ratio":
            s.ratio(12.6, 25.2, 2.0, days=days)
        else:
            assert unit is not None and value is not None
            s.obs(key, round(value * (1 + wobble), 3), unit, days=days, hour=7)
    if cards:
        # Something to say: fluconazole started last week (an interaction with tacrolimus) and a
        # trough two days ago well above the target range.
        s.medication("fluconazole", Dose(50, start=-5), authored=-6)
        s.obs("trough", 16.2, "ng/mL", days=-2, hour=7)
    if hook == "order-select":
        # A dose change drafted today: the order being selected.
        s.medication(
            "tacrolimus_1mg",
            Dose(3, "{capsule}", start=1, text="3 mg once daily after dinner"),
            draft=True,
            select=True,
            text="tacrolimus 1 mg capsule",
        )
    return s


_COUNT = re.compile(r"&_count=\d+")


def _without_count(templates: dict[str, str]) -> dict[str, str]:
    return {key: _COUNT.sub("", query) for key, query in templates.items()}


def year_of_monitoring(
    hook: str, observations: int = YEAR_OBSERVATIONS, medications: int = YEAR_MEDICATIONS, *, cards: bool = False
) -> dict[str, Any]:
    """A complete, prefetched request for ``hook`` (order-select or patient-view); with ``cards``, a
    year that ends with an interacting drug and a high trough, so the service has cards to issue."""
    s = _scenario(hook, observations, medications, cards=cards)
    context = s.scenario_file()["hooks"][hook]["context"]
    templates = _without_count(prefetch_templates(load_knowledge()))
    return build_request(s.name, hook, context, templates, [s.patient_resource(), *s.resources])


def prefetch_entries(body: dict[str, Any]) -> int:
    """Entries of every searchset in the prefetch (what MAX_PREFETCH_ENTRIES bounds)."""
    return sum(len(v.get("entry") or []) for v in (body.get("prefetch") or {}).values() if isinstance(v, dict))


def observations_in(body: dict[str, Any]) -> int:
    return sum(
        1
        for v in (body.get("prefetch") or {}).values()
        if isinstance(v, dict)
        for e in v.get("entry") or []
        if e.get("resource", {}).get("resourceType") == "Observation"
    )


def history(hook: str, observations: int) -> dict[str, Any]:
    """The year of monitoring with ``observations`` Observations, cut to the prefetch entry limit."""
    body = year_of_monitoring(hook, observations)
    excess = prefetch_entries(body) - default_settings().max_prefetch_entries
    if excess > 0:
        body = year_of_monitoring(hook, observations - excess)
    return body


@dataclass(frozen=True)
class Body:
    """One named request body and the service that answers it."""

    name: str
    hook: str
    payload: bytes

    @property
    def service(self) -> str:
        return SERVICE_FOR_HOOK[self.hook]

    @property
    def path(self) -> str:
        return f"/cds-services/{self.service}"

    def describe(self) -> str:
        body = json.loads(self.payload)
        meds = len((body["prefetch"].get("medicationRequests") or {}).get("entry") or [])
        return (
            f"{self.name}: {self.hook}, {observations_in(body)} Observations, {meds} MedicationRequests, "
            f"{len(self.payload) / 1024:.0f} KiB"
        )


def _compact(body: dict[str, Any]) -> bytes:
    """JSON as an EHR sends it: no indentation, no spaces after separators."""
    return json.dumps(body, separators=(",", ":")).encode()


HISTORY_SIZES = (50, 500, 5000)
BODY_NAMES = (
    ["order-select", "patient-view"]
    + [f"{hook}-cards" for hook in SERVICE_FOR_HOOK]
    + [f"history-{n}-{hook}" for n in HISTORY_SIZES for hook in SERVICE_FOR_HOOK]
)


def build_body(name: str) -> Body:
    """``order-select`` / ``patient-view`` (the year of monitoring), ``<hook>-cards`` (the year, ending
    with cards to issue) or ``history-<N>-<hook>``."""
    if name in SERVICE_FOR_HOOK:
        return Body(name, name, _compact(year_of_monitoring(name)))
    if name.removesuffix("-cards") in SERVICE_FOR_HOOK:
        hook = name.removesuffix("-cards")
        return Body(name, hook, _compact(year_of_monitoring(hook, cards=True)))
    match = re.fullmatch(r"history-(\d+)-(order-select|patient-view)", name)
    if not match:
        raise ValueError(f"unknown body {name!r}: one of {', '.join(BODY_NAMES)} (or history-<N>-<hook>)")
    hook = match.group(2)
    return Body(name, hook, _compact(history(hook, int(match.group(1)))))

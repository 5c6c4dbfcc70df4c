"""Every suggested MedicationRequest, over every fixture scenario and hook, is an order a pharmacist can
sign: a fresh draft when it replaces an order (no business identifier or order date copied), no start
in the past, a dose per administration the product's strength can give, and a sig text that names that
dose and the product's form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import counting_uuids

from cards.dosage import COUNT_UNITS
from cards.knowledge import load_knowledge
from fhir_fixtures import hook_cases, load_request, scenario_clock
from service import create_app

CASES = hook_cases()
PRODUCTS = {str(p["rxnorm"]): p for p in load_knowledge()["codes"]["products"]}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
FORMS = ("capsule", "tablet", "granules")
CHECKED: list[str] = []
REPLACED: list[str] = []  # cases with a suggestion that creates one order and deletes another


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    made: dict[Any, Any] = {}

    def get(scenario: str) -> tuple[Any, dict[str, str]]:
        clock = scenario_clock(scenario)
        if clock not in made:
            app = create_app(
                {
                    "AUTH_REQUIRED": False,
                    "LOG_LEVEL": "WARNING",
                    "SMART_APP_ENABLED": False,
                    "FEEDBACK_DB": f"sqlite:///{tmp_path_factory.mktemp('orders') / 'f.sqlite'}",
                },
                uuid_factory=counting_uuids(),
                clock=lambda: clock,
            )
            ids = {s["hook"]: s["id"] for s in app.test_client().get("/cds-services").get_json()["services"]}
            made[clock] = (app, ids)
        return made[clock]

    return get


def suggested_orders(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for card in body.get("cards", []):
        for suggestion in card.get("suggestions") or []:
            for action in suggestion.get("actions") or []:
                resource = action.get("resource") or {}
                if resource.get("resourceType") == "MedicationRequest":
                    yield action["type"], resource


def strength_of(resource: dict[str, Any]) -> tuple[float | None, str | None]:
    """The product's strength per unit and its form, from the product table."""
    concept = resource.get("medicationCodeableConcept") or {}
    reference = (resource.get("medicationReference") or {}).get("reference", "")
    for contained in resource.get("contained") or []:
        if reference == f"#{contained.get('id')}" and contained.get("resourceType") == "Medication":
            concept = contained.get("code") or {}
    for coding in concept.get("coding") or []:
        product = PRODUCTS.get(str(coding.get("code"))) if coding.get("system") == RXNORM else None
        if product is not None:
            form = next((f for f in FORMS if f.rstrip("s") in str(product.get("dose_form", "")).lower()), None)
            strength = product.get("strength_mg")
            return (float(strength) if strength else None), form
    return None, None


def fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


@pytest.mark.parametrize(("scenario", "hook"), CASES, ids=[f"{s}-{h}" for s, h in CASES])
def test_every_suggested_order_is_one_a_pharmacist_can_sign(apps, scenario, hook):
    app, services = apps(scenario)
    request = load_request(scenario, hook)
    today = scenario_clock(scenario).date().isoformat()
    body = app.test_client().post(f"/cds-services/{services[hook]}", json=request).get_json()
    for card in body.get("cards", []):
        for suggestion in card.get("suggestions") or []:
            kinds = [a["type"] for a in suggestion.get("actions") or []]
            if "delete" in kinds:
                # A client that stops at the first delete must already have applied the new order.
                assert "create" not in kinds[kinds.index("delete") :], kinds
                REPLACED.extend([f"{scenario}/{hook}"] if "create" in kinds else [])
    for kind, resource in suggested_orders(body):
        CHECKED.append(f"{scenario}/{hook}")
        assert resource["status"] == "draft"
        if kind == "create":
            # A fresh draft: nothing that identifies or dates the order it replaces.
            assert "identifier" not in resource and "authoredOn" not in resource and "id" not in resource
        for dosage in resource.get("dosageInstruction") or []:
            start = (((dosage.get("timing") or {}).get("repeat") or {}).get("boundsPeriod") or {}).get("start")
            assert start is None or start[:10] >= today, f"starts {start}, before {today}"
            quantities = [d["doseQuantity"] for d in dosage.get("doseAndRate") or [] if "doseQuantity" in d]
            if not quantities:
                continue
            [quantity] = quantities
            strength, form = strength_of(resource)
            unit = str(quantity.get("code") or quantity.get("unit"))
            per_dose = float(quantity["value"]) * (strength or 0) if unit in COUNT_UNITS else float(quantity["value"])
            step = strength or 0.5
            assert abs(per_dose / step - round(per_dose / step)) < 1e-6 and per_dose > 0, (per_dose, step)
            text = dosage.get("text") or ""
            assert re.search(rf"\b{re.escape(fmt(per_dose))} mg\b", text), text
            if form is not None:
                assert form.rstrip("s") in text, (form, text)


def test_the_scenarios_do_suggest_medication_orders():
    """The table above is not empty: fixture scenarios suggest dose, timing and replacement orders."""
    if not CHECKED:
        pytest.skip("runs after the scenario table")
    assert len(set(CHECKED)) >= 3
    assert REPLACED, "no scenario suggests replacing a draft by another order"


MARKDOWN = re.compile(r"\*\*|__|`|\\|\]\(")
# Units that differ between laboratories (conventional or SI): a summary must use the laboratory's.
LAB_UNITS = re.compile(r"\d(?:[\d.]*) (mg/dL|µmol/L|umol/L|mmol/L|mg/L)\b")


def observation_units(request: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("resourceType") == "Observation":
                for quantity in [node.get("valueQuantity")] + [
                    c.get("valueQuantity") for c in node.get("component") or []
                ]:
                    if isinstance(quantity, dict):
                        found.update(str(quantity.get(k)) for k in ("unit", "code") if quantity.get(k))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(request.get("prefetch") or {})
    return {u.replace("umol", "µmol") for u in found}


@pytest.mark.parametrize(("scenario", "hook"), CASES, ids=[f"{s}-{h}" for s, h in CASES])
def test_every_summary_is_plain_text_in_the_laboratorys_unit(apps, scenario, hook):
    """CDS Hooks: the summary is plain text (only the detail is Markdown); a value is quoted in the unit
    the laboratory reported it in."""
    app, services = apps(scenario)
    request = load_request(scenario, hook)
    body = app.test_client().post(f"/cds-services/{services[hook]}", json=request).get_json()
    units = observation_units(request)
    for card in body.get("cards", []):
        summary = card["summary"]
        assert not MARKDOWN.search(summary), summary
        for unit in LAB_UNITS.findall(summary):
            assert unit.replace("umol", "µmol") in units, (summary, units)

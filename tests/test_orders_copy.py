"""A suggested change is written on a copy of the order: the order the client sent is never changed."""

import copy
import json

from rules_support import resource_of
from test_orders import SANDBOX_DRAFT, fact

from cards import orders
from service.hooks.orders import _copy


def containers(value, found=None):
    """Every dict and list inside ``value``, by identity."""
    found = [] if found is None else found
    if isinstance(value, (dict, list)):
        found.append(value)
        for item in value.values() if isinstance(value, dict) else value:
            containers(item, found)
    return found


def test_the_copy_is_equal_and_shares_no_dict_or_list():
    order = json.loads(json.dumps(SANDBOX_DRAFT))
    order["note"] = [{"text": "x", "extension": [[1, 2.5, True, None]]}]
    copied = _copy(order)
    assert copied == order
    assert not {id(c) for c in containers(copied)} & {id(c) for c in containers(order)}


def test_what_json_cannot_make_is_copied_deeply():
    class Box:
        def __init__(self) -> None:
            self.items = [1]

    order = {"resourceType": "MedicationRequest", "box": Box(), "tags": {"a"}}
    copied = _copy(order)
    assert copied["box"] is not order["box"] and copied["box"].items is not order["box"].items
    assert copied["tags"] == {"a"} and copied["tags"] is not order["tags"]


def test_every_kind_of_change_leaves_the_order_as_sent():
    order = copy.deepcopy(SANDBOX_DRAFT)
    order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2020-01-01", "end": "2020-02-01"}
    order["dosageInstruction"][0]["patientInstruction"] = "take it"
    sent = copy.deepcopy(order)
    dose = orders.with_daily_dose(fact(order), 1.0)
    timing = orders.with_timing(fact(order), "2026-12-02", "2026-12-17")
    assert dose is not None and timing is not None
    written = [resource_of(dose), resource_of(timing)]
    assert written[0] != order and written[1] != order
    assert order == sent
    assert '"2026-12-02"' in json.dumps(written[1])

"""Drug interactions with tacrolimus, from the interaction table (knowledge/interactions.yaml).

Both directions count: an interacting drug ordered while she is on (or being ordered) tacrolimus, and
tacrolimus ordered while she takes the drug. A pair of orders is reported when at least one of them is
in the hook's focus; on patient-view that is every active pair. One card per interacting drug (kind
``interaction:<drug key>``), however many orders name it.

Three steps, one module each: ``decide`` (which drug, how severe, which labs on record changed the
advice, whether a dose change fits), ``render`` (the decision as a card) and ``suggest`` (the card's
actions), so tests assert decisions and the text separately. The potassium and creatinine findings are
shared with the safety rules (``cards.rules.findings``).

- Only systemic use counts: a topical, vaginal or eye product neither raises nor lowers blood levels.
- An order that has ended no longer interacts, except an azole within the days its effect lasts.
- Labs on record escalate the card: a potassium raiser with a current potassium at or above the
  hyperkalaemia threshold, a nephrotoxic drug while creatinine is rising from its baseline.
- Fetal-risk text for a woman trying to conceive (an IVF course on record) or pregnant.

Suggestions, each offered only when its resource is complete:
- azoles taken for more than a single dose: a temporary tacrolimus dose cut, every single dose a whole
  number of 0.5 mg steps; a draft order is updated (sig text rewritten or dropped), an active order is
  replaced by a new draft naming it as the prior prescription. No dose change on patient-view.
- erythromycin / clarithromycin drafts: replace with a draft azithromycin order (create, then delete)
  unless the indication is one azithromycin does not treat.
- drafts that must not be given (mycophenolate, cyclosporine, live vaccines, a potassium raiser with
  hyperkalaemia, a nephrotoxic drug while creatinine rises): remove the draft.
- the lab orders the entry names, or the next step when a result on record is abnormal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from ...facts import PatientFacts
from ...knowledge_model import typed
from ...model import Card
from ...orders import OrderContext, products_of
from ..findings import CreatinineFinding, PotassiumFinding, creatinine_finding, potassium_finding
from .decide import (
    LEVEL_CHANGING,
    DosePlan,
    InteractionDecision,
    could_conceive,
    decide_interactions,
    in_ivf_course,
    level_changing_orders,
)
from .render import render


def evaluate_interactions(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Interaction cards, one per interacting drug, in the order of the table."""
    table = typed(kb).interactions
    orders = OrderContext(today, products_of(kb))
    return [render(d, facts, today, table, orders) for d in decide_interactions(facts, today, kb)]


__all__ = [
    "LEVEL_CHANGING",
    "level_changing_orders",
    "CreatinineFinding",
    "DosePlan",
    "InteractionDecision",
    "PotassiumFinding",
    "could_conceive",
    "creatinine_finding",
    "decide_interactions",
    "evaluate_interactions",
    "in_ivf_course",
    "potassium_finding",
    "render",
]

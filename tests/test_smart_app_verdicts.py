"""The SMART app's safety table shows the rules' own verdicts on the newest results (one implementation
of the thresholds): a creatinine the rules call acute kidney injury is flagged critical on the page."""

from __future__ import annotations

import pytest
from rules_support import KB, TODAY, lab, make_facts, on_tacrolimus

from cards.evaluate import evaluate
from service.smart_app.page import build_page
from service.smart_app.record import PatientRecord


def latest_flag(labs: list, name: str) -> str:
    facts = make_facts("patient-view", meds=[on_tacrolimus(60)], labs=labs)
    record = PatientRecord(
        facts=facts,
        cards=evaluate(facts, TODAY, KB),
        patient=None,
        order_id=None,
        order_found=False,
        order_draft=False,
        today=TODAY,
    )
    [line] = [s for s in build_page(record, KB, show_banner=False).safety if s.name == name]
    assert line.latest is not None
    return line.latest.flag


@pytest.mark.parametrize(
    "labs,name,flag",
    [
        pytest.param(
            [lab("creatinine", 0.7, 70), lab("creatinine", 0.8, 3), lab("creatinine", 1.2, 1)],
            "Creatinine",
            "critical",
            id="creatinine 0.8 to 1.2 mg/dL in 48 h (KDIGO AKI): critical, as the card says",
        ),
        pytest.param(
            [lab("creatinine", 1.0, 70), lab("creatinine", 1.25, 1)],
            "Creatinine",
            "above threshold",
            id="creatinine +25 % from baseline: the rules' warning",
        ),
        pytest.param(
            [lab("creatinine", 1.0, 70), lab("creatinine", 1.05, 1)], "Creatinine", "", id="creatinine stable"
        ),
        pytest.param([lab("potassium", 5.2, 1)], "Potassium", "above normal", id="potassium 5.2: above normal"),
        pytest.param([lab("potassium", 6.2, 1)], "Potassium", "critical", id="potassium 6.2: critical"),
    ],
)
def test_the_page_flags_the_newest_result_with_the_rules_verdict(labs, name, flag):
    assert latest_flag(labs, name) == flag

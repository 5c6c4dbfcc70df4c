"""The rules' shared vocabulary: what a hook call is about, tolerant comparisons, and text from the
record made safe for a card."""

from __future__ import annotations

import pytest
from rules_support import KB, draft, lab, make_facts, on_tacrolimus

from cards.knowledge_model import typed
from cards.rules.focus import focus_of, in_focus
from cards.rules.vocab import above, at_least, below, build_card, reason_codings, same
from cards.text import SUMMARY_MAX, fmt_measure, fmt_unit, plain

# (hook, order, is it what the call is about?)
FOCUS = [
    ("order-select", draft(2, selected=True), True),
    ("order-select", draft(2, selected=False), False),  # another draft: context, not new
    ("order-sign", draft(2, selected=False), True),  # at signing every draft is new
    ("order-sign", on_tacrolimus(), False),  # an active order is not being signed
    ("patient-view", on_tacrolimus(), True),
    ("patient-view", draft(2), False),
]


@pytest.mark.parametrize(
    "hook,med,expected", FOCUS, ids=[f"{h}-{m.status}-{'sel' if m.is_selected else 'ctx'}" for h, m, _ in FOCUS]
)
def test_in_focus(hook, med, expected):
    assert in_focus(hook, med) is expected


def test_focus_gathers_drafts_in_focus_and_every_draft_of_the_session():
    chosen, other = draft(2, rid="a", selected=True), draft(1, rid="b", selected=False)
    focus = focus_of(make_facts("order-select", meds=[chosen, other, on_tacrolimus()]))
    assert [m.source for m in focus.drafts] == ["MedicationRequest/a"]
    assert [m.source for m in focus.all_drafts] == ["MedicationRequest/a", "MedicationRequest/b"]
    assert focus.on_therapy and focus.continuing


def test_pregnancy_alone_does_not_make_a_draft_a_continuation():
    """Pregnant and not on tacrolimus: a new draft starts a course."""
    assert not focus_of(make_facts("order-sign", meds=[draft(2)], pregnant=True)).continuing


@pytest.mark.parametrize(
    "value,threshold,ge,gt,lt",
    [
        (0.96 / 0.8, 1.2, True, False, False),  # 1.1999999... counts as 1.2
        (1.2, 1.2, True, False, False),
        (1.21, 1.2, True, True, False),
        (1.19, 1.2, False, False, True),
    ],
)
def test_comparisons_tolerate_float_noise(value, threshold, ge, gt, lt):
    assert at_least(value, threshold) is ge
    assert above(value, threshold) is gt
    assert below(value, threshold) is lt
    assert same(0.1 + 0.2, 0.3)


@pytest.mark.parametrize(
    "raw,shown",
    [
        ("Recurrent <b>implantation</b> failure", "Recurrent implantation failure"),
        ("<script>alert(1)</script>RIF", "alert(1)RIF"),
        ("tacrolimus *1 mg* [link](http://x)", "tacrolimus \\*1 mg\\* \\[link\\](http://x)"),
        ("a\n\n# heading", "a \\# heading"),
        ("Prograf_1mg | table", "Prograf\\_1mg \\| table"),
    ],
)
def test_record_text_is_plain_markdown(raw, shown):
    assert plain(raw) == shown


@pytest.mark.parametrize(
    "unit,shown", [("umol/L", "µmol/L"), ("{ratio}", ""), ("mm[Hg]", "mmHg"), ("mg/dL", "mg/dL"), (None, "")]
)
def test_units_as_a_clinician_writes_them(unit, shown):
    assert fmt_unit(unit) == shown


def test_a_result_is_shown_as_the_laboratory_reported_it_without_ids():
    m = lab("creatinine", 1.2, 2, shown="106 umol/L")
    text = fmt_measure(m)
    assert text.startswith("106 µmol/L on ") and "Observation" not in text


def test_the_card_builder_clips_the_summary_and_keeps_the_decision():
    card = build_card(
        kind="dose",
        verdict="above-maximum",
        indicator="critical",
        summary="x" * 300,
        detail="d",
        source_label="s",
        override_reasons=reason_codings(typed(KB).protocol.override_reasons),
    )
    assert len(card.summary) == SUMMARY_MAX and card.verdict == "above-maximum"
    assert {c.code for c in card.override_reasons} >= {"clinical-judgement"}


@pytest.mark.parametrize("table", ["protocol", "interactions", "care"])
def test_every_table_has_one_override_reason_shape(table):
    assert reason_codings(getattr(typed(KB), table).override_reasons)


def test_long_record_text_is_kept_short():
    assert len(plain("x" * 5000)) == 120 and plain("x" * 5000).endswith("…")

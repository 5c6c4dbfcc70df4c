"""Card 3, timing: start 2 days before the embryo transfer, continue at least 16 days (to the pregnancy
test) and through pregnancy if she conceives; the course ends with a negative pregnancy test.

- A start after the transfer (or in a pregnancy already under way) is outside the protocol: warned,
  and that date is never recommended.
- A draft without a start date gets the protocol date offered, not recommended (the prescriber sets it).
- A start date in the past is flagged.
- A negative pregnancy test from the protocol's test day on (a site setting, default course day 16,
  about 14 days after the transfer) completes the course: stop, and question a renewal. An earlier
  negative test is too early to be conclusive (hCG rises from about 9-11 days after a blastocyst
  transfer): continue, and repeat the test on the test day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Literal

from ..facts import PREGNANCY, PREGNANCY_OUTCOME, ConditionFact, MedicationFact, PatientFacts, TransferPlan
from ..knowledge_model import ProtocolTable
from ..model import Action, Card, Indicator, Suggestion
from ..orders import with_timing
from ..text import fmt_date, plain
from ..vocab import FAMILY_TIMING
from .common import Detail, day_of, describe_pregnancy, make_card, protocol_of, relevant_transfer
from .focus import Focus, focus_of
from .scope import scope_of
from .vocab import ORDER_SELECT, PATIENT_VIEW

KIND = FAMILY_TIMING

Verdict = Literal[
    "pregnancy-ended",
    "course-complete",
    "negative-too-early",
    "no-transfer",
    "starts-after-transfer",
    "starts-in-pregnancy",
    "starts-on-transfer-day",
    "late-start",
    "back-dated",
    "no-start-date",
    "start-differs",
    "ends-early",
]


@dataclass(frozen=True)
class TimingDecision:
    verdict: Verdict | None
    transfer_day: date | None = None
    protocol_start: date | None = None
    protocol_end: date | None = None
    draft_start: date | None = None  # an explicit start (boundsPeriod) only
    draft_end: date | None = None
    suggested_start: date | None = None  # None: no start date is suggested
    recommended: bool = False
    negative_test: date | None = None
    test_day: date | None = None  # the protocol's pregnancy test day (a negative before it is too early)
    outcome: ConditionFact | None = None  # a recorded miscarriage, ectopic pregnancy or delivery
    outcome_day: date | None = None


def _draft_end(med: MedicationFact) -> date | None:
    """Last day of the draft: its end date, else start + duration (inclusive)."""
    if med.end is not None:
        return med.end
    if med.start is not None and med.duration_days is not None:
        return med.start + timedelta(days=med.duration_days - 1)
    return None


def negative_test_after_transfer(facts: PatientFacts, course_days: int) -> tuple[date, date] | None:
    """(transfer day, test day) when the latest pregnancy status is a negative test taken within two
    course lengths after a transfer, and no later transfer is planned (a new cycle starts a new course)."""
    status = facts.pregnancy
    if status.pregnant is not False or status.when is None:
        return None
    tested = day_of(status.when)
    days = [day_of(t.when) for t in facts.transfers if t.when is not None]
    if any(d >= tested for d in days):
        return None
    past = [d for d in days if 0 < (tested - d).days <= 2 * course_days]
    return (max(past), tested) if past else None


def pregnancy_test_day(transfer_day: date, proto: ProtocolTable) -> date:
    """The protocol's pregnancy test day: course day N (a site setting), day 1 being the protocol start."""
    start = transfer_day - timedelta(days=proto.timing.start_days_before_transfer.value)
    return start + timedelta(days=proto.timing.pregnancy_test_course_day.value - 1)


def ended_pregnancy(
    facts: PatientFacts, today: date, since: date | None, recent_days: int
) -> tuple[ConditionFact, date] | None:
    """The newest recorded pregnancy outcome (miscarriage, ectopic pregnancy, delivery, or a pregnancy
    closed with an abatement date) since ``since`` (the course's start; without one, within
    ``recent_days``), when no transfer was planned after it (a new cycle)."""
    found: list[tuple[date, ConditionFact]] = []
    for c in facts.conditions:
        if c.concept != PREGNANCY_OUTCOME and not (c.concept == PREGNANCY and c.abated is not None):
            continue
        when = c.abated or c.onset or c.recorded
        if when is None:
            continue
        d = day_of(when)
        if d > today or (since is not None and d < since) or (since is None and (today - d).days > recent_days):
            continue
        found.append((d, c))
    if not found:
        return None
    d, c = max(found, key=lambda pair: pair[0])
    if any(t.when is not None and day_of(t.when) > d for t in facts.transfers):
        return None
    return c, d


def decide_timing(facts: PatientFacts, today: date, proto: ProtocolTable, focus: Focus) -> TimingDecision:
    """The timing decision for the tacrolimus course of this call."""
    if (facts.hook == PATIENT_VIEW and focus.on_therapy) or (focus.drafts and focus.continuing):
        outcome = ended_pregnancy(facts, today, focus.therapy_start(), proto.eligibility.transfer_recent_days.value)
        if outcome is not None:
            return TimingDecision("pregnancy-ended", outcome=outcome[0], outcome_day=outcome[1])
    ended = negative_test_after_transfer(facts, proto.timing.min_duration_days.value)
    if ended is not None and (focus.drafts or (facts.hook == PATIENT_VIEW and focus.on_therapy)):
        transfer_day, tested = ended
        test_day = pregnancy_test_day(transfer_day, proto)
        verdict: Verdict = "course-complete" if tested >= test_day else "negative-too-early"
        return TimingDecision(verdict, transfer_day=transfer_day, negative_test=tested, test_day=test_day)
    if not focus.drafts or focus.continuing:
        return TimingDecision(None)  # a continuation is not timed from a transfer
    draft = focus.drafts[0]
    before = proto.timing.start_days_before_transfer.value
    min_days = proto.timing.min_duration_days.value
    explicit_start = draft.start if draft.start_from == "boundsPeriod" else None
    draft_end = _draft_end(draft)
    if facts.pregnancy.pregnant is True:
        return TimingDecision("starts-in-pregnancy", draft_start=explicit_start, draft_end=draft_end)
    transfer: TransferPlan | None = relevant_transfer(facts, today, proto.eligibility.transfer_recent_days.value)
    if transfer is None or transfer.when is None:
        if facts.hook != ORDER_SELECT:
            return TimingDecision(None)  # said once, when the order is selected
        return TimingDecision("no-transfer", draft_start=explicit_start, draft_end=draft_end)
    transfer_day = day_of(transfer.when)
    protocol_start = transfer_day - timedelta(days=before)
    protocol_end = protocol_start + timedelta(days=min_days - 1)
    base = TimingDecision(
        None,
        transfer_day=transfer_day,
        protocol_start=protocol_start,
        protocol_end=protocol_end,
        draft_start=explicit_start,
        draft_end=draft_end,
    )
    # Without a start date, or with one in the past, the order starts when it is signed.
    effective_start = max(explicit_start or today, today)
    if effective_start > transfer_day:
        return replace(base, verdict="starts-after-transfer")
    if effective_start == transfer_day:
        # On the transfer day: 2 days late. An earlier day is offered only while one is still ahead.
        earlier = max(protocol_start, today)
        return replace(
            base,
            verdict="starts-on-transfer-day",
            suggested_start=earlier if earlier < transfer_day else None,
            recommended=True,
        )
    if protocol_start < today:
        # Too late for the protocol start, still before the transfer: today is the best left.
        if explicit_start == today and (draft_end is None or draft_end >= protocol_end):
            return base
        return replace(base, verdict="late-start", suggested_start=today, recommended=False)
    if explicit_start is None:
        return replace(base, verdict="no-start-date", suggested_start=protocol_start, recommended=False)
    if explicit_start < today:
        return replace(base, verdict="back-dated", suggested_start=protocol_start, recommended=True)
    if explicit_start != protocol_start:
        return replace(base, verdict="start-differs", suggested_start=protocol_start, recommended=True)
    if draft_end is not None and draft_end < protocol_end:
        return replace(base, verdict="ends-early", suggested_start=protocol_start, recommended=True)
    return base


def evaluate_timing(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 3: the draft's start and duration against the planned transfer; the end of the course."""
    focus = focus_of(facts)
    if not (focus.drafts or focus.on_therapy) or not scope_of(facts, today, kb).protocol:
        return []
    proto = protocol_of(kb)
    decision = decide_timing(facts, today, proto, focus)
    if decision.verdict is None:
        return []
    return [_render(facts, decision, proto, focus)]


def _render(facts: PatientFacts, d: TimingDecision, proto: ProtocolTable, focus: Focus) -> Card:
    detail = Detail(proto)
    before = detail.number("start before the transfer", proto.timing.start_days_before_transfer)
    days = detail.number("minimum course", proto.timing.min_duration_days)
    continue_through = proto.timing.continue_through_pregnancy
    detail.cite(continue_through.source, continue_through.section)
    source_id = proto.timing.start_days_before_transfer.source
    suggestions: list[Suggestion] = []
    indicator: Indicator = "warning"
    transfer = fmt_date(d.transfer_day)
    if d.transfer_day is not None and d.protocol_start is not None:
        detail.add(
            f"- Embryo transfer: **{transfer}**; protocol start **{fmt_date(d.protocol_start)}**, "
            f"continue at least to **{fmt_date(d.protocol_end)}** (the pregnancy test), longer if pregnant"
        )
    if d.verdict not in ("pregnancy-ended", "course-complete", "negative-too-early") and focus.drafts:
        detail.add(
            f"- This order: start {fmt_date(d.draft_start) if d.draft_start else 'not set'}, "
            f"last day {fmt_date(d.draft_end) if d.draft_end else 'open'}"
        )

    if d.verdict == "course-complete":
        summary = (
            f"Negative pregnancy test on {fmt_date(d.negative_test)} after the {transfer} transfer: "
            "the course is complete, stop tacrolimus"
        )
        detail.add(f"- Pregnancy test after the transfer: negative on **{fmt_date(d.negative_test)}**")
        detail.add(
            f"\nThe {days} course runs to the pregnancy test; with a negative test it is over. "
            + (
                "A renewal is not needed unless a new transfer is planned: cancel this order."
                if focus.drafts
                else "Stop tacrolimus."
            )
        )
        for draft in focus.drafts:
            suggestions.append(
                Suggestion(
                    label="Cancel the new tacrolimus order",
                    actions=(
                        Action(
                            type="delete",
                            description="Cancel the tacrolimus order: the course is complete",
                            resource_id=draft.source,
                        ),
                    ),
                )
            )
    elif d.verdict == "pregnancy-ended":
        what = plain(d.outcome.display if d.outcome else "pregnancy outcome", 60)
        summary = (
            f"Pregnancy ended ({what}, {fmt_date(d.outcome_day)}): the indication is over, stop "
            "tacrolimus or review with the specialist"
        )
        detail.add(f"- Recorded: **{what}** on {fmt_date(d.outcome_day)}")
        detail.add(
            "\nTacrolimus is given for implantation and continued through the pregnancy; with the "
            "pregnancy over it has no indication. Stop it, or review with the specialist (for example "
            "before a new transfer)."
        )
        for draft in focus.drafts:
            suggestions.append(
                Suggestion(
                    label="Cancel the new tacrolimus order",
                    actions=(
                        Action(
                            type="delete",
                            description="Cancel the tacrolimus order: the pregnancy has ended",
                            resource_id=draft.source,
                        ),
                    ),
                )
            )
    elif d.verdict == "negative-too-early":
        indicator = "info"
        after = (d.negative_test - d.transfer_day).days if d.negative_test and d.transfer_day else None
        summary = (
            f"Negative hCG on {fmt_date(d.negative_test)}, {after} days after the transfer, is too early to "
            f"be conclusive: continue tacrolimus, retest {fmt_date(d.test_day)}"
        )
        detail.add(f"- Pregnancy test after the {transfer} transfer: negative on **{fmt_date(d.negative_test)}**")
        test_day = detail.number("the pregnancy test day of the course", proto.timing.pregnancy_test_course_day)
        detail.add(
            f"\nhCG becomes conclusive about 9–11 days after a blastocyst transfer (12–14 after a day-3 "
            f"transfer); the course tests on day {test_day.split()[0]}, {fmt_date(d.test_day)}. Do not "
            "stop tacrolimus on this result."
        )
    elif d.verdict == "no-transfer":
        indicator = "info"
        summary = f"No embryo transfer on record: start tacrolimus {before} before the transfer, for at least {days}"
        detail.add("\nSet the start date from the transfer date when it is known.")
    elif d.verdict == "starts-in-pregnancy":
        summary = (
            "She is pregnant and not on tacrolimus: starting now is outside the protocol; decide with the specialist"
        )
        detail.add(f"- She is {describe_pregnancy(facts.pregnancy)}.")
        detail.add(
            f"\nThe protocol starts {before} before the embryo transfer and continues through pregnancy; "
            "it does not describe a start during pregnancy. Eligibility, baseline tests and the dose "
            "are checked as for any new start."
        )
    elif d.verdict == "starts-after-transfer":
        summary = (
            f"Tacrolimus would start after the {transfer} transfer: outside the protocol, which starts "
            f"{before} before it"
        )
        detail.add(
            "\nStarting after the transfer is not what the protocol studied: decide with the specialist "
            "whether to start at all. No start date is suggested."
        )
    elif d.verdict == "starts-on-transfer-day":
        summary = f"Tacrolimus would start on the {transfer} transfer day, {before} late: " + (
            f"start {fmt_date(d.suggested_start)}" if d.suggested_start else "decide with the specialist"
        )
        detail.add(
            f"\nThe protocol starts {before} before the transfer, so that levels are rising by the day of "
            "implantation; a start on the transfer day is late."
        )
    elif d.verdict == "late-start":
        summary = f"The protocol start ({fmt_date(d.protocol_start)}) has passed: start today at the latest, before the {transfer} transfer"
    elif d.verdict == "no-start-date":
        indicator = "info"
        summary = (
            f"Set the tacrolimus start date: {fmt_date(d.protocol_start)}, {before} before the {transfer} transfer"
        )
    elif d.verdict == "back-dated":
        summary = f"Tacrolimus start date {fmt_date(d.draft_start)} is in the past: start {fmt_date(d.protocol_start)}"
    elif d.verdict == "start-differs":
        summary = (
            f"Tacrolimus start {fmt_date(d.draft_start)} is not {fmt_date(d.protocol_start)}, {before} "
            f"before the {transfer} transfer"
        )
    else:  # ends-early
        summary = (
            f"Tacrolimus course ends {fmt_date(d.draft_end)}, before the pregnancy test: continue to "
            f"at least {fmt_date(d.protocol_end)}"
        )

    if d.suggested_start is not None and focus.drafts:
        draft = focus.drafts[0]
        wanted_end = (
            max(d.draft_end, d.protocol_end) if d.draft_end is not None and d.protocol_end is not None else None
        )
        resource = with_timing(draft, fmt_date(d.suggested_start), fmt_date(wanted_end) if wanted_end else None)
        until = f" to {fmt_date(wanted_end)}" if wanted_end else ""
        if resource is None:
            detail.add("\nThe order's dates cannot be rewritten automatically: set them by hand.")
        else:
            suggestions.append(
                Suggestion(
                    label=f"Start on {fmt_date(d.suggested_start)}{until}",
                    is_recommended=d.recommended,
                    actions=(
                        Action(
                            type="update",
                            resource=resource,
                            description=f"Set the tacrolimus course to start {fmt_date(d.suggested_start)}{until}",
                        ),
                    ),
                )
            )
    return make_card(
        proto,
        detail,
        kind=KIND,
        verdict=str(d.verdict),
        summary=summary,
        indicator=indicator,
        source_id=source_id,
        suggestions=suggestions,
    )

"""Card 3, timing: start 2 days before the embryo transfer, continue at least 16 days (to the
pregnancy test) and through pregnancy if she conceives."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Mapping

from ..facts import MedicationFact, PatientFacts
from ..model import Action, Card, Indicator, Suggestion
from ..orders import with_timing
from ..text import fits_summary, fmt_date
from .common import Detail, Protocol, day_of, make_card, relevant_transfer
from .focus import focus_of

KIND = "timing"


def _draft_end(med: MedicationFact) -> date | None:
    """Last day of the draft: its end date, else start + duration (inclusive)."""
    if med.end is not None:
        return med.end
    if med.start is not None and med.duration_days is not None:
        return med.start + timedelta(days=med.duration_days - 1)
    return None


def evaluate_timing(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 3: the draft's start and duration against the planned transfer."""
    focus = focus_of(facts)
    if not focus.drafts or focus.continuing:
        return []  # a continuation is not timed from a transfer (care cards cover pregnancy)
    proto = Protocol(kb)
    draft = focus.drafts[0]
    detail = Detail(proto)
    before = proto.days("timing.start_days_before_transfer")
    min_days = proto.days("timing.min_duration_days")
    transfer = relevant_transfer(facts, today, proto.days("eligibility.transfer_recent_days"))
    start_shown = detail.number("Start before the transfer", "timing.start_days_before_transfer")
    days_shown = detail.number("Minimum course (to the pregnancy test)", "timing.min_duration_days")
    detail.add(f"- Continue through pregnancy if she conceives {detail.cite(str(proto.entry('timing.continue_through_pregnancy')['source']))}")
    source_id = str(proto.entry("timing.start_days_before_transfer")["source"])

    if transfer is None or transfer.when is None:
        detail.add("\nNo embryo transfer is on record (ServiceRequest, Procedure or Appointment coded "
                   "embryo-transfer): time the start from the transfer date when it is set.")
        summary = (f"No embryo transfer on record: start tacrolimus {start_shown} before the transfer, "
                   f"continue {days_shown} and through pregnancy")
        if not fits_summary(summary):
            summary = f"No embryo transfer on record: start tacrolimus {start_shown} before it, for at least {days_shown}"
        return [make_card(proto, detail, kind=KIND, summary=summary, indicator="info", source_id=source_id)]

    transfer_day = day_of(transfer.when)
    protocol_start = transfer_day - timedelta(days=before)
    protocol_end = protocol_start + timedelta(days=min_days - 1)
    detail.add(f"- Embryo transfer: **{fmt_date(transfer_day)}** ({transfer.source})")
    detail.add(f"- Protocol course: start **{fmt_date(protocol_start)}**, continue at least to "
               f"**{fmt_date(protocol_end)}** (the pregnancy test), longer if pregnant")
    explicit_start = draft.start if draft.start_from == "boundsPeriod" else None
    draft_end = _draft_end(draft)
    detail.add(f"- Draft ({draft.source}): start {fmt_date(explicit_start) if explicit_start else 'not set'}"
               + (f" (only the order date {fmt_date(draft.start)} is known)" if draft.start_from == "authoredOn" else "")
               + f", last day {fmt_date(draft_end) if draft_end else 'open'}")

    problems: list[str] = []
    start_late = protocol_start < today
    wanted_start = today if start_late else protocol_start
    if start_late:
        detail.add(f"\nThe protocol start ({fmt_date(protocol_start)}) has passed: starting today is later "
                   "than the protocol; a clinician decides whether to start at all.")
    if explicit_start is None:
        problems.append("no start date")
    elif explicit_start != protocol_start and not (start_late and explicit_start == today):
        problems.append(f"start {fmt_date(explicit_start)} is not {fmt_date(protocol_start)}")
    short = draft_end is not None and draft_end < protocol_end
    if short:
        problems.append(f"ends {fmt_date(draft_end)}, before {fmt_date(protocol_end)}")
    if not problems:
        return []

    # An open-ended draft stays open (through pregnancy); a dated one runs at least to the test.
    wanted_end = max(draft_end, protocol_end) if draft_end is not None else None
    indicator: Indicator = "info" if problems == ["no start date"] else "warning"
    summary = (f"Tacrolimus timing: {'; '.join(problems)} "
               f"(transfer {fmt_date(transfer_day)}, start {start_shown} before)")
    if not fits_summary(summary):
        summary = f"Tacrolimus timing does not match the transfer on {fmt_date(transfer_day)}: see details"
    suggestions: list[Suggestion] = []
    resource = with_timing(draft, fmt_date(wanted_start), fmt_date(wanted_end) if wanted_end else None)
    if resource is None:
        detail.add("\nThe draft's timing cannot be rewritten automatically: set the dates by hand.")
    else:
        until = f" to {fmt_date(wanted_end)}" if wanted_end else ""
        suggestions.append(Suggestion(
            label=f"Start on {fmt_date(wanted_start)}{until}", is_recommended=True,
            actions=(Action(type="update", resource=resource,
                            description=f"Set the tacrolimus course to start {fmt_date(wanted_start)}{until}"),)))
    return [make_card(proto, detail, kind=KIND, summary=summary, indicator=indicator,
                      source_id=source_id, suggestions=suggestions)]

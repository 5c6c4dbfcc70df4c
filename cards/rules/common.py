"""What the protocol rules share: the typed protocol table, citing its entries in card text, the hook focus,
and picking the results (ratio, transfer, current lab values) the rules may act on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from ..derive import conflicting
from ..facts import (
    ACTIONABLE_STATUSES,
    TH1_TH2_RATIO,
    Measurement,
    PatientFacts,
    PregnancyStatus,
    TransferPlan,
)
from ..knowledge_model import Count, Number, Order, Positive, ProtocolTable, SourceRef, typed
from ..model import Action, Card, Coding, Indicator, Link, Suggestion
from ..orders import lab_order
from ..text import age_days, fmt_date, fmt_measure, fmt_number, fmt_unit, reported
from .vocab import build_card, reason_codings

PENDING_STATUSES = frozenset({"preliminary", "registered"})


def day_of(when: date | datetime) -> date:
    return when.date() if isinstance(when, datetime) else when


def protocol_of(kb: Mapping[str, Any]) -> ProtocolTable:
    """The typed ``protocol`` table of the effective knowledge (built once, when it was loaded)."""
    return typed(kb).protocol


def source_of(proto: ProtocolTable, source_id: str) -> SourceRef:
    """The protocol source an entry cites (an unknown id, refused at load, stands for itself)."""
    return proto.sources.get(source_id) or SourceRef(label=source_id, citation=source_id)


_UNIT_WORDS = {"d": "days", "mg/d": "mg/day", "a": "years", "{ratio}": ""}


def shown(entry: Number | Count) -> str:
    """ "10.3", "4 mg/day", "28.8 %": an entry's value with its unit."""
    number = fmt_number(float(entry.value))
    unit = _UNIT_WORDS.get(entry.unit, entry.unit) if entry.unit else entry.unit
    if not unit:
        return number
    if unit == "days" and number == "1":
        unit = "day"
    return f"{number} %" if unit == "%" else f"{number} {fmt_unit(unit)}"


def override_reasons(proto: ProtocolTable) -> tuple[Coding, ...]:
    """The override reasons the protocol cards offer."""
    return reason_codings(proto.override_reasons)


class Detail:
    """A card's Markdown detail: the reason and the values, then one short "Source:" line.

    Numbers from the protocol are recorded, not listed: the rule's sentences name the ones that
    matter. Sources are collected as the rule cites them and shown once at the end, by their short
    label; a site default the clinic has not confirmed is named in plain words.
    """

    def __init__(self, proto: ProtocolTable) -> None:
        self.proto = proto
        self.lines: list[str] = []
        self.source_ids: list[str] = []
        self.sections: dict[str, str] = {}
        self.site_defaults: list[str] = []  # labels of unconfirmed site defaults used

    def add(self, text: str) -> None:
        self.lines.append(text)

    def cite(self, source_id: str, section: str | None = None) -> None:
        if source_id not in self.source_ids:
            self.source_ids.append(source_id)
        if section and source_id not in self.sections:
            self.sections[source_id] = section

    def number(self, label: str, entry: Number | Count) -> str:
        """The shown value of a protocol entry ("10.3", "4 mg/day"); records its source and whether it
        is an unconfirmed site default (named by ``label``)."""
        self.cite(entry.source, entry.section)
        if entry.site_default and label not in self.site_defaults:
            self.site_defaults.append(label)
        return shown(entry)

    def unconfirmed(self, label: str) -> None:
        """Record an unconfirmed site default used by the decision."""
        if label not in self.site_defaults:
            self.site_defaults.append(label)

    def source_line(self) -> str:
        parts: list[str] = []
        for sid in self.source_ids:
            if sid == "site":
                continue  # named below as site defaults, or it is plain configuration
            label = source_of(self.proto, sid).label
            section = self.sections.get(sid)
            parts.append(f"{label} ({section})" if section else label)
        return "Source: " + ("; ".join(parts) if parts else "site configuration") + "."

    def markdown(self) -> str:
        out = list(self.lines)
        while out and not out[-1]:
            out.pop()
        while out and not out[0].strip():
            out.pop(0)
        if out and out[0].startswith("\n"):
            out[0] = out[0].lstrip("\n")
        if self.site_defaults:
            out += [
                "",
                "Not settled in the literature, set by the clinic and still to be confirmed: "
                + ", ".join(self.site_defaults)
                + ".",
            ]
        out += ["", self.source_line()]
        return "\n".join(out)

    def links(self) -> tuple[Link, ...]:
        links: list[Link] = []
        for sid in self.source_ids:
            src = source_of(self.proto, sid)
            if src.url:
                links.append(Link(label=src.label, url=src.url))
        return tuple(links)


def make_card(
    proto: ProtocolTable,
    detail: Detail,
    *,
    kind: str,
    summary: str,
    indicator: Indicator,
    source_id: str,
    suggestions: Iterable[Suggestion] = (),
    verdict: str = "",
) -> Card:
    """A protocol card citing ``source_id`` as its source, with the protocol's override reasons."""
    detail.cite(source_id)
    src = source_of(proto, source_id)
    return build_card(
        kind=kind,
        verdict=verdict or kind,
        summary=summary,
        indicator=indicator,
        detail=detail.markdown(),
        source_label=src.label,
        source_url=src.url,
        suggestions=suggestions,
        override_reasons=override_reasons(proto),
        links=detail.links(),
    )


def order_action(facts: PatientFacts, order: Order, reason: str, *, priority: str | None = None) -> Action:
    """A create action for a draft ServiceRequest of the protocol's ``order`` entry."""
    resource = lab_order(facts.patient_id, order.code, order.display, reason, system=order.system, priority=priority)
    urgent = " (urgent)" if priority == "stat" else ""
    return Action(type="create", description=f"Order {order.display}{urgent}", resource=resource)


# --- results the rules may act on -----------------------------------------------------------------


@dataclass(frozen=True)
class Current:
    """The value of a concept the rules may act on, or why there is none."""

    concept: str
    value: Measurement | None
    problem: str | None  # why no value can be used; None when ``value`` is set
    orderable: bool = True  # ordering the test again would help (not so for a pending result)
    notes: tuple[str, ...] = field(default=())  # e.g. a newer result that cannot be used
    pending: Measurement | None = None  # a newer result not final yet: no decision on the older one
    conflicts: tuple[Measurement, ...] = ()  # same-time results of ``value`` with another value
    shown_only: Measurement | None = None  # newest result that exists but cannot be compared ("<1.0")
    # ``value`` is a limit read conservatively (">30" as 30): its comparator. A rule may then decide only
    # in the limit's direction (">30" is above every threshold up to 30; "<1.0" is below).
    limit: str | None = None

    def worst(self, *, higher_is_worse: bool = True) -> Measurement | None:
        """``value`` or a same-time conflicting result, whichever is worse for a safety tier."""
        if self.value is None or self.value.value is None:
            return self.value
        pool = [self.value, *(m for m in self.conflicts if m.value is not None)]
        return (max if higher_is_worse else min)(pool, key=lambda m: m.value or 0.0)


def why_unusable(m: Measurement, expected_unit: str | None) -> str | None:
    """Why a result may not be compared with a threshold, in words; None when it may."""
    if m.status not in ACTIONABLE_STATUSES:
        return f"is {m.status}, not final"
    if m.problem:
        return f"cannot be compared: {m.problem}"
    if m.when is None:
        return "has no date"
    if m.value is None and m.coded_value is None:
        return "has no value"
    if expected_unit and m.value is not None and m.unit != expected_unit:
        return f"is in {m.unit or 'no unit'}, not {expected_unit}"
    return None


def current(
    facts: PatientFacts,
    concept: str,
    today: date,
    max_age_days: int,
    label: str,
    unit: str | None = None,
    *,
    limits: bool = False,
) -> Current:
    """Newest usable result of ``concept`` not older than ``max_age_days``, or what is wrong.

    The newest result is always accounted for: a newer one not final yet is ``pending`` (the rules wait
    for it, or act on it only when it is already critical); a newer final one that cannot be compared is
    ``shown_only`` and no older result is used in its place. With ``limits`` a value reported as a limit
    (">30") is used at its limit, and ``Current.limit`` says which side it lies on.
    """
    results = facts.results(concept)
    if not results:
        return Current(concept, None, f"no {label} result on record")
    notes: list[str] = []
    pending: Measurement | None = None
    for m in results:
        reason = why_unusable(m, unit)
        as_limit = limits and reason is not None and _limit_reading(m, unit)
        if reason is None or as_limit:
            used = replace(m, value=m.bound, problem=None) if as_limit else m
            age = age_days(m.when, today)
            if age is not None and age > max_age_days:
                return Current(
                    concept,
                    None,
                    f"the newest usable {label}, {fmt_measure(m)}, is {age} days old (limit {max_age_days} days)",
                    notes=tuple(notes),
                    pending=pending,
                )
            return Current(
                concept,
                used,
                None,
                notes=tuple(notes),
                pending=pending,
                conflicts=() if as_limit else conflicting(facts, m),
                limit=m.comparator if as_limit else None,
            )
        if m.status in PENDING_STATUSES:
            if pending is None:
                pending = m
            notes.append(f"{label} {fmt_measure(m)} {reason}: not acted on")
            continue
        if m.when is None:
            continue  # an undated result cannot be placed before or after the others
        # The newest final result cannot be compared: it is shown as reported, and no older result
        # decides in its place.
        return Current(
            concept,
            None,
            f"the newest {label}, {fmt_measure(m)}, {reason}",
            orderable=pending is None,
            notes=tuple(notes),
            pending=pending,
            shown_only=m,
        )
    newest = results[0]
    return Current(
        concept,
        None,
        f"the newest {label}, {fmt_measure(newest)}, {why_unusable(newest, unit)}",
        orderable=pending is None,
        notes=tuple(notes[1:]),
        pending=pending,
    )


def _limit_reading(m: Measurement, unit: str | None) -> bool:
    """A final, dated result reported as a limit (">30 ng/mL") in the expected unit."""
    return (
        m.bound is not None
        and m.comparator is not None
        and m.status in ACTIONABLE_STATUSES
        and m.when is not None
        and (unit is None or m.unit == unit)
    )


def pending_at_least(cur: Current, threshold: float) -> Measurement | None:
    """The result not final yet when its value (or a ">" limit) is already at or above ``threshold``:
    shown as critical and pending, never left for the final result to say."""
    m = cur.pending
    if m is None:
        return None
    value = m.value if m.value is not None else m.bound if m.comparator in (">", ">=") else None
    return m if value is not None and value >= threshold else None


def relevant_transfer(facts: PatientFacts, today: date, recent_days: int) -> TransferPlan | None:
    """The nearest future embryo transfer, else the latest one within ``recent_days``."""
    dated = [t for t in facts.transfers if t.when is not None]
    future = [t for t in dated if t.when is not None and day_of(t.when) >= today]
    if future:
        return min(future, key=lambda t: day_of(t.when) if t.when else today)
    recent = [t for t in dated if t.when is not None and (today - day_of(t.when)).days <= recent_days]
    return max(recent, key=lambda t: day_of(t.when) if t.when else today) if recent else None


@dataclass(frozen=True)
class Cutoff:
    entry: Positive  # the protocol entry used
    euploid: bool  # the euploid-blastocyst cut-off, not the standard one
    transfer: TransferPlan | None

    @property
    def value(self) -> float:
        return self.entry.value


def applicable_cutoff(facts: PatientFacts, today: date, proto: ProtocolTable) -> Cutoff:
    """10.3 by default; the euploid-blastocyst cut-off when the transfer that counts is one."""
    transfer = relevant_transfer(facts, today, proto.eligibility.transfer_recent_days.value)
    euploid = bool(transfer and transfer.euploid)
    cutoffs = proto.eligibility.ratio_cutoff
    return Cutoff(entry=cutoffs.euploid_blastocyst if euploid else cutoffs.standard, euploid=euploid, transfer=transfer)


def ratio_now(facts: PatientFacts, today: date, proto: ProtocolTable) -> Current:
    """The Th1/Th2 ratio the rules may select a patient or dose on."""
    return current(facts, TH1_TH2_RATIO, today, proto.eligibility.ratio_max_age_days.value, "Th1/Th2 ratio")


def describe_ratio(m: Measurement) -> str:
    """The ratio with its date, saying when it was calculated from Th1 % and Th2 %."""
    text = f"{fmt_number(m.value)} on {fmt_date(m.when)}" if m.value is not None else fmt_measure(m)
    if m.derived:
        text += " (calculated from the Th1 % and Th2 % of that day)"
    return text


def describe_pregnancy(status: PregnancyStatus) -> str:
    """ "pregnant since 2026-10-01, about 8 weeks" — without record ids or codes."""
    text = "pregnant"
    since = status.since or (day_of(status.when) if status.when else None)
    if since is not None:
        text += f" since {fmt_date(since)}"
    if status.gestational_age_days is not None:
        text += f", about {status.gestational_age_days // 7} weeks"
    return text


def conflict_note(label: str, cur: Current, *, higher_is_worse: bool = True, decides: bool = True) -> str | None:
    """One line when results of the same time disagree: both shown, the worse one used for a safety
    tier; with ``decides`` False (a selection such as the Th1/Th2 ratio) neither is used."""
    if cur.value is None or not cur.conflicts:
        return None
    values = " and ".join(reported(m) for m in (cur.value, *cur.conflicts))
    if not decides:
        return (
            f"**Conflicting {label} results at the same time** ({fmt_date(cur.value.when)}): {values}. "
            "Neither is used until the laboratory confirms which is right."
        )
    used = cur.worst(higher_is_worse=higher_is_worse)
    which = f"{reported(used)} is used" if used is not None else "neither is used"
    return (
        f"**Conflicting {label} results at the same time** ({fmt_date(cur.value.when)}): {values}. "
        f"The worse, {which}; ask the laboratory which is right."
    )


def pending_note(label: str, cur: Current) -> str | None:
    """One line when a newer result is not final yet."""
    if cur.pending is None:
        return None
    return (
        f"A newer {label}, {fmt_measure(cur.pending)}, is {cur.pending.status}: wait for the final "
        "result before acting on an older one."
    )

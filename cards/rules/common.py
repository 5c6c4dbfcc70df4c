"""What the protocol rules share: reading protocol.yaml, citing it in card text, the hook focus,
and picking the results (ratio, transfer, current lab values) the rules may act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Mapping

from ..facts import (
    ACTIONABLE_STATUSES,
    TH1_TH2_RATIO,
    Measurement,
    PatientFacts,
    TransferPlan,
)
from ..model import Action, Card, Coding, Indicator, Link, Suggestion
from ..orders import lab_order
from ..text import age_days, fmt_date, fmt_measure, fmt_number
from .vocab import build_card, override_codings

PROTOCOL_FILE = "protocol.yaml"


def day_of(when: date | datetime) -> date:
    return when.date() if isinstance(when, datetime) else when


class Protocol:
    """Read access to the ``protocol`` table by dotted path, with citations for card text."""

    def __init__(self, kb: Mapping[str, Any]) -> None:
        self.data: Mapping[str, Any] = kb["protocol"]

    def entry(self, path: str) -> Mapping[str, Any]:
        node: Any = self.data
        for part in path.split("."):
            node = node[part]
        if not isinstance(node, Mapping):
            raise KeyError(f"protocol entry {path} is not a mapping")
        return node

    def num(self, path: str) -> float:
        return float(self.entry(path)["value"])

    def days(self, path: str) -> int:
        return int(self.entry(path)["value"])

    def text(self, path: str) -> str:
        return str(self.entry(path)["value"])

    def site_default(self, path: str) -> bool:
        return bool(self.entry(path).get("site_default"))

    def source(self, source_id: str) -> Mapping[str, Any]:
        sources: Mapping[str, Any] = self.data["sources"]
        found = sources.get(source_id)
        return found if isinstance(found, Mapping) else {"label": source_id, "citation": source_id}

    def shown(self, path: str) -> str:
        """"10.3", "4 mg/d", "28.8 %": an entry's value with its unit."""
        entry = self.entry(path)
        value = entry["value"]
        unit = entry.get("unit")
        number = fmt_number(float(value)) if isinstance(value, (int, float)) else str(value)
        if not unit or unit == "{ratio}":
            return number
        return f"{number} %" if unit == "%" else f"{number} {unit}"

    def override_reasons(self) -> tuple[Coding, ...]:
        return override_codings(self.data)


def source_problems(protocol: Mapping[str, Any]) -> list[str]:
    """Entries whose ``source`` is not an id of the ``sources`` table (empty when all resolve)."""
    known = set(protocol.get("sources") or {})
    problems: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            src = node.get("source")
            if isinstance(src, str) and src not in known:
                problems.append(f"protocol entry {path or '(top level)'}: unknown source '{src}'")
            for key, value in node.items():
                if key != "sources":
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(protocol, "")
    return problems


class Detail:
    """Builds a card's Markdown detail: the numbers used, each with its source, then the sources."""

    def __init__(self, proto: Protocol) -> None:
        self.proto = proto
        self.lines: list[str] = []
        self.source_ids: list[str] = []
        self.site_defaults: list[str] = []
        self.numbers: set[str] = set()  # protocol paths already shown

    def add(self, text: str) -> None:
        self.lines.append(text)

    def cite(self, source_id: str) -> str:
        if source_id not in self.source_ids:
            self.source_ids.append(source_id)
        return f"[{source_id}]"

    def number(self, label: str, path: str) -> str:
        """Add "- label: value (protocol.yaml `path`, [source])" once, and return the shown value."""
        entry = self.proto.entry(path)
        shown = self.proto.shown(path)
        if path in self.numbers:
            return shown
        self.numbers.add(path)
        where = (f"site configuration: {PROTOCOL_FILE} `{path}`" if entry.get("site_default")
                 else f"{PROTOCOL_FILE} `{path}`")
        section = f", {entry['section']}" if entry.get("section") else ""
        flag = ""
        if entry.get("site_default"):
            flag = " — **site default, a clinician must confirm it**"
            if path not in self.site_defaults:
                self.site_defaults.append(path)
        self.add(f"- {label}: **{shown}** ({where}; {self.cite(str(entry['source']))}{section}){flag}")
        return shown

    def markdown(self) -> str:
        out = list(self.lines)
        if self.site_defaults:
            out += ["", "**Site defaults used** (not settled by the literature; a clinician must confirm "
                        "them in the site configuration): " + ", ".join(f"`{p}`" for p in self.site_defaults)]
        if self.source_ids:
            out += ["", "**Sources**"]
            for sid in self.source_ids:
                src = self.proto.source(sid)
                url = f" <{src['url']}>" if src.get("url") else ""
                out.append(f"- [{sid}] {src['citation']}{url}")
        return "\n".join(out)

    def links(self) -> tuple[Link, ...]:
        links: list[Link] = []
        for sid in self.source_ids:
            src = self.proto.source(sid)
            if src.get("url"):
                links.append(Link(label=str(src["label"]), url=str(src["url"])))
        return tuple(links)


def make_card(proto: Protocol, detail: Detail, *, kind: str, summary: str, indicator: Indicator,
              source_id: str, suggestions: Iterable[Suggestion] = (), verdict: str = "") -> Card:
    """A protocol card citing ``source_id`` as its source, with the protocol's override reasons."""
    detail.cite(source_id)
    src = proto.source(source_id)
    return build_card(kind=kind, verdict=verdict or kind, summary=summary, indicator=indicator,
                      detail=detail.markdown(), source_label=str(src["label"]), source_url=src.get("url"),
                      suggestions=suggestions, override_reasons=proto.override_reasons(),
                      links=detail.links())


def order_action(facts: PatientFacts, order: Mapping[str, Any], reason: str) -> Action:
    """A create action for a draft ServiceRequest of the protocol's ``order`` entry."""
    resource = lab_order(facts.patient_id, str(order["code"]), str(order["display"]), reason,
                         system=str(order["system"]))
    return Action(type="create", description=f"Order {order['display']}", resource=resource)


# --- results the rules may act on -----------------------------------------------------------------


@dataclass(frozen=True)
class Current:
    """The value of a concept the rules may act on, or why there is none."""

    concept: str
    value: Measurement | None
    problem: str | None  # why no value can be used; None when ``value`` is set
    orderable: bool = True  # ordering the test again would help (not so for a pending result)
    notes: tuple[str, ...] = field(default=())  # e.g. a newer result that cannot be used


def why_unusable(m: Measurement, expected_unit: str | None) -> str | None:
    """Why a result may not be compared with a threshold, in words; None when it may."""
    if m.status not in ACTIONABLE_STATUSES:
        return f"is {m.status}, not final"
    if m.problem:
        return f"cannot be used: {m.problem}"
    if m.when is None:
        return "has no date"
    if m.value is None and m.coded_value is None:
        return "has no value"
    if expected_unit and m.value is not None and m.unit != expected_unit:
        return f"is in {m.unit or 'no unit'}, not {expected_unit}"
    return None


def current(facts: PatientFacts, concept: str, today: date, max_age_days: int, label: str,
            unit: str | None = None) -> Current:
    """Newest usable result of ``concept`` not older than ``max_age_days``, or what is wrong."""
    results = facts.results(concept)
    if not results:
        return Current(concept, None, f"no {label} result on record")
    notes: list[str] = []
    for m in results:
        reason = why_unusable(m, unit)
        if reason is None:
            age = age_days(m.when, today)
            if age is not None and age > max_age_days:
                return Current(concept, None,
                               f"newest usable {label}, {fmt_measure(m)}, is {age} days old "
                               f"(limit {max_age_days} days)", notes=tuple(notes))
            return Current(concept, m, None, notes=tuple(notes))
        notes.append(f"{label} {fmt_measure(m)} {reason}: not acted on")
    newest = results[0]
    pending = newest.status in {"preliminary", "registered"}
    return Current(concept, None, f"newest {label}, {fmt_measure(newest)}, {why_unusable(newest, unit)}",
                   orderable=not pending, notes=tuple(notes[1:]))


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
    path: str  # protocol entry used
    value: float
    transfer: TransferPlan | None


def applicable_cutoff(facts: PatientFacts, today: date, proto: Protocol) -> Cutoff:
    """10.3 by default; the euploid-blastocyst cut-off when the transfer that counts is one."""
    transfer = relevant_transfer(facts, today, proto.days("eligibility.transfer_recent_days"))
    path = "eligibility.ratio_cutoff." + ("euploid_blastocyst" if transfer and transfer.euploid
                                          else "standard")
    return Cutoff(path=path, value=proto.num(path), transfer=transfer)


def ratio_now(facts: PatientFacts, today: date, proto: Protocol) -> Current:
    """The Th1/Th2 ratio the rules may select a patient or dose on."""
    return current(facts, TH1_TH2_RATIO, today, proto.days("eligibility.ratio_max_age_days"),
                   "Th1/Th2 ratio")


def describe_ratio(m: Measurement) -> str:
    """The ratio with date and source, saying when it was derived from Th1 % and Th2 %."""
    text = (f"{fmt_number(m.value)} on {fmt_date(m.when)} ({m.source})" if m.value is not None
            else fmt_measure(m))
    if m.derived:
        text += f", derived as Th1 % / Th2 % from {', '.join(m.derived_from)}"
    return text

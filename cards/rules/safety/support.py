"""What the safety checks share: how old a result may be, a result shown as reported, a repeat
order, and one card per concern with its most severe finding as the summary."""

from __future__ import annotations

from ...facts import PatientFacts
from ...knowledge_model import Cited, Order, ProtocolTable
from ...model import Card, Indicator, Suggestion
from ...text import fmt_date, fmt_measure, reported
from ...vocab import FAMILY_SAFETY
from ..common import Current, Detail, make_card, order_action

SAFETY = FAMILY_SAFETY


def stale_days(proto: ProtocolTable) -> int:
    """How old a safety result may be and still count as the current value."""
    return proto.safety.stale_after_days.value


def as_reported(proto: ProtocolTable, label: str, now: Current) -> Card | None:
    """The newest result exists but cannot be compared (text, a limit, a unit not known, implausible):
    shown as the laboratory reported it, with why, rather than deciding on an older one."""
    m = now.shown_only
    if m is None:
        return None
    detail = Detail(proto)
    why = m.problem or (f"it is {m.status}" if not m.is_final else "it cannot be compared")
    detail.add(f"- Newest {label}: **{fmt_measure(m)}**; {why}.")
    detail.add("")
    detail.add(
        f"No {label} threshold was checked, and no older result was used in its place. Ask the laboratory "
        "for the value in its unit, or repeat the test."
    )
    return make_card(
        proto,
        detail,
        kind=f"{SAFETY}:{label}",
        verdict=f"{label}-as-reported",
        summary=f"{label.capitalize()} reported as {reported(m)[:40]} ({fmt_date(m.when)}): cannot be compared, check it",
        indicator="info",
        source_id="data-profile",
    )


def repeat_test(facts: PatientFacts, order: Order, reason: str) -> Suggestion:
    """Repeat the test of ``order``."""
    return Suggestion(label="Repeat the test", actions=(order_action(facts, order, reason),))


def worst_card(
    proto: ProtocolTable,
    detail: Detail,
    kind: str,
    findings: list[tuple[Indicator, str]],
    threshold: Cited,
    advice: str,
    suggestions: list[Suggestion] | None = None,
    *,
    verdict: str | None = None,
) -> Card | None:
    """One card for the concern: the most severe finding as summary, every finding in the detail."""
    if not findings:
        return None
    order = {"critical": 0, "warning": 1, "info": 2}
    findings = sorted(findings, key=lambda f: order[f[0]])
    indicator, summary = findings[0]
    if len(findings) > 1:
        detail.add("")
        detail.lines += [f"- {text}" for _, text in findings[1:]]
    detail.add("")
    detail.add(advice)
    if verdict is None or indicator == "critical":
        verdict = f"{kind.split(':')[-1]}-{indicator}"
    return make_card(
        proto,
        detail,
        kind=kind,
        verdict=verdict,
        summary=summary,
        indicator=indicator,
        source_id=threshold.source,
        suggestions=(suggestions or []) if indicator != "info" else (),
    )

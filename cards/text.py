"""Small formatting helpers shared by the rules: numbers with their unit, date and source."""

from __future__ import annotations

from datetime import date, datetime

from .facts import BloodPressure, Measurement

SUMMARY_MAX = 139  # CDS Hooks: summary "<140 characters"


def fmt_date(when: date | datetime | None) -> str:
    if when is None:
        return "date unknown"
    return (when.date() if isinstance(when, datetime) else when).isoformat()


def fmt_number(value: float) -> str:
    """3 → "3", 2.5 → "2.5", 0.8333 → "0.83"."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def fmt_measure(m: Measurement) -> str:
    """"1.1 mg/dL on 2026-11-20 (Observation/cr1)" — value, unit, date and source."""
    if m.value is not None and m.unit:
        shown = f"{fmt_number(m.value)} {m.unit}"
        if m.shown and not m.shown.endswith(m.unit):
            shown += f" (recorded as {m.shown})"
    else:
        shown = m.coded_value or m.shown
    return f"{shown} on {fmt_date(m.when)} ({m.source})"


def fmt_bp(bp: BloodPressure) -> str:
    sys_ = fmt_number(bp.systolic) if bp.systolic is not None else "?"
    dia = fmt_number(bp.diastolic) if bp.diastolic is not None else "?"
    return f"{sys_}/{dia} mm[Hg] on {fmt_date(bp.when)} ({bp.source})"


def age_days(when: date | datetime | None, today: date) -> int | None:
    if when is None:
        return None
    day = when.date() if isinstance(when, datetime) else when
    return (today - day).days


def clip_summary(text: str) -> str:
    """A summary within the CDS Hooks limit, even when a drug name or a site's text is long."""
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"

"""Text helpers every rule uses: numbers with units as a clinician reads them, dates, the CDS Hooks
length limits, and making a string from the record safe to put in a card's Markdown.

Card text is for a clinician with five seconds: values with their dates and units as the laboratory
reported them, no resource ids, no UCUM braces, no file or key names.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from html.parser import HTMLParser

from .facts import BloodPressure, Measurement

SUMMARY_MAX = 139  # CDS Hooks: summary "<140 characters"
DETAIL_MAX = 1200  # longest detail a busy reader takes in; every card stays within it
RECORD_TEXT_MAX = 120  # longest free text taken from the record into a card

# UCUM codes as a clinician writes them.
_UNIT_DISPLAY = {
    "umol/L": "µmol/L",
    "mm[Hg]": "mmHg",
    "10*3/uL": "×10³/µL",
    "10*9/L": "×10⁹/L",
    "ug/L": "µg/L",
    "[IU]/L": "IU/L",
    "m[IU]/mL": "mIU/mL",
    "/uL": "/µL",
}
_BRACED = re.compile(r"\s*\{[^}]*\}")
# Markdown characters that would change the rendering of text taken from the record.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>#|~])")


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain(text: object, max_length: int = RECORD_TEXT_MAX) -> str:
    """A string from the record (a condition's display, a medication's text, an id) made safe for
    card Markdown: HTML removed, whitespace collapsed, Markdown characters escaped, and kept short
    (a record's free text must not crowd out the card's reason)."""
    raw = str(text)
    if "<" in raw or "&" in raw:
        parser = _TextOnly()
        parser.feed(raw)
        parser.close()
        raw = "".join(parser.parts)
    # else: no tag and no character reference, which the parser would give back unchanged
    flat = " ".join(raw.split())
    if len(flat) > max_length:
        flat = flat[: max_length - 1].rstrip() + "…"
    return _MARKDOWN.sub(r"\\\1", flat)


def fmt_unit(unit: str | None) -> str:
    """ "umol/L" → "µmol/L", "{ratio}" → "", "mm[Hg]" → "mmHg"."""
    if not unit:
        return ""
    if unit in _UNIT_DISPLAY:
        return _UNIT_DISPLAY[unit]
    return _BRACED.sub("", unit).strip()


def with_unit(value: float, unit: str | None) -> str:
    """3.1 with "mg/dL" → "3.1 mg/dL"; 12 with "{ratio}" → "12"; 30 with "%" → "30 %"."""
    shown = fmt_unit(unit)
    return f"{fmt_number(value)} {shown}" if shown else fmt_number(value)


def fmt_date(when: date | datetime | None) -> str:
    if when is None:
        return "date unknown"
    return (when.date() if isinstance(when, datetime) else when).isoformat()


def fmt_number(value: float) -> str:
    """3 → "3", 2.5 → "2.5", 0.8333 → "0.83"."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def reported_text(m: Measurement) -> str:
    """The value as the laboratory reported it ("106 µmol/L", "<1.0 ng/mL", a ratio without its UCUM
    braces), tidied for reading; plain text, for pages that escape it themselves."""
    if m.coded_value and m.value is None:
        return m.coded_value
    shown = (m.shown or "").strip()
    if shown and shown != "no value":
        parts = shown.split(" ", 1)
        return f"{parts[0]} {fmt_unit(parts[1])}".strip() if len(parts) == 2 else shown
    if m.value is not None:
        return with_unit(m.value, m.unit)
    return "no value"


def reported(m: Measurement) -> str:
    """``reported_text`` made safe for card Markdown."""
    return plain(reported_text(m))


def fmt_measure(m: Measurement) -> str:
    """ "106 µmol/L on 2026-11-20": the value as reported, with its date (never a resource id)."""
    return f"{reported(m)} on {fmt_date(m.when)}"


def fmt_bp(bp: BloodPressure) -> str:
    sys_ = fmt_number(bp.systolic) if bp.systolic is not None else "?"
    dia = fmt_number(bp.diastolic) if bp.diastolic is not None else "?"
    return f"{sys_}/{dia} mmHg on {fmt_date(bp.when)}"


def age_days(when: date | datetime | None, today: date) -> int | None:
    if when is None:
        return None
    day = when.date() if isinstance(when, datetime) else when
    return (today - day).days


_ESCAPED = re.compile(r"\\([\\`*_\[\]<>#|~])")


def plain_summary(text: str) -> str:
    """A summary as CDS Hooks wants it, plain text: no bold markers, no Markdown escapes ("\\<1.0"
    becomes "<1.0")."""
    return _ESCAPED.sub(r"\1", text.replace("**", ""))


def clip_summary(text: str) -> str:
    """A summary within the CDS Hooks limit, even when a drug name or a site's text is long."""
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


def fits_summary(text: str) -> bool:
    """Whether ``text`` can be a summary as it is (rules pick a shorter wording otherwise)."""
    return len(text) <= SUMMARY_MAX

"""What the page shows, computed from the facts the rules saw (never from FHIR again).

Each section gives its rows (the values a clinician would quote, with dates), a chart where a course
over time matters, and an explicit state when the data is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from markdown_it import MarkdownIt

from cards.facts import (
    ALT,
    AST,
    CREATININE,
    GLUCOSE,
    HCG,
    POTASSIUM,
    PREGNANCY_TEST,
    TACROLIMUS,
    TH1_TH2_RATIO,
    Measurement,
)
from cards.knowledge_model import Count, Number, typed
from cards.model import Card
from cards.rules.findings import potassium_tier
from cards.text import reported_text
from cards.vocab import FAMILY_INTERACTION, FAMILY_SAFETY
from service.smart_app import charts
from service.smart_app.record import PatientRecord

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
INDICATOR_WORDS = {"critical": "Critical", "warning": "Warning", "info": "Info"}


@dataclass
class Row:
    when: str
    value: str
    note: str = ""
    flag: str = ""  # "high" / "low" / "" — shown as text, not only as colour


@dataclass
class Section:
    rows: list[Row] = field(default_factory=list)
    svg: str | None = None
    missing: str | None = None  # why there is nothing to show
    reference: str = ""  # the lines the chart is read against, in words


@dataclass
class SafetyLine:
    name: str
    threshold: str
    latest: Row | None
    history: list[Row]


@dataclass
class CardView:
    summary: str
    indicator: str
    indicator_word: str
    detail_html: str
    source: str
    source_url: str | None
    suggestions: list[str]
    about_order: bool
    cites_source: bool  # the detail already ends with its "Source:" line


@dataclass
class PageView:
    banner: dict[str, str] | None
    identity: dict[str, str]  # name and birth date, on every page whether or not the banner is shown
    pregnancy: str
    on_tacrolimus: bool
    medications: list[dict[str, Any]]
    ratio: Section
    trough: Section
    markers: list[Row]
    safety: list[SafetyLine]
    cards: list[CardView]
    order_id: str | None
    notes: list[str]
    today: str

    @property
    def svgs(self) -> list[str]:
        return [s.svg for s in (self.ratio, self.trough) if s.svg]


def _when(value: datetime | date | None) -> str:
    if value is None:
        return "date unknown"
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat()


def _at(value: date) -> datetime:
    return datetime.combine(value, time(12), tzinfo=UTC)


def _note(m: Measurement) -> str:
    parts = []
    if not m.is_final:
        parts.append(f"{m.status}: shown, not acted on")
    if m.problem:
        parts.append(m.problem)
    if m.derived:
        parts.append("derived from Th1 %/Th2 % of the same day")
    if m.timing == "unknown":
        parts.append("timing unknown (not a confirmed trough)")
    return "; ".join(parts)


def _row(m: Measurement, flag: str = "") -> Row:
    return Row(when=_when(m.when), value=reported_text(m), note=_note(m), flag=flag)


def _points(ms: tuple[Measurement, ...]) -> list[charts.Point]:
    return [
        charts.Point(when=m.when, value=m.value, usable=m.actionable)
        for m in reversed(ms)
        if m.when is not None and m.value is not None
    ]


def _banner(patient: Mapping[str, Any] | None, patient_id: str) -> dict[str, str]:
    name = ""
    if patient:
        names = patient.get("name") if isinstance(patient.get("name"), list) else []
        first = names[0] if names and isinstance(names[0], dict) else {}
        if isinstance(first.get("text"), str):
            name = first["text"]
        else:
            given = " ".join(g for g in first.get("given") or [] if isinstance(g, str))
            name = f"{given} {first.get('family') or ''}".strip()
    return {
        "name": name or "(name not given)",
        "id": patient_id,
        "birthDate": str((patient or {}).get("birthDate") or "not given"),
        "gender": str((patient or {}).get("gender") or "not given"),
    }


def _ratio(record: PatientRecord, knowledge: Mapping[str, Any], markers: list[charts.Marker]) -> Section:
    ms = record.facts.results(TH1_TH2_RATIO)
    if not ms:
        return Section(missing="No Th1/Th2 ratio on record: candidacy cannot be judged until one is measured.")
    ratio_cutoff = typed(knowledge).protocol.eligibility.ratio_cutoff
    standard, euploid = ratio_cutoff.standard.value, ratio_cutoff.euploid_blastocyst.value
    cutoffs = [(standard, f"cut-off {standard:g}")]
    if any(t.euploid for t in record.facts.transfers):
        cutoffs.append((euploid, f"cut-off {euploid:g} (euploid transfer)"))
    rows = []
    for m in ms:
        flag = ""
        if m.value is not None:
            flag = "at or above cut-off" if m.value >= cutoffs[-1][0] else "below cut-off"
        rows.append(_row(m, flag))
    points = _points(ms)
    svg = None
    if points:
        label = "Th1/Th2 ratio over time against the cut-off; values in the table below"
        svg = charts.ratio_chart(points, cutoffs, markers, label)
    return Section(rows=rows, svg=svg, reference="; ".join(name for _, name in cutoffs))


def _doses(record: PatientRecord) -> list[tuple[datetime, float]]:
    steps: list[tuple[datetime, float]] = []
    for med in sorted(record.facts.medications_with(TACROLIMUS), key=lambda m: m.start or date.max):
        if med.daily_dose_mg is None or med.start is None:
            continue
        steps.append((_at(med.start), med.daily_dose_mg))
        if med.end is not None:
            steps.append((_at(med.end), 0.0))
    if steps:
        steps.append((_at(record.today), steps[-1][1]))
    return sorted(steps)


def _trough(record: PatientRecord, knowledge: Mapping[str, Any], markers: list[charts.Marker]) -> Section:
    ms = record.facts.results(TACROLIMUS)
    trough = typed(knowledge).protocol.trough
    band = (trough.target_low.value, trough.target_high.value)
    on = bool(record.facts.medications_with(TACROLIMUS))
    if not ms:
        text = "No tacrolimus levels yet." if on else "Not on tacrolimus, and no tacrolimus levels on record."
        return Section(missing=text)
    rows = []
    for m in ms:
        flag = ""
        if m.value is not None:
            flag = "above target" if m.value > band[1] else "below target" if m.value < band[0] else "in target"
        rows.append(_row(m, flag))
    label = (
        "Tacrolimus troughs over time with the target band, the dose steps, transfer and pregnancy tests; "
        "values in the table below"
    )
    svg = charts.trough_chart(_points(ms), band, _doses(record), markers, label) if _points(ms) else None
    return Section(rows=rows, svg=svg, reference=f"target {band[0]:g}–{band[1]:g} ng/mL")


def _markers(record: PatientRecord) -> tuple[list[charts.Marker], list[Row]]:
    marks: list[charts.Marker] = []
    rows: list[Row] = []
    for t in record.facts.transfers:
        if t.when is None:
            continue
        kind = "euploid blastocyst transfer" if t.euploid else "embryo transfer"
        marks.append(charts.Marker(t.when.date(), "transfer"))
        planned = "planned" if t.when.date() >= record.today else "done"
        rows.append(Row(when=_when(t.when), value=kind, note=f"{planned} ({t.status})"))
    for concept in (PREGNANCY_TEST, HCG):
        for m in record.facts.results(concept):
            if m.when is None:
                continue
            result = m.coded_value or reported_text(m)
            marks.append(charts.Marker(m.when.date(), "hCG"))
            rows.append(Row(when=_when(m.when), value=f"pregnancy test: {result}", note=_note(m)))
    rows.sort(key=lambda r: r.when, reverse=True)
    return marks, rows


# The rules' verdicts about the newest result of a safety concern: the page shows them rather than
# comparing with thresholds of its own (one implementation: the creatinine rise from baseline, for one).
_VERDICT_FLAGS = {"critical": "critical", "warning": "above threshold", "info": "above normal"}
_INTERACTION_CONCERNS = {"potassium-": POTASSIUM, "creatinine-": CREATININE}


def rule_flags(record: PatientRecord) -> dict[str, str]:
    """concept → the flag of the newest result, from the cards the rules made for this record."""
    flags: dict[str, str] = {}
    for card in record.cards:
        concept: str | None = None
        family, _, detail = card.kind.partition(":")
        if family == FAMILY_SAFETY and detail:
            concept = {"blood-pressure": "blood_pressure", "liver": ALT}.get(detail, detail)
        elif family == FAMILY_INTERACTION and detail:
            concept = next((c for prefix, c in _INTERACTION_CONCERNS.items() if card.verdict.startswith(prefix)), None)
        if concept is not None and concept not in flags:
            flags[concept] = _VERDICT_FLAGS[card.indicator]
    if ALT in flags:
        flags[AST] = flags[ALT]
    return flags


def _safety(record: PatientRecord, knowledge: Mapping[str, Any]) -> list[SafetyLine]:
    proto = typed(knowledge).protocol
    safety = proto.safety
    kidney, potassium, glucose, liver, bp = (
        safety.creatinine,
        safety.potassium,
        safety.glucose,
        safety.liver,
        safety.blood_pressure,
    )
    verdicts = rule_flags(record)

    def v(entry: Number | Count) -> str:
        return f"{entry.value:g}"

    pregnant = record.facts.pregnancy.pregnant is True
    lines: list[tuple[str, str, str, float | None]] = [
        (
            CREATININE,
            "Creatinine",
            f"rise ≥ {_percent(kidney.rise_warning_fraction.value)} "
            f"from her baseline; AKI at ×{v(kidney.aki_ratio)} or +{v(kidney.aki_absolute_rise)} mg/dL"
            + (f"; > {v(kidney.pregnancy_above)} mg/dL in pregnancy" if pregnant else ""),
            None,
        ),
        (
            POTASSIUM,
            "Potassium",
            f"> {v(potassium.advisory_above)} advisory, ≥ {v(potassium.warning_at)} "
            f"warning, ≥ {v(potassium.critical_at)} mmol/L critical",
            potassium.warning_at.value,
        ),
        (
            GLUCOSE,
            "Glucose",
            f"fasting ≥ {v(glucose.overt_fasting_at)}, random ≥ {v(glucose.overt_random_at)} "
            f"mg/dL" + (f"; fasting ≥ {v(glucose.gdm_fasting_at)} mg/dL in pregnancy" if pregnant else ""),
            glucose.overt_random_at.value,
        ),
        (ALT, "ALT", f"≥ {v(liver.uln_multiple)} × the upper limit of normal", None),
        (AST, "AST", f"≥ {v(liver.uln_multiple)} × the upper limit of normal", None),
    ]
    out = []
    multiple = liver.uln_multiple.value
    default_uln = {ALT: liver.default_uln.alt.value, AST: liver.default_uln.ast.value}
    for concept, name, threshold, warn_at in lines:
        ms = record.facts.results(concept)
        rows = []
        for i, m in enumerate(ms[:6]):
            flag = ""
            if i == 0 and concept in verdicts:
                flag = verdicts[concept]  # the rules' verdict on the newest result
            elif concept == POTASSIUM and m.value is not None:
                tier = potassium_tier(m.value, proto, m.reference_high)
                flag = "" if tier == "normal" else "above normal" if tier == "above-normal" else "above threshold"
            elif i > 0 and m.value is not None and warn_at is not None and m.value >= warn_at:
                flag = "above threshold"
            elif i > 0 and concept in (ALT, AST) and m.value is not None and multiple:
                uln = m.reference_high or default_uln[concept]
                if uln and m.value >= multiple * uln:
                    flag = "above threshold"
            rows.append(_row(m, flag))
        out.append(SafetyLine(name=name, threshold=threshold, latest=rows[0] if rows else None, history=rows[1:]))
    bp_rows = []
    sys_at, dia_at = bp.warning_systolic_at.value, bp.warning_diastolic_at.value
    for i, reading in enumerate(record.facts.blood_pressure[:6]):
        value = f"{_num(reading.systolic)}/{_num(reading.diastolic)} mm[Hg]"
        high = (reading.systolic is not None and reading.systolic >= sys_at) or (
            reading.diastolic is not None and reading.diastolic >= dia_at
        )
        note = "" if reading.status in ("final", "amended", "corrected") else f"{reading.status}: shown, not acted on"
        flag = verdicts.get("blood_pressure", "") if i == 0 else "above threshold" if high else ""
        bp_rows.append(Row(when=_when(reading.when), value=value, note=reading.problem or note, flag=flag))
    out.append(
        SafetyLine(
            name="Blood pressure",
            threshold=f"≥ {v(bp.warning_systolic_at)}/{v(bp.warning_diastolic_at)} "
            f"warning, ≥ {v(bp.critical_systolic_at)}/{v(bp.critical_diastolic_at)} critical",
            latest=bp_rows[0] if bp_rows else None,
            history=bp_rows[1:],
        )
    )
    return out


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _medications(record: PatientRecord) -> list[dict[str, Any]]:
    out = []
    for med in record.facts.medications_with(TACROLIMUS):
        out.append(
            {
                "source": med.source,
                "display": med.display,
                "status": "draft" if med.is_draft else med.status,
                "dose": f"{med.daily_dose_mg:g} mg/day"
                if med.daily_dose_mg is not None
                else f"dose unknown ({med.dose_problem or 'not stated'})",
                "start": _when(med.start) if med.start else "not stated",
                "end": _when(med.end) if med.end else "not stated",
                "highlight": med.source == record.order_id,
            }
        )
    return out


def _card(card: Card, order_id: str | None) -> CardView:
    about = False
    if order_id:
        for s in card.suggestions:
            for a in s.actions:
                rid = a.resource_id or (
                    f"{a.resource.get('resourceType')}/{a.resource.get('id')}" if a.resource else None
                )
                about = about or rid == order_id
        about = about or order_id in card.detail
    return CardView(
        summary=card.summary,
        indicator=card.indicator,
        indicator_word=INDICATOR_WORDS.get(card.indicator, card.indicator),
        detail_html=_MARKDOWN.render(card.detail or ""),
        source=card.source_label,
        source_url=card.source_url,
        suggestions=[s.label for s in card.suggestions],
        about_order=about,
        cites_source=(card.detail or "").rstrip().rsplit("\n", 1)[-1].startswith("Source:"),
    )


def build_page(record: PatientRecord, knowledge: Mapping[str, Any], *, show_banner: bool) -> PageView:
    marks, marker_rows = _markers(record)
    preg = record.facts.pregnancy
    pregnancy = (
        "pregnant" if preg.pregnant else "not pregnant" if preg.pregnant is False else "pregnancy status unknown"
    ) + f" ({preg.evidence})"
    cards = sorted((_card(c, record.order_id) for c in record.cards), key=lambda c: not c.about_order)
    return PageView(
        banner=_banner(record.patient, record.facts.patient_id) if show_banner else None,
        identity=_banner(record.patient, record.facts.patient_id),
        pregnancy=pregnancy,
        on_tacrolimus=any(not m.is_draft for m in record.facts.medications_with(TACROLIMUS)),
        medications=_medications(record),
        ratio=_ratio(record, knowledge, marks),
        trough=_trough(record, knowledge, marks),
        markers=marker_rows,
        safety=_safety(record, knowledge),
        cards=cards,
        order_id=record.order_id,
        notes=record.notes,
        today=record.today.isoformat(),
    )

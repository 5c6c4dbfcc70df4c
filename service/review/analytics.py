"""Feedback over time: per card kind, how many cards were shown, accepted and overridden, and the
override reasons given, per issuer and tenant as the feedback store keeps them apart. Charts are
PNG images drawn with matplotlib (embedded as data URIs, so the page needs no script)."""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: images only
import matplotlib.pyplot as plt

EVENTS = ("shown", "accepted", "overridden")


@dataclass
class KindFigures:
    kind: str
    shown: int = 0
    accepted: int = 0
    overridden: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.shown if self.shown else None


@dataclass
class Analytics:
    callers: list[tuple[str, str | None]]  # (issuer, tenant) pairs on record
    days: list[date]
    per_day: dict[date, Counter[str]]
    kinds: list[KindFigures]
    reasons: Counter[str]


def summarise(rows: Iterable[Mapping[str, Any]], *, issuer: str | None = None, tenant: str | None = None) -> Analytics:
    """Aggregate ``PilotRecords.feedback_rows`` for one caller (issuer and tenant; None: all)."""
    rows = list(rows)
    callers = sorted({(r["issuer"], r["tenant"]) for r in rows}, key=lambda c: (c[0], c[1] or ""))
    chosen = [
        r
        for r in rows
        if (issuer is None or r["issuer"] == issuer) and (tenant is None or (r["tenant"] or "") == tenant)
    ]
    per_day: dict[date, Counter[str]] = defaultdict(Counter)
    kinds: dict[str, KindFigures] = {}
    reasons: Counter[str] = Counter()
    for r in chosen:
        day = r["at"].date()
        per_day[day][r["event"]] += 1
        figures = kinds.setdefault(r["kind"], KindFigures(r["kind"]))
        if r["event"] in EVENTS:
            setattr(figures, r["event"], getattr(figures, r["event"]) + 1)
        if r["reason"]:
            figures.reasons[r["reason"]] += 1
            reasons[r["reason"]] += 1
    return Analytics(
        callers=callers,
        days=sorted(per_day),
        per_day=dict(per_day),
        kinds=[kinds[k] for k in sorted(kinds)],
        reasons=reasons,
    )


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def over_time_chart(data: Analytics) -> str | None:
    """Cards shown, accepted and overridden per day (a line each)."""
    if not data.days:
        return None
    figure, axes = plt.subplots(figsize=(8, 3))
    for event, style in zip(EVENTS, ("-o", "-s", "-^"), strict=True):
        axes.plot([d.isoformat() for d in data.days], [data.per_day[d][event] for d in data.days], style, label=event)
    axes.set_ylabel("cards")
    axes.set_title("Feedback over time")
    axes.legend()
    figure.autofmt_xdate()
    return _png(figure)


def per_kind_chart(kinds: Sequence[KindFigures]) -> str | None:
    """Per card kind: shown, accepted and overridden side by side."""
    if not kinds:
        return None
    figure, axes = plt.subplots(figsize=(8, max(2.5, 0.45 * len(kinds) + 1)))
    positions = range(len(kinds))
    height = 0.27
    for offset, event in enumerate(EVENTS):
        axes.barh(
            [p + (offset - 1) * height for p in positions], [getattr(k, event) for k in kinds], height, label=event
        )
    axes.set_yticks(list(positions), [k.kind for k in kinds])
    axes.invert_yaxis()
    axes.set_xlabel("cards")
    axes.set_title("By card kind")
    axes.legend()
    return _png(figure)
